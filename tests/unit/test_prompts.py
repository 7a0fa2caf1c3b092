"""Phase prompts: each phase its own guidance, row targets scaled by the party in prompt and tool."""

from __future__ import annotations

from importlib import resources

import pytest

from worldgen.db.context import PhaseContext
from worldgen.phases import ALL_PHASES, PHASES, ROW_TARGETS, get_phase, row_target
from worldgen.prompts import PHASE_FRAMES, phase_prompt, size_hint
from worldgen.roles import ROLE_LIMIT, ROLE_TABLES, cast_for_roles
from worldgen.schema.tools import load_tool, with_row_targets


def context(phase_id: str, pcs: int) -> PhaseContext:
    party = [{"key": f"pc-{n}", "name": f"PC {n}", "backstory": "Owes a debt to House Saltmark."} for n in range(pcs)]
    return PhaseContext(
        phase=phase_id,
        campaign={"name": "C", "setting": "S", "tone": "T"},
        player_characters=party,
        rows={},
        keys={"player_characters": [pc["key"] for pc in party]},
    )


def test_no_two_phase_prompts_are_the_same_text() -> None:
    texts = [resources.files("worldgen.prompts").joinpath(f"phase_{p.slug}.txt").read_text() for p in ALL_PHASES]
    assert len(set(texts)) == len(ALL_PHASES)  # every profile's phases


def test_the_request_every_full_profile_phase_ends_with_is_written_once() -> None:
    """Each full-profile phase file holds its own guidance only; the frame around it (the heading and
    the request: tables, sizes, descriptions, keys, the tool, the context) is one file."""
    folder = resources.files("worldgen.prompts")
    frame = folder.joinpath(PHASE_FRAMES["full"]).read_text()
    for phase in PHASES:
        own = folder.joinpath(f"phase_{phase.slug}.txt").read_text()
        assert not {line for line in frame.splitlines() if line.strip()} & set(own.splitlines()), phase.id
        world = context(phase.id, 2)
        prompt = phase_prompt(phase, world, size_hint(phase, 2))
        assert prompt.startswith(f"Phase {phase.id}: {phase.name}.\nFocus: {phase.focus}.\n\nWhat matters here:")
        assert "\nFill these tables: " + ", ".join(phase.tables) + ".\n" in prompt
        assert prompt.endswith("\nThe campaign and the world so far:\n" + world.render())


def test_every_table_of_every_phase_has_a_declared_row_target() -> None:
    assert {t for p in PHASES for t in p.tables} == set(ROW_TARGETS)


@pytest.mark.parametrize("pcs", [1, 4, 8])
def test_row_targets_grow_with_the_party_and_reach_prompt_and_tool(pcs: int) -> None:
    phase = get_phase("2A")
    expected = row_target("entities", pcs, phase.max_rows_per_table)

    prompt = phase_prompt(phase, context("2A", pcs), size_hint(phase, pcs))
    tool = with_row_targets(load_tool(phase), phase, pcs)

    assert f"- entities: about {expected} (" in prompt
    assert f"about {expected} row(s) for {pcs} PC(s)" in tool["input_schema"]["properties"]["entities"]["description"]
    assert row_target("entities", 8, 40) > row_target("entities", 1, 40)


@pytest.mark.parametrize("pcs", range(1, 9))
def test_the_cast_2a_is_asked_for_holds_the_roles_later_phases_hand_out_with_room(pcs: int) -> None:
    phase = get_phase("2A")
    roles = sum(row_target(t, pcs, 40) for t in ROLE_TABLES)

    cast = row_target("entities", pcs, phase.max_rows_per_table)

    assert cast >= cast_for_roles(roles)
    assert cast * (ROLE_LIMIT - 1) >= roles  # two roles each on average: a role of room for 3A beside 3B


def test_row_targets_in_the_tool_are_replaced_not_appended_when_applied_twice() -> None:
    phase = get_phase("3C")
    once = with_row_targets(load_tool(phase), phase, 2)
    assert with_row_targets(once, phase, 2) == once


def test_a_target_never_exceeds_the_phase_row_cap() -> None:
    assert row_target("pc_connections", 100, 80) == 80


def test_the_first_phase_prompt_carries_the_party_and_asks_for_their_homelands() -> None:
    phase = get_phase("1A")
    prompt = phase_prompt(phase, context("1A", 3), size_hint(phase, 3))
    assert "House Saltmark" in prompt
    assert "homeland" in prompt
