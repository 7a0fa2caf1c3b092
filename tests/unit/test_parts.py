"""Parts of a phase (``Phase.parts``) are generated independently: they must partition the phase's
tables, and no part may refer to a table another part fills."""

from __future__ import annotations

import re

import pytest

from worldgen.phases import PHASES, Phase
from worldgen.schema.tools import load_tool

_REFERENCE = re.compile(r"Key of (?:a|the referenced) row of ([a-z_ ]+?)\.")


@pytest.mark.parametrize("phase", [p for p in PHASES if p.parts], ids=lambda p: p.id)
def test_parts_partition_the_phase_tables(phase: Phase) -> None:
    listed = [table for part in phase.parts for table in part]
    assert sorted(listed) == sorted(phase.tables)
    assert len(listed) == len(set(listed))


@pytest.mark.parametrize("phase", [p for p in PHASES if p.parts], ids=lambda p: p.id)
def test_no_part_refers_to_a_table_of_another_part(phase: Phase) -> None:
    tables = load_tool(phase)["input_schema"]["properties"]
    for part in phase.parts:
        for table in part:
            for schema in tables[table]["items"]["properties"].values():
                match = _REFERENCE.search(schema.get("description", ""))
                target = match.group(1).strip() if match else None
                assert target not in phase.tables or target in part, f"{table} -> {target}"


def test_a_phase_without_parts_is_one_call_with_every_table() -> None:
    assert PHASES[0].table_groups == (PHASES[0].tables,)
