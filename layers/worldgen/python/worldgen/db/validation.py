"""Every rule of a phase's rows checked before the save, as Problems located by table, row key and field.

- What JSON Schema says (the committed tool schema, or the tool a call answers) is checked by
  ``jsonschema`` and nothing else: tables, types, enums, bounds, required and unknown fields, row
  counts. ``schema_problems`` only words its errors as the model reads them.
- By hand, only what JSON Schema cannot say: keys (slugs, duplicates, kept rows' keys), references
  to rows, hierarchy cycles, PostgreSQL's integer ranges, finite numbers, NUL and lone surrogates,
  text limits (``validate_phase_input``); the catalog's constraints across rows or columns
  (``table_rules``); an outline's rows (``outline_problems``).

Keys are forgiving (``slug_keys``: ``Iron_Marches`` and ``iron marches`` are ``iron-marches``).
``database_error`` names PostgreSQL's rejection of a row by key; ``drop_rows`` trims a partial save.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import jsonschema
import psycopg

from worldgen.db.problems import MAX_PROBLEM_CHARS, MAX_PROBLEMS_LISTED, Problem, clip
from worldgen.errors import InvalidModelOutput
from worldgen.phases import Phase
from worldgen.schema.spec import ColumnSpec, TableSpec
from worldgen.schema.tools import load_tool

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# Sane lengths for model output (characters). A key is a slug a person reads; a name is a title;
# any other text (a description, a history, a JSON object as text) is a few paragraphs at most.
MAX_KEY_LENGTH = 80
MAX_NAME_LENGTH = 200
MAX_TEXT_LENGTH = 8000

_INTEGER_RANGES = {"smallint": (-(2**15), 2**15 - 1), "integer": (-(2**31), 2**31 - 1), "bigint": (-(2**63), 2**63 - 1)}
_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_EQUAL = re.compile(r"^CHECK \(\((\w+) <> (\w+)\)\)$")
_EXACTLY_ONE = re.compile(r"^CHECK \(\(num_nonnulls\(([\w, ]+)\) = 1\)\)$")
_ORDERED = re.compile(r"^CHECK \(\(\((\w+) IS NULL\) OR \((\w+) IS NULL\) OR \((\w+) <= (\w+)\)\)\)$")
_REQUIRED = re.compile(r"^'(.+)' is a required property$")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# JSON Schema counts 1.0 as an integer; a PostgreSQL integer column (binary COPY) takes no float.
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)

_CONSTRAINTS = """
SELECT c.relname AS table_name, con.conname AS name, con.contype AS kind,
       pg_get_constraintdef(con.oid) AS definition,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY AS k(num, pos)
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.num ORDER BY k.pos) AS columns
FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND con.contype IN ('u', 'c') AND c.relname = ANY(%s)
ORDER BY c.relname, con.conname
"""


def quoted(value: Any) -> str:
    """A value as the model wrote it, in at most about MAX_QUOTED_CHARS characters."""
    return clip(repr(value))


def bounded_problems(problems: Sequence[Problem | str], limit: int = MAX_PROBLEMS_LISTED) -> list[str]:
    """The first ``limit`` problems, each cut to MAX_PROBLEM_CHARS."""
    return [clip(str(p), MAX_PROBLEM_CHARS) for p in problems[:limit]]


def problem_listing(problems: Sequence[Problem | str], count: int, limit: int = MAX_PROBLEMS_LISTED) -> list[str]:
    """At most ``limit`` problems, each clipped, and a line counting the ``count`` - ``limit`` others."""
    listed = bounded_problems(problems, limit)
    if count > len(listed):
        listed.append(f"... and {count - len(listed)} more problem(s) of the same kinds")
    return listed


def invalid_output(
    summary: str, problems: Sequence[Problem | str], count: int | None = None, *, in_message: int = 10
) -> InvalidModelOutput:
    """InvalidModelOutput whose message and details stay small, whatever the number and size of
    the problems: the message travels in the Step Functions payload (256 KB at most)."""
    count = len(problems) if count is None else count
    return InvalidModelOutput(
        f"{summary}: " + "; ".join(problem_listing(problems, count, in_message)),
        problems=problems,  # as data: InvalidModelOutput bounds their text in its details
        problem_count=count,
    )


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
                    same = f"keys {first!r} and {original!r} are the same key {row['key']!r} once written as a slug"
                    problems.append(Problem(table, f"{same}: give them different keys", index, row["key"], "key"))
    return slugged, problems


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
    """Every problem of ``tool_input`` at once: ``validate_phase_input``'s and the catalog's rules.

    ``beside``: rows of the same tables held fixed (in tool properties), which the catalog's rules
    across rows (a unique pair, one per parent) count too; only the input's own rows are reported.
    """
    found = validate_phase_input(phase, specs, tool_input, known_keys, input_schema=input_schema)
    if isinstance(tool_input, dict):
        fixed = beside or {}
        together = {t: [*fixed.get(t, []), *rows] if isinstance(rows, list) else rows for t, rows in tool_input.items()}
        for p in rule_problems(table_rules(conn, phase, specs), together):
            offset = len(fixed.get(p.table, []))
            if p.index is None or p.index >= offset:
                found.append(dataclasses.replace(p, index=None if p.index is None else p.index - offset))
    return found


def validate_phase_input(
    phase: Phase,
    specs: Mapping[str, TableSpec],
    tool_input: Any,
    known_keys: Mapping[str, Mapping[str, Any]],
    *,
    input_schema: dict[str, Any] | None = None,
) -> list[Problem]:
    """Every problem of ``tool_input`` at once, so the model can repair them all in one round: the
    schema's, then what only hand code can say of the values the schema let through.

    ``known_keys``: rows the input may refer to; for the phase's own tables, the rows it keeps (a
    reference may name them, a new row may not take their key). ``input_schema``: the tool the
    rows answer, when not the phase's committed one."""
    problems = schema_problems(phase, tool_input, input_schema, specs)
    if not isinstance(tool_input, dict):
        return problems
    reported = {(p.table, p.index, p.column) for p in problems if p.column is not None}
    written = {
        t: {r["key"] for r in rows if isinstance(r, dict) and isinstance(r.get("key"), str)}
        for t in phase.tables
        if isinstance(rows := tool_input.get(t), list)
    }
    # The keys a reference may name: rows of this call and rows kept from before (locked) in the
    # phase's tables, the rows of earlier phases in the others.
    targets = {c.references for t in written for c in specs[t].foreign_keys if c.references}
    pools = {t: written.get(t, set()) | set(known_keys.get(t, {})) for t in targets}
    for table in written:
        rows, columns, taken = tool_input[table], _columns(specs[table]), known_keys.get(table, {})
        seen: set[str] = set()
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                continue
            key = row["key"] if isinstance(row.get("key"), str) else None
            found = _key_problems(key, seen, taken) + _value_problems(table, key, row, columns, pools)
            for text, field in found:
                if (table, index, field) not in reported:
                    problems.append(Problem(table, text, index, key, field))
        for column in specs[table].foreign_keys:
            if column.references == table:
                problems += _hierarchy_cycles(table, rows, column)
    return problems


def _key_problems(key: str | None, seen: set[str], taken: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """(problem, field) of a row's key: a slug of sane length, new in its table and to the kept rows."""
    if key is None:
        return []  # missing or not a string: the schema's to report
    found: list[tuple[str, str | None]] = []
    if key in seen:
        found.append(("duplicate key in this table", "key"))
    elif key in taken:
        found.append(("key taken by a kept (locked) row: choose another", "key"))
    seen.add(key)
    if len(key) > MAX_KEY_LENGTH:
        found.append((f"a key has at most {MAX_KEY_LENGTH} characters; this one has {len(key)}", "key"))
    elif not KEY_PATTERN.match(key):
        found.append(("keys are lowercase letters, digits and hyphens, e.g. 'iron-marches'", "key"))
    return found


def _value_problems(
    table: str, key: str | None, row: dict[str, Any], columns: dict[str, ColumnSpec], pools: dict[str, set[str]]
) -> list[tuple[str, str | None]]:
    """(problem, field) of what JSON Schema cannot say of a row's values; a value of the wrong type
    is the schema's to report."""
    found: list[tuple[str, str | None]] = []
    for name, value in row.items():
        column = columns.get(name)
        if column is None or value is None or name == "key" or isinstance(value, bool):
            continue
        limits = _INTEGER_RANGES.get(column.pg_type)
        if column.references:
            if isinstance(value, str) and value not in pools[column.references]:
                found.append((f"no {column.references} row has key {quoted(value)}", name))
            elif table == column.references and value == key:
                found.append(("a row cannot refer to itself", name))
        elif isinstance(value, float) and not math.isfinite(value):
            found.append((_not_finite(value), name))
        elif (text_problem := _text_problem(value, column)) is not None:
            found.append((text_problem, name))
        elif limits and isinstance(value, int) and not limits[0] <= value <= limits[1]:
            found.append((f"{value} does not fit a PostgreSQL {column.pg_type}", name))
    return found


def _not_finite(value: float) -> str:  # also what the schema's bounds say of it: more to the point
    return f"{value} is not a number PostgreSQL stores here; give a finite number"


def _text_problem(value: Any, column: ColumnSpec) -> str | None:
    """Length, NUL and lone surrogates of a text, of each text of an array, of a JSON object's texts."""
    if isinstance(value, str) and column.pg_type == "text":
        return _string_problem(value, MAX_NAME_LENGTH if column.name == "name" else MAX_TEXT_LENGTH)
    if isinstance(value, list) and column.pg_type == "text[]":
        return next((p for v in value if isinstance(v, str) and (p := _string_problem(v, MAX_TEXT_LENGTH))), None)
    if isinstance(value, dict) and column.pg_type in ("jsonb", "json"):
        try:
            text = json.dumps(value, allow_nan=False)
        except ValueError:
            return "a JSON object cannot hold NaN or Infinity; give finite numbers"
        if len(text) > MAX_TEXT_LENGTH:
            return f"a JSON object of at most {MAX_TEXT_LENGTH} characters; this one has {len(text)}"
        return _string_problem(json.dumps(value, ensure_ascii=False), MAX_TEXT_LENGTH)
    return None


def _string_problem(text: str, limit: int) -> str | None:
    if len(text) > limit:
        return f"at most {limit} characters; this text has {len(text)}"
    if "\x00" in text:
        return "text cannot contain the NUL character (\\u0000)"
    if _SURROGATE.search(text):
        return "text cannot contain a lone UTF-16 surrogate (\\ud800-\\udfff); write the character itself"
    return None


def _hierarchy_cycles(table: str, rows: list[Any], column: ColumnSpec) -> list[Problem]:
    """A row that is its own ancestor (a region inside its own sub-region) through ``column``."""
    parent: dict[str, str] = {}
    for row in rows:
        if isinstance(row, dict) and isinstance(row.get("key"), str) and isinstance(row.get(column.property_name), str):
            parent[row["key"]] = row[column.property_name]
    problems: list[Problem] = []
    done: set[str] = set()
    for start in parent:
        path: list[str] = []
        on_path: set[str] = set()
        node: str | None = start
        while node is not None and node not in done and node not in on_path:
            path.append(node)
            on_path.add(node)
            node = parent.get(node)
        if node is not None and node in on_path:
            cycle = path[path.index(node) :]
            if len(cycle) > 1:  # a row naming itself is reported on its own
                chain = " -> ".join(clip(k, 40) for k in [*cycle, node])
                problems.append(Problem(table, f"a cycle: {chain}", key=node, column=column.property_name))
        done.update(path)
    return problems


def _columns(spec: TableSpec) -> dict[str, ColumnSpec]:
    """A table's columns by the names the model writes (``x_key`` for a reference ``x_id``)."""
    return {c.property_name: c for c in spec.exposed_columns}


@cache
def _phase_validator(phase: Phase) -> Any:
    """The committed tool schema of ``phase`` narrowed to its tables (a part's view of a phase has
    fewer), each at most ``max_rows_per_table`` rows."""
    schema = load_tool(phase)["input_schema"]
    properties = {t: {**schema["properties"][t], "maxItems": phase.max_rows_per_table} for t in phase.tables}
    return _Validator({**schema, "properties": properties, "required": list(phase.tables)})


def schema_problems(
    phase: Phase,
    tool_input: Any,
    input_schema: dict[str, Any] | None = None,
    specs: Mapping[str, TableSpec] | None = None,
) -> list[Problem]:
    """What the committed tool schema (or ``input_schema``, a tool of its own such as a reroll's)
    says, checked by jsonschema, located by table, row and field: one problem per field."""
    validator = _phase_validator(phase) if input_schema is None else _Validator(input_schema)
    problems: list[Problem] = []
    fields: set[tuple[str, int, str]] = set()
    specs = specs or {}
    for error in validator.iter_errors(tool_input):
        path = list(error.absolute_path)
        table = str(path[0]) if path else "(input)"
        index = path[1] if len(path) > 1 and isinstance(path[1], int) else None
        column = str(path[2]) if len(path) > 2 else None
        key = None
        if index is not None and isinstance(tool_input, dict):
            rows = tool_input.get(table)
            if isinstance(rows, list) and index < len(rows) and isinstance(rows[index], dict):
                found = rows[index].get("key")
                key = found if isinstance(found, str) else None
        if column is not None and index is not None:
            if (table, index, column) in fields:
                continue  # one problem per field, as a type error makes its enum fail too
            fields.add((table, index, column))
            spec = _columns(specs[table]).get(column) if table in specs else None
            problems.append(Problem(table, _field_message(error, spec, len(path) > 3), index, key, column))
        else:
            problems += _located(phase, tool_input, error, table, index, key)
    return problems


def _located(
    phase: Phase, tool_input: Any, error: Any, table: str, index: int | None, key: str | None
) -> list[Problem]:
    """A schema error about the input, a table or a row, in the words the model reads."""
    named = _REQUIRED.match(error.message)
    if table == "(input)":
        if error.validator == "type":
            return [Problem(table, f"expected an object with the tables {list(phase.tables)}")]
        if error.validator == "required" and named:  # a whole table is missing: name it
            return [Problem(named[1], "missing: give an array of rows (it may be empty)")]
        if error.validator == "additionalProperties" and isinstance(tool_input, dict):
            allowed = error.schema.get("properties", {})
            return [Problem(t, "not a table of this phase") for t in tool_input if t not in allowed]
    elif index is None:
        if error.validator == "type":
            return [Problem(table, "must be an array of rows")]
        if error.validator == "maxItems":
            return [Problem(table, f"{len(error.instance)} rows; at most {error.validator_value}")]
    else:
        if error.validator == "type":
            return [Problem(table, "a row must be an object", index)]
        if error.validator == "required" and named:
            return [Problem(table, "required field missing", index, key, named[1])]
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = error.schema.get("properties", {})
            return [Problem(table, "unknown field", index, key, p) for p in error.instance if p not in allowed]
    return [Problem(table, clip(error.message, MAX_PROBLEM_CHARS), index, key)]


def _field_message(error: Any, column: ColumnSpec | None, in_array: bool) -> str:
    """A schema error about one field, in the words the model reads."""
    value, bound = error.instance, error.validator_value
    if isinstance(value, float) and not math.isfinite(value):
        return _not_finite(value)
    if error.validator == "type" and value is None and column is not None and column.required:
        return "required field missing"
    if error.validator == "type" and value is not None and column is not None:
        if in_array:
            return "expected an array of strings"
        if column.references:
            return "a reference must be the key (a string) of the referenced row"
        got = "a boolean" if isinstance(value, bool) else type(value).__name__
        return f"expected {column.pg_type}, got {got}"
    if error.validator == "enum":
        return f"{quoted(value)} is not one of {bound}"
    if error.validator == "exclusiveMinimum":
        return f"{value} must be greater than {bound:g}"
    if error.validator == "minimum":
        return f"{value} is below the minimum {bound:g}"
    if error.validator == "maximum":
        return f"{value} is above the maximum {bound:g}"
    return clip(error.message, MAX_PROBLEM_CHARS)


@dataclass(frozen=True)
class Rule:
    """One multi-row or multi-column rule of a table, in tool-property names."""

    table: str
    kind: str  # unique | distinct | exactly_one | ordered
    properties: tuple[str, ...]
    nulls_distinct: bool = True


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
            listed, text = ", ".join(rule.properties), ""
            if rule.kind == "unique" and not (rule.nulls_distinct and None in values):
                if values in seen:
                    what = "parent" if len(values) == 1 else "combination"
                    text = f"same {listed} as row {seen[values]!r}: one row per {what}"
                seen.setdefault(values, key or f"#{index}")
            elif rule.kind == "distinct" and values[0] is not None and values[0] == values[1]:
                text = f"{listed} must differ (an edge needs two ends)"
            elif rule.kind == "exactly_one" and sum(v is not None for v in values) != 1:
                given = [p for p, v in zip(rule.properties, values, strict=True) if v is not None]
                text = f"give exactly one of {listed} (given: {given or 'none'})"
            elif rule.kind == "ordered" and _numbers(values) and values[0] > values[1]:  # type: ignore[operator]
                text = f"{rule.properties[0]} must not exceed {rule.properties[1]}"
            if text:
                problems.append(Problem(rule.table, text, index, key))
    return problems


def _numbers(values: tuple[Any, ...]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def outline_problems(
    phase: Phase,
    answer: Any,
    taken: Mapping[str, set[str]],
    player_characters: Sequence[str],
    *,
    gist_words: int,
    role_words: int,
) -> tuple[dict[str, list[dict[str, str]]], list[Problem]]:
    """An outline (table -> rows of key, gist, PC served, role) with its keys slugged, and every
    problem of it. A row may be a bare key. ``taken``: keys of the rows the phase keeps."""
    if not isinstance(answer, dict):
        return {}, [Problem("(input)", f"expected an object with the tables {list(phase.tables)}")]
    outline: dict[str, list[dict[str, str]]] = {}
    problems = [Problem(t, "not a table of this phase") for t in answer if t not in phase.tables]
    for table in phase.tables:
        rows = answer.get(table)
        if not isinstance(rows, list):
            problems.append(Problem(table, "missing: give an array of keys (it may be empty)"))
            continue
        if len(rows) > phase.max_rows_per_table:
            problems.append(Problem(table, f"{len(rows)} rows; at most {phase.max_rows_per_table}"))
        seen: set[str] = set()
        outline[table] = []
        for index, row in enumerate(rows):
            given = row if isinstance(row, dict) else {"key": row}
            key = slug(given["key"]) if isinstance(given.get("key"), str) else ""
            if not key:
                problems.append(Problem(table, "a key is required (a slug, e.g. 'iron-marches')", index))
                continue
            if key in seen:
                problems.append(Problem(table, "duplicate key in this table", index, key, "key"))
                continue
            if key in taken.get(table, set()):
                problems.append(Problem(table, "key taken by a kept (locked) row: choose another", index, key, "key"))
                continue
            seen.add(key)
            entry = {"key": key, "gist": " ".join(str(given.get("gist") or "").split())}
            if not entry["gist"]:
                text = f"a gist is required: what the row is, in at most {gist_words} words"
                problems.append(Problem(table, text, index, key, "gist"))
            elif len(entry["gist"].split()) > gist_words:
                words = len(entry["gist"].split())
                problems.append(Problem(table, f"the gist has {words} words; at most {gist_words}", index, key, "gist"))
            if pc := given.get("player_character_key"):
                if player_characters and pc not in player_characters:
                    text = f"{pc!r} is not a player character; one of {list(player_characters)}"
                    problems.append(Problem(table, text, index, key, "player_character_key"))
                entry["player_character_key"] = str(pc)
            if role := " ".join(str(given.get("role") or "").split()):
                if len(role.split()) > role_words:
                    text = f"the role has {len(role.split())} words; at most {role_words}"
                    problems.append(Problem(table, text, index, key, "role"))
                entry["role"] = role
            outline[table].append(entry)
    return outline, problems


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


def drop_rows(
    phase: Phase, specs: Mapping[str, TableSpec], tool_input: dict[str, Any], problems: list[Problem]
) -> tuple[dict[str, Any], list[dict[str, str]]] | None:
    """``tool_input`` without the rows ``problems`` are about and the rows of the phase that refer to them.

    Returns (the rest, what was dropped with the reason) or None when a problem is about no single row.
    """
    if any(problem.key is None for problem in problems):
        return None  # about a whole table or the input, not a row
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
    kept: dict[str, Any] = {table: [] for table in phase.tables}
    dropped = []  # one entry per row removed (two rows sharing a key are two)
    for table in phase.tables:
        for row in tool_input.get(table) or []:
            if not (isinstance(row, dict) and (table, row.get("key")) in reasons):
                kept[table].append(row)
            elif isinstance(row.get("key"), str):
                dropped.append({"table": table, "key": row["key"], "reason": reasons[table, row["key"]]})
    return kept, sorted(dropped, key=lambda d: (d["table"], d["key"]))
