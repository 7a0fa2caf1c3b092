"""Reads TableSpecs from the live PostgreSQL catalog of a migrated database."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import psycopg

from worldgen.schema.spec import ColumnSpec, TableSpec

# PostgreSQL stores `CHECK (kind IN ('a', 'b'))` as `CHECK ((kind = ANY (ARRAY['a'::text, 'b'::text])))`.
_IN_LIST = re.compile(r"^CHECK \(\(?\(?(\w+) = ANY \(\(?ARRAY\[(.*)\]\)?(?:::text\[\])?\)\)?\)?\)$")
_LITERAL = re.compile(r"'((?:[^']|'')*)'(?:::[\w ]+)?")

_COLUMNS = """
SELECT c.relname AS table_name, a.attname AS column_name,
       format_type(a.atttypid, a.atttypmod) AS pg_type, NOT a.attnotnull AS nullable,
       a.atthasdef AS has_default, a.attgenerated <> '' AS generated,
       col_description(c.oid, a.attnum) AS comment, obj_description(c.oid, 'pg_class') AS table_comment
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname = ANY(%s)
ORDER BY c.relname, a.attnum
"""

_CONSTRAINTS = """
SELECT c.relname AS table_name, con.contype AS kind, pg_get_constraintdef(con.oid) AS definition,
       ref.relname AS referenced_table,
       ARRAY(SELECT attname FROM pg_attribute WHERE attrelid = c.oid AND attnum = ANY(con.conkey)) AS columns
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class ref ON ref.oid = con.confrelid
WHERE n.nspname = 'public' AND con.contype IN ('f', 'c') AND c.relname = ANY(%s)
"""


def parse_in_list(definition: str) -> tuple[str, list[str]] | None:
    """``CHECK ((kind = ANY (ARRAY['a'::text, ...])))`` -> ("kind", ["a", ...]); else None."""
    match = _IN_LIST.match(definition.strip())
    if not match:
        return None
    values = [value.replace("''", "'") for value in _LITERAL.findall(match.group(2))]
    return match.group(1), values


def read_table_specs(conn: psycopg.Connection[Any], tables: Iterable[str]) -> dict[str, TableSpec]:
    names = list(tables)
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        columns = cur.execute(_COLUMNS, (names,)).fetchall()
        constraints = cur.execute(_CONSTRAINTS, (names,)).fetchall()

    references: dict[tuple[str, str], str] = {}
    enums: dict[tuple[str, str], list[str]] = {}
    for con in constraints:
        if con["kind"] == "f" and len(con["columns"]) == 1:
            references[(con["table_name"], con["columns"][0])] = con["referenced_table"]
        elif con["kind"] == "c":
            parsed = parse_in_list(con["definition"])
            if parsed:
                enums[(con["table_name"], parsed[0])] = parsed[1]

    specs: dict[str, TableSpec] = {}
    for row in columns:
        table = row["table_name"]
        spec = specs.setdefault(table, TableSpec(name=table, comment=row["table_comment"], columns=[]))
        spec.columns.append(
            ColumnSpec(
                name=row["column_name"],
                pg_type=_normalise_type(row["pg_type"]),
                nullable=row["nullable"],
                has_default=row["has_default"] and not row["generated"],
                generated=row["generated"],
                comment=row["comment"],
                enum=enums.get((table, row["column_name"])),
                references=references.get((table, row["column_name"])),
            )
        )
    missing = set(names) - set(specs)
    if missing:
        raise LookupError(f"tables not in the catalog (is the database migrated?): {sorted(missing)}")
    return {name: specs[name] for name in names}


def _normalise_type(pg_type: str) -> str:
    if pg_type.startswith("numeric"):
        return "numeric"
    if pg_type.startswith("character varying"):
        return "text"
    return pg_type.replace("timestamp with time zone", "timestamptz")


def foreign_key_edges(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str]]:
    """Every (table, column, referenced table) foreign key of the public schema."""
    rows = conn.execute(
        """
        SELECT c.relname, a.attname, ref.relname
        FROM pg_constraint con
        JOIN pg_class c ON c.oid = con.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_class ref ON ref.oid = con.confrelid
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = con.conkey[1]
        WHERE n.nspname = 'public' AND con.contype = 'f'
        """
    ).fetchall()
    return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in rows]  # type: ignore[misc]
