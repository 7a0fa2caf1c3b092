"""The rows of a campaign's world tables, read in one query (``to_jsonb`` of each row, by table)."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg import sql


def campaign_rows(
    conn: psycopg.Connection[Any], campaign_id: uuid.UUID | str, tables: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """Every row of ``tables`` for the campaign, by table, each table sorted by key (a stable order
    for prompts and reports)."""
    found: dict[str, list[dict[str, Any]]] = {t: [] for t in tables}
    if not tables:
        return found
    union = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {name} AS t, to_jsonb(x) AS row FROM {table} x WHERE campaign_id = %(c)s").format(
            name=sql.Literal(t), table=sql.Identifier(t)
        )
        for t in tables
    )
    with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        for table, row in cur.execute(union, {"c": str(campaign_id)}):
            found[table].append(row)
    for rows in found.values():
        rows.sort(key=lambda r: r["key"])
    return found
