"""Strict tool use is refused when settings load, with the limit named, for a phase that breaks one."""

from __future__ import annotations

import pytest

from worldgen.errors import ConfigurationError
from worldgen.phases import PHASES, get_phase
from worldgen.schema.tools import STRICT_MAX_OPTIONAL_PARAMETERS, load_tool, strict_limit_problems
from worldgen.settings import get_settings


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch):
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_a_strict_phase_over_the_optional_parameter_limit_is_refused_at_load(fresh_settings) -> None:
    assert strict_limit_problems(load_tool(get_phase("1A")))  # 1A has more optional fields than strict allows
    fresh_settings.setenv("WORLDGEN_STRICT_PHASES", '["1A"]')

    with pytest.raises(ConfigurationError) as raised:
        get_settings()

    assert raised.value.message.startswith("WORLDGEN_STRICT_PHASES: phase 1A cannot use strict tools: ")
    assert f"at most {STRICT_MAX_OPTIONAL_PARAMETERS}" in raised.value.message


def test_a_strict_phase_within_the_limits_loads(fresh_settings) -> None:
    fresh_settings.setenv("WORLDGEN_STRICT_PHASES", '["3c"]')
    assert get_settings().strict_phases == ["3C"]


def test_an_unknown_strict_phase_is_refused_by_name(fresh_settings) -> None:
    fresh_settings.setenv("WORLDGEN_STRICT_PHASES", '["9Z"]')
    with pytest.raises(ConfigurationError, match="unknown phase '9Z'"):
        get_settings()


def test_no_phase_the_registry_declares_strict_breaks_a_limit() -> None:
    for phase in PHASES:
        if phase.strict_tools:
            assert strict_limit_problems(load_tool(phase)) == [], phase.id
