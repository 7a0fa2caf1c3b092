"""reroll_row: one world row written anew by one model call, everything around it held fixed.

A game master's smallest edit ("this innkeeper is dull"): the model is given the campaign, the
player characters, the row as it is, every row it refers to and every row referring to it (whole),
the game master's hint, and the instruction to keep the row's role in the world. The answer is
validated like a phase's (the same tool-schema, key, reference and catalog rules, via
``rules.validate`` on a one-table view of the row's phase), with one repair round, and saved in one
transaction that updates the row in place: its id and key stay, so every reference to it holds.
Its references stay too unless a hint is given; then they may name any existing row (never the row
itself or, in a hierarchy, one of its descendants).

The same transaction is fenced against a running generation of the campaign
(``state.fence_campaign_edit``), keeps the version it replaced (``row_rerolls.previous``, the whole
row as JSON) and writes the ledger (``model_calls`` with the reroll's id). ``undo_reroll`` puts the
version before the latest applied reroll back exactly, again and again down the history.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from worldgen import state
from worldgen.db import validation as rules
from worldgen.db.context import load_campaign, load_player_characters
from worldgen.db.problems import Problem
from worldgen.db.save import WORLD_TABLE_SET
from worldgen.db.snapshot import insertable_columns
from worldgen.db.validation import invalid_output
from worldgen.errors import CampaignNotFound, RerollRefused, WorldgenError
from worldgen.ledger import Ledger
from worldgen.model.base import ModelRequest, ModelResponse, WorldModel
from worldgen.model.factory import get_model
from worldgen.observability import logger
from worldgen.phases import WORLD_TABLES, Phase, phase_of_table
from worldgen.pipeline import table_specs
from worldgen.reroll_request import (  # noqa: F401  (REROLL_SECONDS, reroll_tool: read where a reroll is)
    PC_TABLE,
    REROLL_SECONDS,
    Neighbourhood,
    _neighbourhood,
    reroll_request,
    reroll_tool,
)
from worldgen.rounds import Calls, at_the_door, run_rounds
from worldgen.schema.spec import TableSpec
from worldgen.settings import get_settings

REPAIR_ROUNDS = 1
SAVE_SECONDS = 2.0
MAX_HINT_CHARS = 2000


@dataclass
class RerollOutcome:
    reroll_id: str
    table: str
    key: str
    row_id: str
    status: str  # applied | undone
    provider: str | None = None
    model: str | None = None
    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    changed: list[str] = field(default_factory=list)  # the columns whose value changed

    def payload(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -- what is rerolled ---------------------------------------------------------------------------


def world_table(conn: psycopg.Connection[Any], table: str) -> Phase:
    """The phase owning ``table``; RerollRefused when it is no table, or not a world table."""
    phase = phase_of_table(table) if table in WORLD_TABLE_SET else None
    if phase is not None:
        return phase
    exists = None
    if "\x00" not in table:  # PostgreSQL text cannot hold NUL
        exists = conn.execute(
            "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = 'public' AND tablename = %s", (table,)
        ).fetchone()
        conn.commit()
    if exists is not None:
        raise RerollRefused(
            "not-a-world-table",
            f"{table!r} is not a world table: only generated rows are rerolled (e.g. entities, locations, items)",
            400,
        )
    raise RerollRefused("unknown-table", f"no table {table!r}; world tables: {', '.join(WORLD_TABLES)}", 400)


def _campaign(conn: psycopg.Connection[Any], campaign_id: uuid.UUID | str) -> dict[str, Any]:
    try:
        campaign = load_campaign(conn, campaign_id)
    except CampaignNotFound as exc:
        raise RerollRefused("campaign-not-found", f"campaign {campaign_id} does not exist", 404) from exc
    finally:
        conn.commit()
    return campaign


def _whole_row(conn: psycopg.Connection[Any], campaign_id: Any, table: str, key: str) -> dict[str, Any]:
    """The row as ``to_jsonb`` writes it; RerollRefused when the campaign has no such key."""
    if "\x00" in key:
        raise RerollRefused("unknown-key", f"campaign {campaign_id} has no {table} row with key {key!r}", 404)
    row = conn.execute(
        sql.SQL("SELECT to_jsonb(t) AS row FROM {} t WHERE campaign_id = %s AND key = %s").format(
            sql.Identifier(table)
        ),
        (str(campaign_id), key),
    ).fetchone()
    if row is None:
        raise RerollRefused("unknown-key", f"campaign {campaign_id} has no {table} row with key {key!r}", 404)
    whole: dict[str, Any] = row["row"]
    return whole


def _fence(conn: psycopg.Connection[Any], campaign_id: Any) -> None:
    """``state.fence_campaign_edit``: in the edit's transaction, so a generation cannot start between."""
    try:
        state.fence_campaign_edit(conn, campaign_id)
    except state.GenerationActive as exc:
        raise RerollRefused("generation-active", str(exc)) from exc


def _refuse_locked(table: str, key: str, row: Mapping[str, Any], what: str = "rerolled") -> None:
    if row.get("locked"):
        raise RerollRefused(
            "row-locked",
            f"{table} {key!r} is locked by the game master, so it is not {what}: unlock it first",
        )


# -- the rows around it -------------------------------------------------------------------------


def reroll_row(
    conn: psycopg.Connection[Any],
    campaign_id: uuid.UUID | str,
    table: str,
    key: str,
    *,
    hint: str | None = None,
    model: WorldModel | None = None,
    provider: str | None = None,
) -> RerollOutcome:
    """Write the campaign's ``table`` row ``key`` anew; see the module's doc.

    Raises RerollRefused (a mistake or a state that forbids it: nothing called, nothing written),
    InvalidModelOutput (still invalid after the repair round) or a model error; a reroll whose model
    was called is recorded in either case (``row_rerolls`` and the ledger).
    """
    hint = (hint or "").strip() or None
    if hint is not None and len(hint) > MAX_HINT_CHARS:
        raise RerollRefused("hint-too-long", f"a hint has at most {MAX_HINT_CHARS} characters", 400)
    phase = world_table(conn, table)
    campaign = _campaign(conn, campaign_id)
    specs = table_specs(conn)
    spec = specs[table]
    with conn.transaction():
        whole = _whole_row(conn, campaign["id"], table, key)
        _refuse_locked(table, key, whole)
        _fence(conn, campaign["id"])  # refused early too: no model call while a generation runs
        around = _neighbourhood(conn, campaign["id"], table, whole, specs)
        pcs = load_player_characters(conn, campaign["id"])
        earlier = conn.execute(
            "SELECT count(*) AS n FROM row_rerolls WHERE campaign_id = %s AND table_name = %s AND row_key = %s",
            (str(campaign["id"]), table, key),
        ).fetchone()
    # A reroll the procedural model must not write as it was: another seed for each one.
    seed = get_settings().seed + 1 + int(earlier["n"] if earlier else 0)
    tool = reroll_tool(table, spec, around, key, open_references=hint is not None)
    request = reroll_request(phase, spec, key, hint, campaign, pcs, around, tool, seed=seed)
    model = model or get_model(provider)
    reroll_id = uuid.uuid4()
    ledger = Ledger.of_reroll(reroll_id, campaign["id"], phase)
    calls = ledger.calls
    asked = _RerollCalls(conn, ledger, campaign["id"], phase, spec, whole, around, hint, reroll_id)
    try:
        written = run_rounds(model, ledger, {0: request}, REPAIR_ROUNDS, asked)
    except Exception as exc:  # what was called was paid for: it reaches the ledger whatever happened
        error = exc.code if isinstance(exc, RerollRefused) else type(exc).__name__
        message = exc.message if isinstance(exc, RerollRefused | WorldgenError) else str(exc)
        _record_failed(conn, campaign["id"], table, whole, hint, reroll_id, ledger, error, message)
        raise
    changed = sorted(c for c in written if c != "updated_at" and written.get(c) != whole.get(c))
    return RerollOutcome(
        reroll_id=str(reroll_id),
        table=table,
        key=key,
        row_id=str(whole["id"]),
        status="applied",
        provider=calls[-1].provider if calls else None,
        model=calls[-1].model if calls else None,
        model_calls=len(calls),
        input_tokens=sum(c.input_tokens for c in calls),
        output_tokens=sum(c.output_tokens for c in calls),
        cost_usd=round(sum(c.cost_usd for c in calls), 6),
        changed=changed,
    )


class _RerollCalls(Calls[dict[str, Any]]):
    """A reroll's one call as the round loop runs it: checked like a phase's row, saved in place."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        ledger: Ledger,
        campaign_id: Any,
        phase: Phase,
        spec: TableSpec,
        whole: dict[str, Any],
        around: Neighbourhood,
        hint: str | None,
        reroll_id: uuid.UUID,
    ) -> None:
        self.conn, self.ledger, self.campaign_id, self.phase, self.spec = conn, ledger, campaign_id, phase, spec
        self.whole, self.around, self.hint, self.reroll_id = whole, around, hint, reroll_id
        self.key = str(whole["key"])
        known = {t: dict(pool) for t, pool in around.keys.items()}
        known[spec.name] = {k: v for k, v in known.get(spec.name, {}).items() if k != self.key}  # its own stays its own
        self.known = known
        self.started = time.monotonic()
        self.row: dict[str, Any] | None = None
        self.tool: dict[str, Any] = {}

    def _left(self) -> float:
        return REROLL_SECONDS - (time.monotonic() - self.started)

    def prepare(self, request: ModelRequest, round_number: int) -> ModelRequest:
        self.tool = request.tool
        return dataclasses.replace(request, round=round_number, deadline_seconds=max(1.0, self._left() - SAVE_SECONDS))

    def check(self, index: int, response: ModelResponse) -> list[Problem]:
        found, self.row = _problems(
            self.conn, self.phase, self.spec, response, self.known, self.tool, self.around, self.key
        )
        return found

    def finish(self, round_number: int) -> dict[str, Any]:
        assert self.row is not None
        return _save(self)

    def before_round(self, round_number: int, problems: dict[int, list[Problem]]) -> None:
        if self._left() < SAVE_SECONDS + 1:
            self.give_up(problems)

    def give_up(self, problems: dict[int, list[Problem]]) -> dict[str, Any]:
        raise invalid_output(
            f"reroll of {self.spec.name} {self.key!r}: the answer is still invalid after"
            f" {REPAIR_ROUNDS} repair round(s)",
            [p for listed in problems.values() for p in listed],
        )


def _problems(
    conn: psycopg.Connection[Any],
    phase: Phase,
    spec: TableSpec,
    response: ModelResponse,
    known: Mapping[str, Mapping[str, Any]],
    tool: dict[str, Any],
    around: Neighbourhood,
    key: str,
) -> tuple[list[Problem], dict[str, Any] | None]:
    """The answer's problems and its one row, slugged at the door like a phase's."""
    table = spec.name
    view = dataclasses.replace(phase, tables=(table,))
    specs = {table: spec}
    answer, found = at_the_door(view, specs, response)
    if answer is None:
        return found, None
    found += rules.validate(
        conn, view, specs, answer, known, input_schema=tool["input_schema"], beside={table: around.siblings}
    )
    rows = answer.get(table) if isinstance(answer, dict) else None
    if not found and (not isinstance(rows, list) or len(rows) != 1 or rows[0].get("key") != key):
        found.append(Problem(table, f"write exactly one row, with the key {key!r}"))
    row = rows[0] if isinstance(rows, list) and len(rows) == 1 and isinstance(rows[0], dict) else None
    conn.commit()
    return found, row


def _save(calls: _RerollCalls) -> dict[str, Any]:
    """One transaction: the fence, the row unchanged since it was read, the update, the history, the ledger."""
    conn, campaign_id, spec, whole, around = calls.conn, calls.campaign_id, calls.spec, calls.whole, calls.around
    hint, reroll_id, row = calls.hint, calls.reroll_id, calls.row or {}
    table, key = spec.name, str(whole["key"])
    with conn.transaction():
        _fence(conn, campaign_id)
        now = _whole_row(conn, campaign_id, table, key)
        _refuse_locked(table, key, now)
        if now != whole:
            raise RerollRefused(
                "row-changed", f"{table} {key!r} changed while it was being rerolled (another edit): try again"
            )
        columns = [c for c in spec.exposed_columns if c.name != "key"]
        values: list[Any] = []
        for column in columns:
            value = row.get(column.property_name)
            if value is None and not column.nullable and not column.references:
                value = now.get(column.name)  # left out (gm_notes, is_secret): the row keeps what it had
            if value is not None and column.references:
                value = around.keys[column.references][value]
            elif isinstance(value, float) and column.pg_type == "numeric":
                value = Decimal(repr(value))
            elif value is not None and column.pg_type in ("jsonb", "json"):
                value = Jsonb(value)
            values.append(value)
        assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c.name)) for c in columns)
        try:
            with conn.transaction():  # a savepoint: the database's rejection becomes a repair problem
                conn.execute(
                    sql.SQL("UPDATE {} SET {} WHERE id = %s").format(sql.Identifier(table), assignments),
                    (*values, whole["id"]),
                )
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
            raise rules.database_error(table, exc, {table: {key: uuid.UUID(str(whole["id"]))}}, around.keys) from exc
        written = _whole_row(conn, campaign_id, table, key)
        conn.execute(
            "INSERT INTO row_rerolls (id, campaign_id, table_name, row_id, row_key, hint, status, previous, written)"
            " VALUES (%s, %s, %s, %s, %s, %s, 'applied', %s, %s)",
            (reroll_id, str(campaign_id), table, whole["id"], key, hint, Jsonb(whole), Jsonb(written)),
        )
        calls.ledger.write(conn, reroll_id=reroll_id)
    return written


def _record_failed(
    conn: psycopg.Connection[Any],
    campaign_id: Any,
    table: str,
    whole: dict[str, Any],
    hint: str | None,
    reroll_id: uuid.UUID,
    ledger: Ledger,
    error_type: str,
    message: str,
) -> None:
    """A reroll that wrote nothing: what its model calls cost still reaches the ledger (logged when
    the database cannot take it, never masking the reroll's own error)."""
    if not ledger.calls:
        return
    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.rollback()
        with conn.transaction():
            conn.execute(
                "INSERT INTO row_rerolls (id, campaign_id, table_name, row_id, row_key, hint, status, error_type,"
                " error_message) VALUES (%s, %s, %s, %s, %s, %s, 'failed', %s, %s)",
                (reroll_id, str(campaign_id), table, whole["id"], whole["key"], hint, error_type, message[:4000]),
            )
            ledger.write(conn, reroll_id=reroll_id, error=error_type)
    except psycopg.Error:
        logger.exception("reroll's model calls not recorded", extra={"table": table, "calls": len(ledger.calls)})


# -- undo and history -----------------------------------------------------------------------------


def undo_reroll(conn: psycopg.Connection[Any], campaign_id: uuid.UUID | str, table: str, key: str) -> RerollOutcome:
    """Put back the version the latest applied reroll of the row replaced, exactly (``previous``)."""
    world_table(conn, table)
    campaign = _campaign(conn, campaign_id)
    with conn.transaction():
        _fence(conn, campaign["id"])
        whole = _whole_row(conn, campaign["id"], table, key)
        latest = conn.execute(
            "SELECT id, row_id, previous FROM row_rerolls WHERE campaign_id = %s AND table_name = %s"
            " AND row_key = %s AND status = 'applied' ORDER BY created_at DESC, id DESC LIMIT 1 FOR UPDATE",
            (str(campaign["id"]), table, key),
        ).fetchone()
        if latest is None:
            raise RerollRefused("nothing-to-undo", f"{table} {key!r} has no reroll left to undo")
        if str(latest["row_id"]) != str(whole["id"]):
            raise RerollRefused(
                "row-replaced",
                f"{table} {key!r} was generated again since its last reroll: that reroll cannot be undone",
            )
        _refuse_locked(table, key, whole, "changed")
        columns = [c for c in insertable_columns(conn, table) if c != "id"]
        names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        conn.execute(
            sql.SQL(
                "UPDATE {table} SET ({names}) = (SELECT {names} FROM jsonb_populate_record(NULL::{table}, %s))"
                " WHERE id = %s"
            ).format(table=sql.Identifier(table), names=names),
            (Jsonb(latest["previous"]), whole["id"]),
        )
        conn.execute("UPDATE row_rerolls SET status = 'undone', undone_at = now() WHERE id = %s", (latest["id"],))
    return RerollOutcome(
        reroll_id=str(latest["id"]),
        table=table,
        key=key,
        row_id=str(whole["id"]),
        status="undone",
        changed=sorted(c for c in latest["previous"] if latest["previous"].get(c) != whole.get(c)),
    )


def reroll_history(conn: psycopg.Connection[Any], campaign_id: uuid.UUID | str) -> list[dict[str, Any]]:
    """Every reroll of the campaign, oldest first, with its hint, model(s), calls and cost."""
    campaign = _campaign(conn, campaign_id)
    rows = conn.execute(
        """
        SELECT r.id, r.table_name, r.row_key, r.status, r.hint, r.created_at, r.undone_at, r.error_type,
               coalesce(string_agg(DISTINCT m.model, ', '), '') AS model, count(m.id) AS model_calls,
               coalesce(sum(m.cost_usd), 0) AS cost_usd
          FROM row_rerolls r LEFT JOIN model_calls m ON m.reroll_id = r.id
         WHERE r.campaign_id = %s
         GROUP BY r.id ORDER BY r.created_at, r.id
        """,
        (str(campaign["id"]),),
    ).fetchall()
    conn.commit()
    return [dict(r) for r in rows]
