"""Profiles (issue 12, item 5): the registry declares full and quick; each writes the same tables,
has its own row targets and prompts, and the default profile is a validated setting."""

from __future__ import annotations

import pytest

from worldgen.db.context import PhaseContext
from worldgen.errors import ConfigurationError
from worldgen.phases import (
    ALL_PHASES,
    PROFILES,
    QUICK_ROW_TARGETS,
    ROW_TARGETS,
    WORLD_TABLES,
    ancestors,
    descendants,
    get_phase,
    profile_phases,
    row_target,
)
from worldgen.prompts import phase_prompt, size_hint
from worldgen.settings import get_settings


@pytest.fixture
def fresh_settings(monkeypatch: pytest.MonkeyPatch):
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_phase_ids_are_distinct_across_profiles_and_each_is_found_by_id() -> None:
    ids = [p.id for p in ALL_PHASES]
    assert len(ids) == len(set(ids))
    assert [p.id for p in profile_phases("quick")] == ["Q1", "Q2", "Q3"]
    assert get_phase("q2") is PROFILES["quick"][1]
    assert all(p.profile == profile for profile, phases in PROFILES.items() for p in phases)


@pytest.mark.parametrize("profile", PROFILES)
def test_each_profile_writes_every_world_table_exactly_once(profile: str) -> None:
    tables = [t for p in PROFILES[profile] for t in p.tables]
    assert sorted(tables) == sorted(WORLD_TABLES)


def test_quick_phases_depend_only_on_quick_phases_and_downstream_stays_in_the_profile() -> None:
    assert ancestors("Q3") == {"Q1", "Q2"}
    assert descendants("Q2") == ["Q2", "Q3"]
    assert descendants("2B") == ["2B", "2C", "3A", "3B", "3C"]


def test_an_unknown_profile_is_a_key_error_naming_the_profiles() -> None:
    with pytest.raises(KeyError, match="unknown profile 'slow'; valid profiles: full, quick"):
        profile_phases("slow")


def test_the_quick_profile_has_its_own_leaner_row_targets_for_every_table() -> None:
    assert set(QUICK_ROW_TARGETS) == set(ROW_TARGETS) == set(WORLD_TABLES)
    for table in WORLD_TABLES:
        assert row_target(table, 4, 80, "quick") <= row_target(table, 4, 80, "full"), table
    assert sum(row_target(t, 4, 80, "quick") for t in WORLD_TABLES) < 0.3 * sum(
        row_target(t, 4, 80, "full") for t in WORLD_TABLES
    )
    assert row_target("pc_connections", 4, 80, "quick") >= 3 * 4  # at least an NPC, a place and a quest per PC


def test_a_quick_prompt_asks_for_its_row_targets_and_short_descriptions() -> None:
    phase = get_phase("Q2")
    party = [{"key": f"pc-{n}", "name": f"PC {n}", "backstory": "b"} for n in range(4)]
    context = PhaseContext(
        phase="Q2",
        campaign={"name": "C", "setting": "S", "tone": "T"},
        player_characters=party,
        rows={},
        keys={"player_characters": [pc["key"] for pc in party]},
    )
    prompt = phase_prompt(phase, context, size_hint(phase, 4))
    assert "one or two short sentences" in prompt
    assert f"- entities: about {row_target('entities', 4, 40, 'quick')} " in prompt
    assert "two or three concrete sentences" not in prompt


def test_an_unknown_default_profile_is_refused_when_the_settings_load(fresh_settings) -> None:
    fresh_settings.setenv("WORLDGEN_DEFAULT_PROFILE", "slow")
    with pytest.raises(ConfigurationError) as raised:
        get_settings()
    assert raised.value.message == "WORLDGEN_DEFAULT_PROFILE: unknown profile 'slow'; valid profiles: full, quick"


def test_each_profile_names_its_state_machine_setting(fresh_settings) -> None:
    fresh_settings.setenv("WORLDGEN_DEFAULT_PROFILE", "quick")
    fresh_settings.setenv("WORLDGEN_STATE_MACHINE_ARN", "arn:full")
    fresh_settings.delenv("WORLDGEN_QUICK_STATE_MACHINE_ARN", raising=False)
    settings = get_settings()
    assert settings.default_profile == "quick"
    assert settings.state_machine_arn_of("full") == "arn:full"
    with pytest.raises(ConfigurationError, match="WORLDGEN_QUICK_STATE_MACHINE_ARN is not set on the server"):
        settings.state_machine_arn_of("quick")
