"""save_phase_rows: validate a phase's tool input (``db/validation``), then write all its tables in
one transaction, keeping the rows a game master locked.

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

from worldgen.contracts import SECRET_DEFAULTS
from worldgen.db import validation
from worldgen.db.problems import Problem, clip
from worldgen.db.validation import MAX_PROBLEM_CHARS, invalid_output
from worldgen.errors import DatabaseUnavailable, InvalidModelOutput
from worldgen.phases import WORLD_TABLES, Phase
from worldgen.schema.spec import TableSpec

WORLD_TABLE_SET = frozenset(WORLD_TABLES)


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


def reference_keys(
    conn: psycopg.Connection[Any], campaign_id: uuid.UUID | str, phase: Phase, specs: Mapping[str, TableSpec]
) -> dict[str, dict[str, uuid.UUID]]:
    """key -> id of every row the phase's new rows may refer to besides each other: the rows of
    earlier phases, and the rows of the phase a regeneration keeps (``rows_kept_on_regeneration``),
    whose keys new rows may name but not take. What the save itself checks against, read ahead."""
    known = existing_keys(conn, campaign_id, external_tables(phase, specs))
    known.update(rows_kept_on_regeneration(conn, campaign_id, phase, specs))
    return known


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
        problems = validation.validate(conn, phase, specs, tool_input, known)
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
                    raise validation.database_error(table, exc, ids, known) from exc  # by key, never a UUID
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
