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
_NUMBERS = re.compile(r"^\s*-?\d+(?:\.\d+)?\s*(?:,\s*-?\d+(?:\.\d+)?\s*)*$")
# `CHECK (x BETWEEN 1 AND 30)` is stored as `CHECK (((x >= 1) AND (x <= 30)))`.
_BOUND = re.compile(r"\((\w+) (>=|>|<=|<) \(?(-?\d+(?:\.\d+)?)\)?(?:::numeric)?\)")

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


def parse_in_list(definition: str) -> tuple[str, list[Any]] | None:
    """``CHECK ((kind = ANY (ARRAY['a'::text, ...])))`` -> ("kind", ["a", ...]); else None."""
    match = _IN_LIST.match(definition.strip())
    if not match:
        return None
    inner = match.group(2)
    if _NUMBERS.match(inner):
        return match.group(1), [int(v) for v in inner.split(",")]
    values = [value.replace("''", "'") for value in _LITERAL.findall(inner)]
    return (match.group(1), values) if values else None


def parse_bounds_exact(definition: str) -> tuple[str, float | None, bool, float | None, bool] | None:
    """``CHECK ((x > 0))`` -> ("x", 0, True, None, False): (column, low, low exclusive, high, high exclusive)."""
    if " OR " in definition or "IS NULL" in definition:
        return None
    bounds = _BOUND.findall(definition)
    if not bounds or len({column for column, _, _ in bounds}) != 1:
        return None
    low: float | None = None
    high: float | None = None
    low_exclusive = high_exclusive = False
    for _, op, number in bounds:
        if op in (">=", ">"):
            low, low_exclusive = float(number), op == ">"
        else:
            high, high_exclusive = float(number), op == "<"
    return bounds[0][0], low, low_exclusive, high, high_exclusive


def parse_bounds(definition: str) -> tuple[str, float | None, float | None] | None:
    """The inclusive bounds of an integer column: ``CHECK (((x >= 1) AND (x <= 30)))`` -> ("x", 1, 30);
    ``x > 0`` -> ("x", 1, None). One-column range checks only."""
    exact = parse_bounds_exact(definition)
    if exact is None:
        return None
    column, low, low_exclusive, high, high_exclusive = exact
    if low is not None and low_exclusive:
        low = low + 1 if low.is_integer() else low
    if high is not None and high_exclusive:
        high = high - 1 if high.is_integer() else high
    return column, low, high


_INTEGER_TYPES = ("integer", "bigint", "smallint")


def read_table_specs(conn: psycopg.Connection[Any], tables: Iterable[str]) -> dict[str, TableSpec]:
    names = list(tables)
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        columns = cur.execute(_COLUMNS, (names,)).fetchall()
        constraints = cur.execute(_CONSTRAINTS, (names,)).fetchall()

    references: dict[tuple[str, str], str] = {}
    enums: dict[tuple[str, str], list[Any]] = {}
    ranges: dict[tuple[str, str], tuple[str, ...]] = {}
    for con in constraints:
        if con["kind"] == "f" and len(con["columns"]) == 1:
            references[(con["table_name"], con["columns"][0])] = con["referenced_table"]
        elif con["kind"] == "c":
            parsed = parse_in_list(con["definition"])
            if parsed:
                enums[(con["table_name"], parsed[0])] = parsed[1]
            elif (exact := parse_bounds_exact(con["definition"])) is not None:
                ranges[(con["table_name"], exact[0])] = (con["definition"],)

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
                **_bounds(ranges.get((table, row["column_name"])), _normalise_type(row["pg_type"])),
            )
        )
    missing = set(names) - set(specs)
    if missing:
        raise LookupError(f"tables not in the catalog (is the database migrated?): {sorted(missing)}")
    return {name: specs[name] for name in names}


def _bounds(found: tuple[str, ...] | None, pg_type: str) -> dict[str, float | None]:
    """minimum / maximum / exclusive_minimum of a column from its range CHECK, by column type."""
    if not found:
        return {}
    if pg_type in _INTEGER_TYPES:
        inclusive = parse_bounds(found[0])
        return {"minimum": inclusive[1], "maximum": inclusive[2]} if inclusive else {}
    exact = parse_bounds_exact(found[0])
    assert exact is not None
    _, low, low_exclusive, high, _ = exact
    if low_exclusive:
        return {"exclusive_minimum": low, "maximum": high}
    return {"minimum": low, "maximum": high}


def _normalise_type(pg_type: str) -> str:
    if pg_type.startswith("numeric"):
        return "numeric"
    if pg_type.startswith("character varying"):
        return "text"
    return pg_type.replace("timestamp with time zone", "timestamptz")


def foreign_key_edges(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str]]:
    """Every (table, column, referenced table) foreign key of the public schema."""
    with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        rows = cur.execute(
            """
        SELECT c.relname AS table_name, a.attname AS column_name, ref.relname AS referenced_table
        FROM pg_constraint con
        JOIN pg_class c ON c.oid = con.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_class ref ON ref.oid = con.confrelid
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = con.conkey[1]
        WHERE n.nspname = 'public' AND con.contype = 'f'
        """
        ).fetchall()
    return [(table, column, referenced) for table, column, referenced in rows]
