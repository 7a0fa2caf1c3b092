"""The phase registry (worldgen.phases) agrees with the foreign keys of the migrated catalog."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import psycopg
import pytest

from worldgen.db.catalog import foreign_key_edges
from worldgen.db.connection import connect
from worldgen.phases import (
    ALL_PHASES,
    CORE_TABLES,
    PHASES,
    PROFILES,
    WORLD_TABLES,
    Phase,
    ancestors,
    topological_order,
)


def owner_in_profile(phase: Phase, table: str) -> Phase | None:
    """The phase of ``phase``'s own profile that owns ``table`` (None for a core table)."""
    return next((p for p in PROFILES[phase.profile] if table in p.tables), None)


@pytest.fixture
def edges(db_url: str) -> list[tuple[str, str, str]]:
    """(table, column, referenced table) for every foreign key of the public schema."""
    with psycopg.connect(db_url) as conn:  # tuple rows: see test_foreign_key_edges_work_on_a_dict_row_connection
        found = foreign_key_edges(conn)
    assert found, "the migrated catalog has foreign keys"
    return found


@pytest.fixture
def public_tables(db_url: str) -> set[str]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").fetchall()
    return {row[0] for row in rows}


@pytest.mark.parametrize("phase", ALL_PHASES, ids=lambda p: p.id)  # every profile
def test_every_earlier_phase_a_phase_references_is_among_its_ancestors(
    phase: Phase, edges: list[tuple[str, str, str]]
) -> None:
    """A phase's tables may only reference tables of phases in ``ancestors(phase.id)``, the
    transitive closure of ``depends_on``: those phases have succeeded before it runs, so the rows
    its foreign keys name exist. References to core tables (campaigns, player characters) and to
    the phase's own tables need no dependency."""
    referenced = {
        owner.id: (table, column, target)
        for table, column, target in edges
        if table in phase.tables and (owner := owner_in_profile(phase, target)) is not None and owner.id != phase.id
    }
    if phase.depends_on:
        assert referenced, f"phase {phase.id} depends on {phase.depends_on} but references no earlier table"
    missing = {pid: edge for pid, edge in referenced.items() if pid not in ancestors(phase.id)}
    assert missing == {}, f"phase {phase.id} references phases it does not depend on: {missing}"


@pytest.mark.parametrize("phase", ALL_PHASES, ids=lambda p: p.id)  # every profile
def test_in_phase_references_point_at_tables_inserted_earlier(phase: Phase, edges: list[tuple[str, str, str]]) -> None:
    """``Phase.tables`` is the insert order of save_phase_rows: a table's in-phase parents come first."""
    late = [
        (table, column, target)
        for table, column, target in edges
        if table in phase.tables and target in phase.tables and phase.tables.index(target) > phase.tables.index(table)
    ]
    assert late == []


@pytest.mark.parametrize("profile", PROFILES)
def test_every_world_table_is_owned_by_exactly_one_phase_of_each_profile(public_tables: set[str], profile: str) -> None:
    owners: dict[str, list[str]] = {}
    for phase in PROFILES[profile]:
        for table in phase.tables:
            owners.setdefault(table, []).append(phase.id)
    assert {table: ids for table, ids in owners.items() if len(ids) != 1} == {}
    assert set(owners) == public_tables - set(CORE_TABLES)


def test_no_phase_owns_a_table_absent_from_the_catalog(public_tables: set[str]) -> None:
    assert [t for p in PHASES for t in p.tables if t not in public_tables] == []


def test_the_39_world_tables_and_6_core_tables_are_all_public_tables(public_tables: set[str]) -> None:
    assert len(WORLD_TABLES) == 39
    assert len(set(WORLD_TABLES)) == 39
    assert len(CORE_TABLES) == 6
    assert set(WORLD_TABLES) | set(CORE_TABLES) == public_tables
    assert set(WORLD_TABLES).isdisjoint(CORE_TABLES)


def test_the_registry_has_no_cycle_and_orders_every_phase_after_its_dependencies() -> None:
    order = [p.id for p in topological_order(PHASES)]
    assert sorted(order) == sorted(p.id for p in PHASES)
    for phase in PHASES:
        assert all(order.index(dep) < order.index(phase.id) for dep in phase.depends_on)


def test_a_cyclic_registry_is_rejected() -> None:
    by_id = {p.id: p for p in PHASES}
    cyclic = [*PHASES]
    cyclic[0] = replace(by_id["1A"], depends_on=("3C",))  # 1A -> 3C -> ... -> 1A
    with pytest.raises(ValueError, match="cycle"):
        topological_order(cyclic)


def test_3b_does_not_wait_for_2c_or_3a_so_the_dag_is_not_a_line() -> None:
    assert "2C" not in ancestors("3B")
    assert "3A" not in ancestors("3B")
    assert "3B" not in ancestors("3A")


def test_foreign_key_edges_work_on_a_dict_row_connection(db_url: str) -> None:
    """worldgen's own ``connect`` gives dict rows; the edges must still be (table, column, target)."""
    with connect(db_url) as conn:
        found: list[Any] = foreign_key_edges(conn)
    assert ("deities", "pantheon_id", "pantheons") in found
    assert all(len(edge) == 3 for edge in found)
