"""Every rule of a phase's tool input checked before the save, reported by table and row key.

Three sources, all derived rather than hand-written:
- the tool schema (JSON Schema, validated by ``jsonschema``): types, enums, bounds, required, unknown fields;
- the catalog's constraints that span rows or columns: UNIQUE groups (pairs, one-per-parent),
  ``a <> b`` (distinct ends), ``num_nonnulls(...) = 1`` (exactly one target) and
  ``a IS NULL OR b IS NULL OR a <= b`` (cross-column order);
- ``save.validate_phase_input`` (keys, references, what PostgreSQL types add to the schema).

Keys are forgiving: ``slug_keys`` turns ``Iron_Marches``, ``iron marches`` and ``Île-d'Or`` into
slugs in definitions and references alike, and reports two keys that collide once slugged. When
PostgreSQL still rejects a row, ``database_error`` names it by key, never by UUID.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import jsonschema
import psycopg

from worldgen.db.problems import Problem
from worldgen.errors import InvalidModelOutput
from worldgen.phases import Phase
from worldgen.schema.spec import TableSpec
from worldgen.schema.tools import load_tool

_NOT_EQUAL = re.compile(r"^CHECK \(\((\w+) <> (\w+)\)\)$")
_EXACTLY_ONE = re.compile(r"^CHECK \(\(num_nonnulls\(([\w, ]+)\) = 1\)\)$")
_ORDERED = re.compile(r"^CHECK \(\(\((\w+) IS NULL\) OR \((\w+) IS NULL\) OR \((\w+) <= (\w+)\)\)\)$")
_REQUIRED = re.compile(r"^'(.+)' is a required property$")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

_CONSTRAINTS = """
SELECT c.relname AS table_name, con.conname AS name, con.contype AS kind,
       pg_get_constraintdef(con.oid) AS definition,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY AS k(num, pos)
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.num ORDER BY k.pos) AS columns
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND con.contype IN ('u', 'c') AND c.relname = ANY(%s)
ORDER BY c.relname, con.conname
"""


@dataclass(frozen=True)
class Rule:
    """One multi-row or multi-column rule of a table, in tool-property names."""

    table: str
    kind: str  # unique | distinct | exactly_one | ordered
    properties: tuple[str, ...]
    nulls_distinct: bool = True


def slug(text: str) -> str:
    """``Île-d'Or`` -> ``ile-d-or``; ``Iron_Marches`` and ``iron marches`` -> ``iron-marches``."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")


def slug_keys(phase: Phase, specs: Mapping[str, TableSpec], tool_input: Any) -> tuple[Any, list[Problem]]:
    """A copy of ``tool_input`` with every key and key reference slugged, and the keys that collide."""
    if not isinstance(tool_input, dict):
        return tool_input, []
    slugged = copy.deepcopy(tool_input)
    problems: list[Problem] = []
    for table in phase.tables:
        rows = slugged.get(table)
        if not isinstance(rows, list) or table not in specs:
            continue
        references = [c.property_name for c in specs[table].foreign_keys]
        written: dict[str, str] = {}
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                continue
            for prop in ("key", *references):
                value = row.get(prop)
                if isinstance(value, str) and slug(value):
                    row[prop] = slug(value)
            original = tool_input[table][index].get("key")
            if isinstance(original, str) and slug(original):
                first = written.setdefault(row["key"], original)
                if first != original:
                    problems.append(
                        Problem(
                            table,
                            f"keys {first!r} and {original!r} are the same key {row['key']!r} once written as a"
                            " slug: give them different keys",
                            index,
                            row["key"],
                            "key",
                        )
                    )
    return slugged, problems


_RULES: dict[tuple[str, str, tuple[str, ...]], list[Rule]] = {}


def table_rules(conn: psycopg.Connection[Any], phase: Phase, specs: Mapping[str, TableSpec]) -> list[Rule]:
    """The catalog's multi-row and multi-column rules of ``phase``'s tables, read once per process."""
    cached = _RULES.get((conn.info.dsn, phase.id, phase.tables))  # a view of a phase has its own
    if cached is not None:
        return cached
    names = {(t, c.name): c.property_name for t in phase.tables for c in specs[t].exposed_columns}
    rules = []
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        constraints = cur.execute(_CONSTRAINTS, (list(phase.tables),)).fetchall()
    for con in constraints:
        table, definition = con["table_name"], con["definition"]

        def props(columns: list[str], table: str = table) -> tuple[str, ...] | None:
            found = tuple(names.get((table, c), "") for c in columns)
            return None if "" in found else found

        if con["kind"] == "u":
            columns = [c for c in con["columns"] if c != "campaign_id"]
            if columns == ["key"] or not (found := props(columns)):
                continue  # keys are checked by validate_phase_input
            rules.append(Rule(table, "unique", found, "NULLS NOT DISTINCT" not in definition))
        elif (m := _NOT_EQUAL.match(definition)) and (found := props([m[1], m[2]])):
            rules.append(Rule(table, "distinct", found))
        elif (m := _EXACTLY_ONE.match(definition)) and (found := props([c.strip() for c in m[1].split(",")])):
            rules.append(Rule(table, "exactly_one", found))
        elif (m := _ORDERED.match(definition)) and (found := props([m[3], m[4]])):
            rules.append(Rule(table, "ordered", found))
    _RULES[(conn.info.dsn, phase.id, phase.tables)] = rules
    return rules


def rule_problems(rules: list[Rule], tool_input: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    for rule in rules:
        rows = tool_input.get(rule.table)
        if not isinstance(rows, list):
            continue
        seen: dict[tuple[Any, ...], str] = {}
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                continue
            key = row.get("key") if isinstance(row.get("key"), str) else None
            values = tuple(row.get(p) for p in rule.properties)
            if not all(isinstance(v, str | int | float | bool | type(None)) for v in values):
                continue  # a wrong type is reported by the schema
            listed = ", ".join(rule.properties)
            if rule.kind == "unique":
                if rule.nulls_distinct and None in values:
                    continue
                if values in seen:
                    what = "parent" if len(values) == 1 else "combination"
                    problems.append(
                        Problem(rule.table, f"same {listed} as row {seen[values]!r}: one row per {what}", index, key)
                    )
                else:
                    seen[values] = key or f"#{index}"
            elif rule.kind == "distinct" and values[0] is not None and values[0] == values[1]:
                problems.append(Problem(rule.table, f"{listed} must differ (an edge needs two ends)", index, key))
            elif rule.kind == "exactly_one" and sum(v is not None for v in values) != 1:
                given = [p for p, v in zip(rule.properties, values, strict=True) if v is not None]
                problems.append(
                    Problem(rule.table, f"give exactly one of {listed} (given: {given or 'none'})", index, key)
                )
            elif rule.kind == "ordered" and _numbers(values) and values[0] > values[1]:  # type: ignore[operator]
                problems.append(
                    Problem(rule.table, f"{rule.properties[0]} must not exceed {rule.properties[1]}", index, key)
                )
    return problems


def _numbers(values: tuple[Any, ...]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


@cache
def _validator(phase_id: str) -> jsonschema.Draft202012Validator:
    from worldgen.phases import get_phase

    return jsonschema.Draft202012Validator(load_tool(get_phase(phase_id))["input_schema"])


def schema_problems(phase: Phase, tool_input: Any, input_schema: dict[str, Any] | None = None) -> list[Problem]:
    """What the committed tool schema (or ``input_schema``, a tool of its own such as a reroll's)
    says, checked by jsonschema, located by table, row and field."""
    problems = []
    validator = _validator(phase.id) if input_schema is None else jsonschema.Draft202012Validator(input_schema)
    for error in validator.iter_errors(tool_input):
        path = list(error.absolute_path)
        table = str(path[0]) if path else "(input)"
        index = path[1] if len(path) > 1 and isinstance(path[1], int) else None
        column = str(path[2]) if len(path) > 2 else None
        row = error.instance if index is not None and len(path) == 2 else None
        named = _REQUIRED.match(error.message)
        if not path and error.validator == "required" and named:  # a whole table is missing: name it
            table = named[1]
        elif not path and error.validator == "additionalProperties" and isinstance(tool_input, dict):
            table = next((t for t in tool_input if t not in phase.tables), table)
        elif error.validator == "required" and isinstance(row, dict):
            column = named[1] if named else None
        elif error.validator == "additionalProperties" and isinstance(row, dict):
            column = next((p for p in row if p not in error.schema.get("properties", {})), None)
        key = None
        if index is not None and isinstance(tool_input, dict):
            rows = tool_input.get(table)
            if isinstance(rows, list) and index < len(rows) and isinstance(rows[index], dict):
                found = rows[index].get("key")
                key = found if isinstance(found, str) else None
        problems.append(Problem(table, error.message[:300], index, key, column))
    return problems


def validate(
    conn: psycopg.Connection[Any],
    phase: Phase,
    specs: Mapping[str, TableSpec],
    tool_input: Any,
    known_keys: Mapping[str, Mapping[str, Any]],
    *,
    input_schema: dict[str, Any] | None = None,
    beside: Mapping[str, list[dict[str, Any]]] | None = None,
) -> list[Problem]:
    """Every problem of ``tool_input`` at once: the saver's checks, the schema's, the catalog's rules.

    ``input_schema``: the tool the rows answer, when not the phase's committed one. ``beside``: rows
    of the same tables held fixed (in tool properties), which the catalog's rules across rows (a
    unique pair, one per parent) count too; only the input's own rows are reported.
    """
    from worldgen.db.save import validate_phase_input

    found = validate_phase_input(phase, specs, tool_input, known_keys)
    located = {(p.table, p.index, p.column) for p in found}
    found += [
        p for p in schema_problems(phase, tool_input, input_schema) if (p.table, p.index, p.column) not in located
    ]
    if isinstance(tool_input, dict):
        fixed = beside or {}
        together = {t: [*fixed.get(t, []), *rows] if isinstance(rows, list) else rows for t, rows in tool_input.items()}
        for p in rule_problems(table_rules(conn, phase, specs), together):
            offset = len(fixed.get(p.table, []))
            if p.index is None or p.index >= offset:
                found.append(dataclasses.replace(p, index=None if p.index is None else p.index - offset))
    return found


def database_error(
    table: str,
    exc: psycopg.Error,
    ids: Mapping[str, Mapping[str, uuid.UUID]],
    known: Mapping[str, Mapping[str, uuid.UUID]],
) -> InvalidModelOutput:
    """PostgreSQL's rejection of a row of ``table``, with every UUID replaced by the key the model wrote."""
    by_id = {str(row_id): key for pool in (ids, known) for keys in pool.values() for key, row_id in keys.items()}
    diag = exc.diag
    detail = _UUID.sub(lambda m: repr(by_id.get(m[0], "?")), diag.message_detail or "")
    row_key = next((by_id[m] for m in _UUID.findall(diag.message_detail or "") if m in ids.get(table, {})), None)
    found = Problem(
        table, f"{diag.message_primary} ({diag.constraint_name or 'no constraint'}) {detail}".strip(), key=row_key
    )
    return InvalidModelOutput(str(found), problems=[found])


def rows_touched(problems: list[Problem]) -> set[tuple[str, str]] | None:
    """(table, key) of every row a problem is about; None when one is about no row (a whole table, the input)."""
    touched = set()
    for problem in problems:
        if problem.key is None:
            return None
        touched.add((problem.table, problem.key))
    return touched


def drop_rows(
    phase: Phase, specs: Mapping[str, TableSpec], tool_input: dict[str, Any], problems: list[Problem]
) -> tuple[dict[str, Any], list[dict[str, str]]] | None:
    """``tool_input`` without the rows ``problems`` are about and the rows of the phase that refer to them.

    Returns (the rest, what was dropped with the reason) or None when a problem is about no single row.
    """
    touched = rows_touched(problems)
    if touched is None:
        return None
    reasons: dict[tuple[str, str], str] = {}
    for problem in problems:
        reasons.setdefault((problem.table, problem.key or ""), str(problem))
    changed = True
    while changed:  # whatever refers to a dropped row goes too, transitively
        changed = False
        for table in phase.tables:
            for row in tool_input.get(table) or []:
                if not isinstance(row, dict) or (table, row.get("key")) in reasons:
                    continue
                for column in specs[table].foreign_keys:
                    target = (column.references or "", row.get(column.property_name))
                    if target in reasons and column.references in phase.tables:
                        reasons[(table, str(row.get("key")))] = (
                            f"{table}[key={row.get('key')}]: refers to the dropped {target[0]} row {target[1]!r}"
                        )
                        changed = True
                        break
    kept = {
        table: [
            r for r in (tool_input.get(table) or []) if not (isinstance(r, dict) and (table, r.get("key")) in reasons)
        ]
        for table in phase.tables
    }
    # One entry per row removed (two rows sharing a key are two), by table and key.
    dropped = sorted(
        (
            {"table": table, "key": str(row.get("key")), "reason": reasons[table, str(row.get("key"))]}
            for table in phase.tables
            for row in tool_input.get(table) or []
            if isinstance(row, dict) and isinstance(row.get("key"), str) and (table, row.get("key")) in reasons
        ),
        key=lambda d: (d["table"], d["key"]),
    )
    return kept, dropped
