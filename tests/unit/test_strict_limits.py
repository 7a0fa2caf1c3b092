"""Strict tool use is refused where the model is made (before any call), with the limit named, for a
phase that breaks one; an unknown phase id already when the settings load."""

from __future__ import annotations

import dataclasses

import pytest

import worldgen.phases as phases_module
from worldgen.errors import ConfigurationError
from worldgen.model.factory import check_model_settings
from worldgen.phases import ANY_PHASE_BY_ID, PHASES, get_phase
from worldgen.schema.tools import STRICT_MAX_OPTIONAL_PARAMETERS, load_tool, part_limit_problems, strict_limit_problems
from worldgen.settings import get_settings


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch):
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.fixture
def one_call_1a(fresh_settings):
    """1A as one call: its whole tool in one request, over the limits (in its parts it is not)."""
    whole = dataclasses.replace(get_phase("1A"), parts=(), outline=False)
    fresh_settings.setitem(ANY_PHASE_BY_ID, "1A", whole)
    return whole


def test_a_strict_phase_over_the_optional_parameter_limit_is_refused(fresh_settings, one_call_1a) -> None:
    assert strict_limit_problems(load_tool(get_phase("1A")))  # 1A has more optional fields than strict allows
    fresh_settings.setenv("WORLDGEN_STRICT_PHASES", '["1A"]')

    with pytest.raises(ConfigurationError) as raised:
        check_model_settings(get_settings())

    assert raised.value.message.startswith("WORLDGEN_STRICT_PHASES: phase 1A cannot use strict tools: ")
    assert f"at most {STRICT_MAX_OPTIONAL_PARAMETERS}" in raised.value.message


def test_in_its_parts_every_request_of_a_wide_phase_fits_the_limits(fresh_settings) -> None:
    phase = get_phase("1A")
    assert strict_limit_problems(load_tool(phase)) and part_limit_problems(phase, load_tool(phase)) == []
    fresh_settings.setenv("WORLDGEN_STRICT_PHASES", '["1A"]')
    assert get_settings().strict_phases == ["1A"]
    check_model_settings(get_settings())


def test_a_structured_output_model_whose_schema_breaks_a_limit_is_refused(fresh_settings) -> None:
    fresh_settings.setenv("WORLDGEN_DEFAULT_MODEL", "claude-sonnet-5-5")
    check_model_settings(get_settings())  # every part of every phase fits
    whole = dataclasses.replace(get_phase("1A"), parts=(), outline=False)
    fresh_settings.setattr(
        phases_module, "ALL_PHASES", tuple(whole if p.id == "1A" else p for p in phases_module.ALL_PHASES)
    )

    with pytest.raises(ConfigurationError) as raised:
        check_model_settings(get_settings())

    assert "phase 1A cannot run on claude-sonnet-5-5 (structured outputs)" in raised.value.message
    assert f"at most {STRICT_MAX_OPTIONAL_PARAMETERS}" in raised.value.message


def test_a_strict_phase_within_the_limits_loads(fresh_settings) -> None:
    fresh_settings.setenv("WORLDGEN_STRICT_PHASES", '["3c"]')
    assert get_settings().strict_phases == ["3C"]
    check_model_settings(get_settings())


def test_an_unknown_strict_phase_is_refused_by_name(fresh_settings) -> None:
    fresh_settings.setenv("WORLDGEN_STRICT_PHASES", '["9Z"]')
    with pytest.raises(ConfigurationError, match="unknown phase '9Z'"):
        get_settings()


def test_no_phase_the_registry_declares_strict_breaks_a_limit() -> None:
    for phase in PHASES:
        if phase.strict_tools:
            assert strict_limit_problems(load_tool(phase)) == [], phase.id
