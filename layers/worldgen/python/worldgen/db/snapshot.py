"""The rows a generation replaces, kept so the previous world can be restored exactly.

A snapshot is ``{table: [row as JSON, ...]}`` of the campaign's rows in the tables a generation
will rewrite, taken when the generation is created. Restoring deletes what is there now and
inserts the snapshot's rows with their original ids, parents first, in one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
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


def restore_world(
    conn: psycopg.Connection[Any],
    campaign_id: uuid.UUID | str,
    tables: Sequence[str],
    snapshot: dict[str, list[Any]] | None,
) -> dict[str, int]:
    """Replace the campaign's rows of ``tables`` by the snapshot's (call inside a transaction)."""
    for table in reversed(tables):
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE campaign_id = %s").format(sql.Identifier(table)), (str(campaign_id),)
        )
    restored: dict[str, int] = {}
    for table in tables:
        rows = (snapshot or {}).get(table) or []
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
        restored[table] = len(rows)
    return restored


def insertable_columns(conn: psycopg.Connection[Any], table: str) -> list[str]:
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped"
        " AND attgenerated = '' ORDER BY attnum",
        (f"public.{table}",),
    ).fetchall()
    return [r["attname"] for r in rows]
