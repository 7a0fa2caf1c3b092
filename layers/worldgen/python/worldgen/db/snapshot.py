"""The rows a generation replaces, kept so the previous world can be restored exactly.

A snapshot is ``{table: [row as JSON, ...]}`` of the campaign's rows in the tables a generation
will rewrite, taken when the generation is created. Restoring deletes what the generation wrote and inserts the
snapshot's rows with their original ids, parents first, in one transaction, keeping what the game
master locked, edited or added since the snapshot (``restore_world``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from worldgen.phases import ALL_PHASES, WORLD_TABLES


def tables_of(phase_ids: Iterable[str]) -> list[str]:
    """World tables of ``phase_ids``, in insert order (a table's parents first)."""
    wanted = set(phase_ids)
    return [table for phase in ALL_PHASES if phase.id in wanted for table in phase.tables]


def capture_world(
    conn: psycopg.Connection[Any], campaign_id: uuid.UUID | str, tables: Sequence[str]
) -> dict[str, list[Any]] | None:
    """The campaign's rows of ``tables`` (None when there are none: nothing is replaced)."""
    captured: dict[str, list[Any]] = {}
    for table in tables:
        assert table in WORLD_TABLES, table
        row = conn.execute(
            sql.SQL(
                "SELECT coalesce(jsonb_agg(to_jsonb(t)), '[]'::jsonb) AS rows FROM {} t WHERE campaign_id = %s"
            ).format(sql.Identifier(table)),
            (str(campaign_id),),
        ).fetchone()
        rows = list(row["rows"]) if row else []
        if rows:
            captured[table] = rows
    return captured or None


@dataclass(frozen=True)
class KeptRow:
    """A row a restore left as it is, and why (``locked``, ``edited``, ``added`` by the game master
    after the snapshot, or ``needed`` by such a row)."""

    table: str
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.table} {self.key} ({self.reason})"


def restore_world(
    conn: psycopg.Connection[Any],
    campaign_id: uuid.UUID | str,
    tables: Sequence[str],
    snapshot: dict[str, list[Any]] | None,
    generation_id: uuid.UUID | str,
) -> list[KeptRow]:
    """Put the snapshot's rows of ``tables`` back in place of what ``generation_id`` wrote (call
    inside a transaction), keeping the game master's work since the snapshot: a locked row, a
    snapshot row edited since (it differs from its snapshot), a row added since by someone other
    than the generation, and the rows of ``tables`` those refer to. A snapshot row whose key a kept
    row holds is not put back; references to it go to the kept row (rows refer to each other by key).
    Returns the kept rows."""
    before = {table: {str(r["id"]): r for r in (snapshot or {}).get(table) or []} for table in tables}
    current: dict[str, dict[str, dict[str, Any]]] = {}
    for table in tables:
        rows = conn.execute(
            sql.SQL("SELECT to_jsonb(t) AS row FROM {} t WHERE campaign_id = %s").format(sql.Identifier(table)),
            (str(campaign_id),),
        ).fetchall()
        current[table] = {str(r["row"]["id"]): r["row"] for r in rows}
    all_references = _references(conn)
    cleared = {(child, column) for child, column, _ in all_references}
    kept: dict[tuple[str, str], str] = {}
    for table in tables:
        for row_id, row in current[table].items():
            old = before[table].get(row_id)
            if old is not None and _unchanged(table, old, row, cleared):
                continue  # put back as the snapshot has it
            if row.get("locked"):
                kept[table, row_id] = "locked"
            elif old is not None:
                kept[table, row_id] = "edited"
            elif str(row.get("generation_id")) != str(generation_id):
                kept[table, row_id] = "added"
    # A kept row keeps what it refers to: a delete would cascade to it or clear its reference.
    wanted = set(tables)
    references = [(child, column, parent) for child, column, parent in all_references if {child, parent} <= wanted]
    grew = True
    while grew:
        grew = False
        for child, column, parent in references:
            for table, row_id in list(kept):
                if table != child:
                    continue
                target = current[child][row_id].get(column)
                if target is not None and str(target) in current[parent] and (parent, str(target)) not in kept:
                    kept[parent, str(target)] = "needed"
                    grew = True
    for table in reversed(tables):
        ids = [row_id for (t, row_id) in kept if t == table]
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE campaign_id = %s AND NOT (id = ANY(%s::uuid[]))").format(
                sql.Identifier(table)
            ),
            (str(campaign_id), ids),
        )
    # Snapshot rows whose key a kept row holds stay out; what referred to them refers to the kept row.
    moved: dict[str, str] = {}
    for table in tables:
        kept_keys = {current[table][row_id].get("key"): row_id for (t, row_id) in kept if t == table}
        kept_keys.pop(None, None)
        for row_id, row in before[table].items():
            holder = kept_keys.get(row.get("key"))
            if holder is not None and holder != row_id:
                moved[row_id] = holder
    for table in tables:
        rows = [
            {column: moved.get(value, value) if isinstance(value, str) else value for column, value in row.items()}
            for row_id, row in before[table].items()
            if (table, row_id) not in kept and row_id not in moved
        ]
        if not rows:
            continue
        columns = insertable_columns(conn, table)
        names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        # One statement per table: a self-reference (parent location) is checked at its end.
        conn.execute(
            sql.SQL(
                "INSERT INTO {table} ({names}) SELECT {names} FROM jsonb_populate_recordset(NULL::{table}, %s)"
            ).format(table=sql.Identifier(table), names=names),
            (Jsonb(rows),),
        )
    return [
        KeptRow(table, str(current[table][row_id].get("key") or row_id), reason)
        for (table, row_id), reason in kept.items()
    ]


def _unchanged(table: str, old: dict[str, Any], row: dict[str, Any], cleared: set[tuple[str, str]]) -> bool:
    """Whether ``row`` is its snapshot ``old`` but for references a delete cleared (ON DELETE SET
    NULL when the generation replaced what they referred to): no one edited it."""
    return all(
        row.get(column) == value or (row.get(column) is None and (table, column) in cleared)
        for column, value in old.items()
    )


def _references(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str]]:
    """(child table, column, parent table) of every one-column foreign key."""
    rows = conn.execute(
        "SELECT c.conrelid::regclass::text AS child, a.attname AS column, c.confrelid::regclass::text AS parent"
        " FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]"
        " WHERE c.contype = 'f' AND cardinality(c.conkey) = 1"
    ).fetchall()
    return [(r["child"].removeprefix("public."), r["column"], r["parent"].removeprefix("public.")) for r in rows]


def insertable_columns(conn: psycopg.Connection[Any], table: str) -> list[str]:
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
        " AND attgenerated = '' ORDER BY attnum",
        (f"public.{table}",),
    ).fetchall()
    return [r["attname"] for r in rows]
