"""save_phase_rows: validate a phase's tool input, then write all its tables in one transaction.

Keys become UUIDs generated up front, so hierarchies (location -> parent location) and in-phase
references (deity -> pantheon) insert in one pass with COPY. Table and column names come only from
the catalog's TableSpecs; every value travels as data, never as SQL text.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from worldgen.contracts import SECRET_DEFAULTS
from worldgen.db import rules
from worldgen.db.problems import Problem, clip
from worldgen.errors import DatabaseUnavailable, InvalidModelOutput
from worldgen.phases import WORLD_TABLES, Phase
from worldgen.schema.spec import ColumnSpec, TableSpec

WORLD_TABLE_SET = frozenset(WORLD_TABLES)
KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_SURROGATE = re.compile("[\ud800-\udfff]")

# Sane lengths for model output (characters). A key is a slug a person reads; a name is a title;
# any other text (a description, a history, a JSON object as text) is a few paragraphs at most.
MAX_KEY_LENGTH = 80
MAX_NAME_LENGTH = 200
MAX_TEXT_LENGTH = 8000
# What a problem list may cost: the repair prompt and the error in the Step Functions payload
# (256 KB) list at most this many problems, each value quoted in at most MAX_QUOTED_CHARS.
MAX_PROBLEMS_LISTED = 50
MAX_PROBLEM_CHARS = 400

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
        problems=problems,
        problem_count=count,
    )


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
                elif key in known_keys.get(table, {}):
                    problems.append(
                        Problem(table, "key taken by a kept (locked) row: choose another", index, key, "key")
                    )
                keys.add(key)
    for table in phase.tables:
        rows = tool_input.get(table)
        if not isinstance(rows, list):
            continue
        columns = {c.property_name: c for c in specs[table].exposed_columns}
        for index, row in enumerate(rows):
            if isinstance(row, dict):
                problems += _row_problems(table, index, row, columns, phase, phase_keys, known_keys)
        for column in specs[table].foreign_keys:
            if column.references == table:
                problems += _hierarchy_cycles(table, rows, column)
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
    if key is not None and len(key) > MAX_KEY_LENGTH:
        problem(f"a key has at most {MAX_KEY_LENGTH} characters; this one has {len(key)}", "key")
    elif key is not None and not KEY_PATTERN.match(key):
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
            pool: set[str] | Mapping[str, Any] = known_keys.get(target, {})
            if target in phase.tables:  # rows of this call, and rows kept from before (locked)
                pool = phase_keys.get(target, set()) | set(pool)
            if value not in pool:
                problem(f"no {target} row has key {quoted(value)}", name)
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
        elif isinstance(value, float) and not math.isfinite(value):
            problem(f"{value} is not a number PostgreSQL stores here; give a finite number", name)
        elif (text_problem := _text_problem(value, column)) is not None:
            problem(text_problem, name)
        elif column.enum and value not in column.enum:
            problem(f"{quoted(value)} is not one of {column.enum}", name)
        elif (
            column.pg_type in _INTEGER_RANGES
            and not _INTEGER_RANGES[column.pg_type][0] <= value <= _INTEGER_RANGES[column.pg_type][1]
        ):
            problem(f"{value} does not fit a PostgreSQL {column.pg_type}", name)
        elif column.exclusive_minimum is not None and value <= column.exclusive_minimum:
            problem(f"{value} must be greater than {column.exclusive_minimum:g}", name)
        elif column.minimum is not None and value < column.minimum:
            problem(f"{value} is below the minimum {column.minimum:g}", name)
        elif column.maximum is not None and value > column.maximum:
            problem(f"{value} is above the maximum {column.maximum:g}", name)
    return problems


def _text_problem(value: Any, column: ColumnSpec) -> str | None:
    """Length, NUL and lone surrogates of a text, of each text of an array, of a JSON object's texts."""
    if column.name == "key":
        return None  # its length and its characters are checked on their own (KEY_PATTERN)
    if isinstance(value, str):
        return _string_problem(value, MAX_NAME_LENGTH if column.name == "name" else MAX_TEXT_LENGTH)
    if isinstance(value, list):
        return next((p for p in (_string_problem(v, MAX_TEXT_LENGTH) for v in value) if p), None)
    if isinstance(value, dict):
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
        kept = delete_previous_rows_keeping_locked(conn, campaign_id, phase, specs)
        known.update(kept)  # in-phase references may name a kept row; new rows may not reuse its key
        problems = rules.validate(conn, phase, specs, tool_input, known)
        if problems:
            raise invalid_output(f"phase {phase.id} tool input has {len(problems)} problem(s)", problems)
        ids = {t: {**kept[t], **{row["key"]: uuid.uuid4() for row in tool_input[t]}} for t in phase.tables}
        result = SaveResult()
        for table in phase.tables:
            rows = tool_input[table]
            result.rows_per_table[table] = len(rows)
            if rows:
                try:
                    _copy_rows(conn, specs[table], rows, ids, known, campaign_id, generation_id, phase)
                except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
                    raise rules.database_error(table, exc, ids, known) from exc  # by key, never a UUID
                except psycopg.Error as exc:  # a limit (54), a lost connection (08), or a bug
                    typed = database_error(table, rows, exc)
                    if typed is exc:
                        raise
                    raise typed from exc
        if before_commit:
            before_commit(conn, result)
    return result


def delete_previous_rows_keeping_locked(
    conn: psycopg.Connection[Any], campaign_id: uuid.UUID | str, phase: Phase, specs: Mapping[str, TableSpec]
) -> dict[str, dict[str, uuid.UUID]]:
    """Delete what earlier runs of the phase wrote for the campaign, except the rows a game master
    keeps (``rows_kept_on_regeneration``). Returns key -> id of the kept rows per table."""
    kept = rows_kept_on_regeneration(conn, campaign_id, phase, specs)
    kept_ids = [row_id for table in kept.values() for row_id in table.values()]
    for table in reversed(phase.tables):
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE campaign_id = %s AND NOT (id = ANY(%s))").format(sql.Identifier(table)),
            (str(campaign_id), kept_ids),
        )
    return kept


def rows_kept_on_regeneration(
    conn: psycopg.Connection[Any], campaign_id: uuid.UUID | str, phase: Phase, specs: Mapping[str, TableSpec]
) -> dict[str, dict[str, uuid.UUID]]:
    """The rows of the phase a regeneration keeps, key -> id per table.

    Kept: a locked row; a row of the phase that depends on a locked row (a NOT NULL reference to
    it: an NPC's relationships, a shop of a locked location); and the rows of the phase those kept
    rows refer to, so nothing kept loses a reference.
    """
    rows: dict[str, list[dict[str, Any]]] = {}
    for table in phase.tables:
        references = [c for c in specs[table].foreign_keys if c.references in WORLD_TABLE_SET]
        columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in references)
        query = sql.SQL("SELECT id, key, locked{}{} FROM {} WHERE campaign_id = %s").format(
            sql.SQL(", ") if references else sql.SQL(""), columns, sql.Identifier(table)
        )
        with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            rows[table] = cur.execute(query, (str(campaign_id),)).fetchall()
    locked_ids = _locked_ids(conn, campaign_id, specs, phase)
    locked_ids |= {r["id"] for table_rows in rows.values() for r in table_rows if r["locked"]}
    kept: set[uuid.UUID] = set(locked_ids)
    for table, table_rows in rows.items():
        required = [c.name for c in specs[table].foreign_keys if not c.nullable and c.references in WORLD_TABLE_SET]
        kept |= {r["id"] for r in table_rows if any(r[c] in locked_ids for c in required)}
    changed = True
    while changed:  # what a kept row of the phase refers to inside the phase stays too
        changed = False
        for table, table_rows in rows.items():
            inside = [c.name for c in specs[table].foreign_keys if c.references in phase.tables]
            for row in table_rows:
                if row["id"] in kept:
                    for column in inside:
                        if row[column] is not None and row[column] not in kept:
                            kept.add(row[column])
                            changed = True
    return {table: {r["key"]: r["id"] for r in table_rows if r["id"] in kept} for table, table_rows in rows.items()}


def _locked_ids(
    conn: psycopg.Connection[Any], campaign_id: uuid.UUID | str, specs: Mapping[str, TableSpec], phase: Phase
) -> set[uuid.UUID]:
    """Ids of the locked rows of the earlier-phase tables the phase's rows refer to."""
    referenced = {c.references for t in phase.tables for c in specs[t].foreign_keys if c.references}
    targets = sorted(t for t in referenced & WORLD_TABLE_SET if t not in phase.tables)
    if not targets:
        return set()
    union = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT id FROM {} WHERE campaign_id = %(c)s AND locked").format(sql.Identifier(t)) for t in targets
    )
    with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        return {row[0] for row in cur.execute(union, {"c": str(campaign_id)})}


# SQLSTATE classes caused by the rows themselves: 22 data exception (a value PostgreSQL cannot
# store), 23 integrity constraint violation (a CHECK across columns, a unique pair), 54 program
# limit exceeded (an index row too large, a nesting too deep). 08 is a connection exception.
_ROWS_FAULT_CLASSES = ("22", "23", "54")
_COPY_LINE = re.compile(r"\bline (\d+)")


def database_error(table: str, rows: list[dict[str, Any]], exc: psycopg.Error) -> Exception:
    """The typed error for a database error raised while writing ``rows`` of ``table``.

    A rule only the database knows comes back as InvalidModelOutput naming the table and the row,
    in PostgreSQL's own words (clipped), so the repair loop can show it to the model; a lost
    connection is DatabaseUnavailable (retried); anything else (a bug) is raised as it is.
    """
    state = exc.sqlstate or ""
    if state[:2] in _ROWS_FAULT_CLASSES:
        diag = exc.diag
        index: int | None = None
        key: Any = None
        line = _COPY_LINE.search(diag.context or "")  # COPY's context names the 1-based row
        if line and 0 < int(line.group(1)) <= len(rows):
            index = int(line.group(1)) - 1
            key = rows[index].get("key") if isinstance(rows[index], dict) else None
        detail = clip(diag.message_detail or "", MAX_PROBLEM_CHARS)
        constraint = f" ({diag.constraint_name})" if diag.constraint_name else ""
        found = Problem(
            table, f"{diag.message_primary}{constraint} {detail}".strip(), index, None if key is None else str(key)
        )
        text = clip(str(found), MAX_PROBLEM_CHARS)
        return InvalidModelOutput(text, problems=[found], problem_count=1, sqlstate=state)
    if state.startswith("08") or (isinstance(exc, psycopg.OperationalError) and not state):
        return DatabaseUnavailable(f"PostgreSQL connection failed while writing {table}: {exc}")
    return exc


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
                if value is None and not column.nullable and column.name in SECRET_DEFAULTS:
                    value = SECRET_DEFAULTS[column.name]
                if value is not None and column.references:
                    pool = ids if column.references in phase.tables else known
                    value = pool[column.references][value]
                elif isinstance(value, float) and column.pg_type == "numeric":
                    value = Decimal(repr(value))
                values.append(value)
            copy.write_row(values)
