"""Row targets consistent with the rules the prompts state next to them (issue 24): no rule that
needs more rows than its target gives, for a party of 1 to 8 player characters, in either profile."""

from __future__ import annotations

import math
import re

import pytest

from worldgen.local.campaigns import MAX_PLAYER_CHARACTERS
from worldgen.phases import PROFILE_NAMES, PROFILES, row_target, row_targets
from worldgen.prompts import size_hint

RULE_WORDS = re.compile(r"\b(every|each|per PC|at least)\b")


@pytest.mark.parametrize("profile", PROFILE_NAMES)
@pytest.mark.parametrize("pcs", range(1, MAX_PLAYER_CHARACTERS + 1))
def test_every_target_gives_the_rows_its_rule_needs(profile: str, pcs: int) -> None:
    short = []
    for phase in PROFILES[profile]:
        for table in phase.tables:
            target = row_targets(profile).get(table)
            if target is None or target.at_least is None:
                continue
            basis, per = target.at_least
            needed = math.ceil(per * (pcs if basis == "pc" else row_target(basis, pcs, 10**6, profile)))
            given = row_target(table, pcs, phase.max_rows_per_table, profile)
            if given < needed:
                short.append(f"{table}: target {given}, its rule ({target.note}) needs {needed}")
    assert short == []


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_every_note_that_states_a_rule_declares_what_it_needs(profile: str) -> None:
    undeclared = [
        t for t, target in row_targets(profile).items() if RULE_WORDS.search(target.note) and not target.at_least
    ]
    assert undeclared == []


def test_3c_asks_a_location_for_every_npc_and_its_target_has_room_for_them() -> None:
    phase = PROFILES["full"][-1]
    for pcs in range(1, MAX_PLAYER_CHARACTERS + 1):
        hint = size_hint(phase, pcs)
        npcs = row_target("entities", pcs, 60)
        assert f"- entity_locations: about {row_target('entity_locations', pcs, 80)} (every NPC somewhere)" in hint
        assert row_target("entity_locations", pcs, phase.max_rows_per_table) >= npcs
