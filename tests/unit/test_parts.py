"""Parts of a phase (``Phase.parts``) are generated concurrently: together they cover the phase's
tables; without an outline each table is in one part and no part refers to a table another part
fills; with one (``Phase.outline``) a table may be dealt out between parts, which then hold every
row of the outline exactly once."""

from __future__ import annotations

import re

import pytest

from worldgen.outline import assigned_problems, check_outline, deal
from worldgen.phases import PHASES, Phase, get_phase
from worldgen.schema.tools import load_tool

_REFERENCE = re.compile(r"Key of (?:a|the referenced) row of ([a-z_ ]+?)\.")


@pytest.mark.parametrize("phase", [p for p in PHASES if p.parts], ids=lambda p: p.id)
def test_parts_cover_the_phase_tables(phase: Phase) -> None:
    listed = [table for part in phase.parts for table in part]
    assert set(listed) == set(phase.tables)
    if not phase.outline:  # a table in two parts is dealt by its first required reference (parts.deal_anchors)
        tables = load_tool(phase)["input_schema"]["properties"]
        for table in {t for t in listed if listed.count(t) > 1}:
            item = tables[table]["items"]
            assert any(_REFERENCE.search(item["properties"][p].get("description", "")) for p in item["required"]), table


@pytest.mark.parametrize("phase", [p for p in PHASES if p.parts and not p.outline], ids=lambda p: p.id)
def test_no_part_refers_to_a_table_of_another_part(phase: Phase) -> None:
    tables = load_tool(phase)["input_schema"]["properties"]
    for part in phase.parts:
        for table in part:
            for schema in tables[table]["items"]["properties"].values():
                match = _REFERENCE.search(schema.get("description", ""))
                target = match.group(1).strip() if match else None
                assert target not in phase.tables or target in part, f"{table} -> {target}"


def test_a_phase_without_parts_is_one_call_with_every_table() -> None:
    plain = [p for p in PHASES if not p.parts]
    for phase in plain:
        assert phase.table_groups == (phase.tables,) and phase.planned_calls == 1


@pytest.mark.parametrize("phase", [p for p in PHASES if p.outline], ids=lambda p: p.id)
def test_the_outline_is_dealt_out_every_row_to_exactly_one_part(phase: Phase) -> None:
    outline = {t: [{"key": f"{t}-{n}"} for n in range(7)] for t in phase.tables}
    dealt = deal(phase, outline)
    assert len(dealt) == len(phase.table_groups)
    for table in phase.tables:
        keys = [k for part in dealt for k in part.get(table, [])]
        assert sorted(keys) == sorted(r["key"] for r in outline[table])
    for part, group in zip(dealt, phase.table_groups, strict=True):
        assert set(part) <= set(group)
    npc_parts = len(get_phase("2A").table_groups)
    sizes = [len(part.get("entities", [])) for part in deal(get_phase("2A"), {"entities": outline_rows(npc_parts + 2)})]
    assert sizes == [2, 2] + [1] * (npc_parts - 2)  # a table split between parts: in turn, evenly


def outline_rows(count: int) -> list[dict[str, str]]:
    return [{"key": f"npc-{n}"} for n in range(count)]


def test_the_outline_check_slugs_keys_and_reports_every_problem_by_row() -> None:
    phase = get_phase("2A")
    warden = {"key": "Iron_Warden", "gist": "gaoler of the salt mines", "role": "villain"}
    abbot = {"key": "The Grey Abbot", "gist": "abbot who raised the cleric", "player_character_key": "teo"}
    answer = {"entities": [warden, {**warden, "key": "iron warden"}, {**warden, "key": "kept-one"}, "", abbot]}
    outline, problems = check_outline(phase, answer, {"entities": {"kept-one"}}, ["teo", "isa"])
    assert outline == {
        "entities": [
            {"key": "iron-warden", "gist": "gaoler of the salt mines", "role": "villain"},
            {"key": "the-grey-abbot", "gist": "abbot who raised the cleric", "player_character_key": "teo"},
        ]
    }
    assert problems == [
        "entities[key=iron-warden].key: duplicate key in this table",
        "entities[key=kept-one].key: key taken by a kept (locked) row: choose another",
        "entities[3]: a key is required (a slug, e.g. 'iron-marches')",
    ]
    assert check_outline(phase, {}, {})[1] == ["entities: missing: give an array of keys (it may be empty)"]


def test_an_outline_row_needs_a_short_gist_a_real_pc_and_a_short_role() -> None:
    phase = get_phase("2A")
    long_gist = " ".join(["word"] * 13)
    answer = {
        "entities": [
            {"key": "a"},
            {"key": "b", "gist": long_gist},
            {"key": "c", "gist": "a smuggler", "player_character_key": "nobody"},
            {"key": "d", "gist": "a smuggler", "role": "the one who betrayed everyone"},
            "e",
        ]
    }
    _, problems = check_outline(phase, answer, {}, ["teo"])
    assert problems == [
        "entities[key=a].gist: a gist is required: what the row is, in at most 12 words",
        "entities[key=b].gist: the gist has 13 words; at most 12",
        "entities[key=c].player_character_key: 'nobody' is not a player character; one of ['teo']",
        "entities[key=d].role: the role has 5 words; at most 3",
        "entities[key=e].gist: a gist is required: what the row is, in at most 12 words",
    ]


def test_a_part_must_write_exactly_its_rows() -> None:
    answer = {"entities": [{"key": "npc-1"}, {"key": "npc-9"}]}
    assert assigned_problems(answer, {"entities": ["npc-1", "npc-2"]}) == [
        "entities: keys not among this call's rows: ['npc-9']; write exactly ['npc-1', 'npc-2']",
        "entities: rows missing for the outline's keys ['npc-2']",
    ]
    assert assigned_problems({"entities": [{"key": "npc-1"}]}, {"entities": ["npc-1"]}) == []
