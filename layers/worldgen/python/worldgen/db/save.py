"""save_phase_rows: validate a phase's tool input, then write all its tables in one transaction.

Keys become UUIDs generated up front, so hierarchies (location -> parent location) and in-phase
references (deity -> pantheon) insert in one pass with COPY. Table and column names come only from
the catalog's TableSpecs; every value travels as data, never as SQL text.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from worldgen.db import rules
from worldgen.errors import InvalidModelOutput
from worldgen.phases import Phase
from worldgen.schema.spec import ColumnSpec, TableSpec

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")

_INTEGER_RANGES = {"smallint": (-(2**15), 2**15 - 1), "integer": (-(2**31), 2**31 - 1), "bigint": (-(2**63), 2**63 - 1)}
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "text": (str,),
    "integer": (int,),
    "bigint": (int,),
    "smallint": (int,),
    "numeric": (int, float),
    "real": (int, float),
    "double precision": (int, float),
    "boolean": (bool,),
    "jsonb": (dict,),
    "text[]": (list,),
}


@dataclass(frozen=True)
class Problem:
    table: str
    problem: str
    index: int | None = None
    key: str | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = self.table
        if self.key is not None:
            where += f"[key={self.key}]"
        elif self.index is not None:
            where += f"[{self.index}]"
        if self.column:
            where += f".{self.column}"
        return f"{where}: {self.problem}"


@dataclass
class SaveResult:
    rows_per_table: dict[str, int] = field(default_factory=dict)

    @property
    def rows_total(self) -> int:
        return sum(self.rows_per_table.values())


def campaign_lock_id(campaign_id: uuid.UUID | str) -> int:
    """A stable signed 64-bit advisory-lock id per campaign."""
    return uuid.UUID(str(campaign_id)).int % (1 << 63)


def existing_keys(
    conn: psycopg.Connection[Any], campaign_id: uuid.UUID | str, tables: set[str]
) -> dict[str, dict[str, uuid.UUID]]:
    """key -> id of every row of ``tables`` for the campaign, in one round trip."""
    if not tables:
        return {}
    union = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {name} AS t, key, id FROM {table} WHERE campaign_id = %(c)s").format(
            name=sql.Literal(t), table=sql.Identifier(t)
        )
        for t in sorted(tables)
    )
    found: dict[str, dict[str, uuid.UUID]] = {t: {} for t in tables}
    with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        for table, key, row_id in cur.execute(union, {"c": str(campaign_id)}):
            found[table][key] = row_id
    return found


def external_tables(phase: Phase, specs: Mapping[str, TableSpec]) -> set[str]:
    """The tables of earlier phases (and player_characters) that the phase's rows refer to."""
    return {
        c.references
        for table in phase.tables
        for c in specs[table].foreign_keys
        if c.references and c.references not in phase.tables
    }


def validate_phase_input(
    phase: Phase,
    specs: Mapping[str, TableSpec],
    tool_input: Any,
    known_keys: Mapping[str, Mapping[str, Any]],
) -> list[Problem]:
    """Every problem of ``tool_input`` at once, so the model can repair them all in one round."""
    if not isinstance(tool_input, dict):
        return [Problem("(input)", f"expected an object with the tables {list(phase.tables)}")]
    problems = [Problem(t, "not a table of this phase") for t in tool_input if t not in phase.tables]
    phase_keys: dict[str, set[str]] = {}
    for table in phase.tables:
        rows = tool_input.get(table)
        if rows is None:
            problems.append(Problem(table, "missing: give an array of rows (it may be empty)"))
            continue
        if not isinstance(rows, list):
            problems.append(Problem(table, "must be an array of rows"))
            continue
        if len(rows) > phase.max_rows_per_table:
            problems.append(Problem(table, f"{len(rows)} rows; at most {phase.max_rows_per_table}"))
        keys = phase_keys.setdefault(table, set())
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                problems.append(Problem(table, "a row must be an object", index=index))
                continue
            key = row.get("key")
            if isinstance(key, str):
                if key in keys:
                    problems.append(Problem(table, "duplicate key in this table", index, key, "key"))
                keys.add(key)
    for table in phase.tables:
        rows = tool_input.get(table)
        if not isinstance(rows, list):
            continue
        columns = {c.property_name: c for c in specs[table].exposed_columns}
        for index, row in enumerate(rows):
            if isinstance(row, dict):
                problems += _row_problems(table, index, row, columns, phase, phase_keys, known_keys)
    return problems


def _row_problems(
    table: str,
    index: int,
    row: dict[str, Any],
    columns: dict[str, ColumnSpec],
    phase: Phase,
    phase_keys: dict[str, set[str]],
    known_keys: Mapping[str, Mapping[str, Any]],
) -> list[Problem]:
    key = row.get("key") if isinstance(row.get("key"), str) else None
    problems = []

    def problem(text: str, column: str | None = None) -> None:
        problems.append(Problem(table, text, index, key, column))

    for name in row:
        if name not in columns:
            problem("unknown field", name)
    if key is not None and not KEY_PATTERN.match(key):
        problem("keys are lowercase letters, digits and hyphens, e.g. 'iron-marches'", "key")
    for name, column in columns.items():
        value: Any = row.get(name)
        if value is None:
            if column.required:
                problem("required field missing", name)
            continue
        if column.references:
            if not isinstance(value, str):
                problem("a reference must be the key (a string) of the referenced row", name)
                continue
            target = column.references
            pool = phase_keys.get(target, set()) if target in phase.tables else known_keys.get(target, {})
            if value not in pool:
                problem(f"no {target} row has key {value!r}", name)
            elif table == target and value == key:
                problem("a row cannot refer to itself", name)
            continue
        expected: Any = _PY_TYPES.get(column.pg_type, (str,))  # Any: keeps `value` un-narrowed below
        if isinstance(value, bool) and bool not in expected:
            problem(f"expected {column.pg_type}, got a boolean", name)
        elif not isinstance(value, expected):
            problem(f"expected {column.pg_type}, got {type(value).__name__}", name)
        elif column.pg_type == "text[]" and not all(isinstance(v, str) for v in value):
            problem("expected an array of strings", name)
        elif column.enum and value not in column.enum:
            problem(f"{value!r} is not one of {column.enum}", name)
        elif (
            column.pg_type in _INTEGER_RANGES
            and not _INTEGER_RANGES[column.pg_type][0] <= value <= _INTEGER_RANGES[column.pg_type][1]
        ):
            problem(f"{value} does not fit a PostgreSQL {column.pg_type}", name)
        elif "\x00" in (value if isinstance(value, str) else "".join(value) if isinstance(value, list) else ""):
            problem("text cannot contain the NUL character (\\u0000)", name)
        elif column.exclusive_minimum is not None and value <= column.exclusive_minimum:
            problem(f"{value} must be greater than {column.exclusive_minimum:g}", name)
        elif column.minimum is not None and value < column.minimum:
            problem(f"{value} is below the minimum {column.minimum:g}", name)
        elif column.maximum is not None and value > column.maximum:
            problem(f"{value} is above the maximum {column.maximum:g}", name)
    return problems


def _fits(value: int, pg_type: str) -> bool:
    low, high = _INTEGER_RANGES[pg_type]
    return low <= value <= high


def save_phase_rows(
    conn: psycopg.Connection[Any],
    campaign_id: uuid.UUID | str,
    generation_id: uuid.UUID | str,
    phase: Phase,
    tool_input: dict[str, Any],
    specs: Mapping[str, TableSpec],
    *,
    before_commit: Callable[[psycopg.Connection[Any], SaveResult], None] | None = None,
) -> SaveResult:
    """Validate, then replace the phase's rows for the campaign in ONE transaction.

    Raises InvalidModelOutput listing every problem (nothing written). ``before_commit`` runs
    inside the transaction after the rows are written (the pipeline records phase_runs and checks
    that its attempt is still the current one there).
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (campaign_lock_id(campaign_id),))
        known = existing_keys(conn, campaign_id, external_tables(phase, specs))
        problems = rules.validate(conn, phase, specs, tool_input, known)
        if problems:
            raise InvalidModelOutput(
                f"phase {phase.id} tool input has {len(problems)} problem(s): "
                + "; ".join(str(p) for p in problems[:20]),
                problems=[str(p) for p in problems],
            )
        ids = {t: {row["key"]: uuid.uuid4() for row in tool_input[t]} for t in phase.tables}
        for table in reversed(phase.tables):
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE campaign_id = %s").format(sql.Identifier(table)),
                (str(campaign_id),),
            )
        result = SaveResult()
        for table in phase.tables:
            rows = tool_input[table]
            result.rows_per_table[table] = len(rows)
            if rows:
                try:
                    _copy_rows(conn, specs[table], rows, ids, known, campaign_id, generation_id, phase)
                except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
                    raise rules.database_error(table, exc, ids, known) from exc  # by key, never a UUID
        if before_commit:
            before_commit(conn, result)
    return result


def _copy_rows(
    conn: psycopg.Connection[Any],
    spec: TableSpec,
    rows: list[dict[str, Any]],
    ids: dict[str, dict[str, uuid.UUID]],
    known: Mapping[str, Mapping[str, uuid.UUID]],
    campaign_id: uuid.UUID | str,
    generation_id: uuid.UUID | str,
    phase: Phase,
) -> None:
    columns = [c for c in spec.exposed_columns]
    names = ["id", "campaign_id", "generation_id"] + [c.name for c in columns]
    types = ["uuid", "uuid", "uuid"] + [c.pg_type for c in columns]
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(spec.name), sql.SQL(", ").join(sql.Identifier(n) for n in names)
    )
    campaign, generation = uuid.UUID(str(campaign_id)), uuid.UUID(str(generation_id))
    own_ids = ids[spec.name]
    with conn.cursor() as cur, cur.copy(statement) as copy:
        copy.set_types(types)
        for row in rows:
            values: list[Any] = [own_ids[row["key"]], campaign, generation]
            for column in columns:
                value = row.get(column.property_name)
                if value is not None and column.references:
                    pool = ids if column.references in phase.tables else known
                    value = pool[column.references][value]
                elif isinstance(value, float) and column.pg_type == "numeric":
                    value = Decimal(repr(value))
                values.append(value)
            copy.write_row(values)
