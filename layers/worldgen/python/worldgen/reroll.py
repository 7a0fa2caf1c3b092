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
import json
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
from worldgen.db.context import PhaseContext, load_campaign, load_player_characters
from worldgen.db.save import WORLD_TABLE_SET, existing_keys
from worldgen.db.snapshot import insertable_columns
from worldgen.db.validation import invalid_output
from worldgen.errors import CampaignNotFound, InvalidModelOutput, RerollRefused, WorldgenError
from worldgen.model.base import ModelRequest, ModelResponse, ModelUsage, WorldModel
from worldgen.model.factory import get_model
from worldgen.observability import logger
from worldgen.outline import ASSIGNED_MARKER
from worldgen.phases import WORLD_TABLES, Phase, phase_of_table
from worldgen.pipeline import record_model_calls, repair_messages, table_specs, usage_of_failure
from worldgen.prompts import reroll_prompt, system_prompt
from worldgen.schema.spec import TableSpec
from worldgen.schema.tools import table_schema
from worldgen.settings import get_settings

PC_TABLE = "player_characters"
TOOL_NAME = "reroll_row"
REPAIR_ROUNDS = 1
# The whole reroll (its calls and the save) answers inside the Hasura action's timeout (25 s,
# infra/hasura/metadata/actions.yaml; the action Lambda has 29 s): each call gets what is left of it.
REROLL_SECONDS = 20.0
SAVE_SECONDS = 2.0
MAX_TOKENS = 4096  # one row; a phase's budget would reserve far more of the rate limit
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


@dataclass
class Neighbourhood:
    """The row and the world around it, every reference written as a key."""

    row: dict[str, Any]  # the row in tool properties
    refers_to: list[tuple[str, dict[str, Any]]]  # (table, row) of every row it names
    referred_by: list[tuple[str, dict[str, Any]]]  # (table, row) of every row naming it
    keys: dict[str, dict[str, uuid.UUID]]  # key -> id of every row of the campaign, by table
    siblings: list[dict[str, Any]]  # the other rows of its table, in tool properties


def as_properties(whole: Mapping[str, Any], spec: TableSpec, id_to_key: Mapping[str, str]) -> dict[str, Any]:
    """A whole row as the model reads and writes it: its exposed columns, references as keys."""
    out: dict[str, Any] = {}
    for column in spec.exposed_columns:
        value = whole.get(column.name)
        if value is None:
            continue
        out[column.property_name] = id_to_key.get(str(value), str(value)) if column.references else value
    return out


def _neighbourhood(
    conn: psycopg.Connection[Any],
    campaign_id: Any,
    table: str,
    whole: dict[str, Any],
    specs: Mapping[str, TableSpec],
) -> Neighbourhood:
    keys = existing_keys(conn, campaign_id, set(WORLD_TABLES) | {PC_TABLE})
    id_to_key = {str(row_id): key for pool in keys.values() for key, row_id in pool.items()}
    spec = specs[table]
    selects: list[sql.Composable] = []
    for column in spec.foreign_keys:
        target = column.references or ""
        if whole.get(column.name) is not None and target in WORLD_TABLE_SET:
            selects.append(
                sql.SQL("SELECT {name} AS t, to_jsonb(x) AS row FROM {table} x WHERE id = {id}").format(
                    name=sql.Literal(target), table=sql.Identifier(target), id=sql.Literal(whole[column.name])
                )
            )
    referring: list[sql.Composable] = []
    for source in WORLD_TABLES:
        for column in specs[source].foreign_keys:
            if column.references == table:
                referring.append(
                    sql.SQL("SELECT {name} AS t, to_jsonb(x) AS row FROM {table} x WHERE {column} = {id}").format(
                        name=sql.Literal(source),
                        table=sql.Identifier(source),
                        column=sql.Identifier(column.name),
                        id=sql.Literal(whole["id"]),
                    )
                )
    refers_to = [(t, as_properties(r, specs[t], id_to_key)) for t, r in _union(conn, selects)]
    referred_by = [(t, as_properties(r, specs[t], id_to_key)) for t, r in _union(conn, referring)]
    siblings = conn.execute(
        sql.SQL("SELECT to_jsonb(t) AS row FROM {} t WHERE campaign_id = %s AND id <> %s ORDER BY key").format(
            sql.Identifier(table)
        ),
        (str(campaign_id), whole["id"]),
    ).fetchall()
    pcs = {row["key"]: row for row in load_player_characters(conn, campaign_id)}
    refers_to += [
        (PC_TABLE, pcs[id_to_key[str(whole[c.name])]])
        for c in spec.foreign_keys
        if c.references == PC_TABLE and whole.get(c.name) is not None and id_to_key.get(str(whole[c.name])) in pcs
    ]
    return Neighbourhood(
        row=as_properties(whole, spec, id_to_key),
        refers_to=refers_to,
        referred_by=referred_by,
        keys=keys,
        siblings=[as_properties(r["row"], spec, id_to_key) for r in siblings],
    )


def _union(conn: psycopg.Connection[Any], selects: list[sql.Composable]) -> list[tuple[str, dict[str, Any]]]:
    """(table, whole row) of each select, in one round trip."""
    if not selects:
        return []
    with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        return [(t, row) for t, row in cur.execute(sql.SQL(" UNION ALL ").join(selects))]


def _descendants(table: str, key: str, siblings: list[dict[str, Any]], prop: str) -> set[str]:
    """The keys under ``key`` in a hierarchy of ``table`` through ``prop`` (a parent may not be one)."""
    children: dict[str, list[str]] = {}
    for row in siblings:
        if isinstance(row.get(prop), str):
            children.setdefault(row[prop], []).append(row["key"])
    found: set[str] = set()
    queue = [key]
    while queue:
        for child in children.get(queue.pop(), []):
            if child not in found:
                found.add(child)
                queue.append(child)
    return found


def reroll_tool(
    table: str, spec: TableSpec, around: Neighbourhood, key: str, *, open_references: bool
) -> dict[str, Any]:
    """The tool of a reroll: exactly one row of ``table``, keeping ``key``; each reference an enum of
    its current value, or (``open_references``, a hint was given) of every row it may name."""
    rows = table_schema(spec, 1)
    rows["minItems"] = 1
    item = rows["items"]
    item["properties"]["key"]["enum"] = [key]
    for column in spec.foreign_keys:
        prop, target = column.property_name, column.references or ""
        if prop not in item["properties"]:
            continue
        current = around.row.get(prop)
        if open_references:
            excluded = {key} | (_descendants(table, key, around.siblings, prop) if target == table else set())
            choices = sorted(k for k in around.keys.get(target, {}) if k not in excluded)
        else:
            choices = [current] if current is not None else []
        if choices:
            item["properties"][prop]["enum"] = choices
        elif prop not in item["required"]:
            del item["properties"][prop]
    return {
        "name": TOOL_NAME,
        "description": f"Record the rerolled {table} row {key!r}: exactly one row, keeping its key.",
        "input_schema": {
            "type": "object",
            "properties": {table: rows},
            "required": [table],
            "additionalProperties": False,
        },
    }


def _lines(rows: list[tuple[str, dict[str, Any]]]) -> str:
    return "\n".join(f"{table}: {json.dumps(row, ensure_ascii=False)}" for table, row in rows)


def reroll_request(
    phase: Phase,
    spec: TableSpec,
    key: str,
    hint: str | None,
    campaign: dict[str, Any],
    pcs: list[dict[str, Any]],
    around: Neighbourhood,
    tool: dict[str, Any],
    *,
    seed: int,
) -> ModelRequest:
    """The one request of a reroll (the first round); ``tool`` is ``reroll_tool``'s."""
    table = spec.name
    campaign_text = "\n".join(
        [f"Name: {campaign['name']}", f"Setting: {campaign['setting']}", f"Tone: {campaign['tone']}"]
        + ["Player characters:"]
        + [json.dumps(pc, ensure_ascii=False) for pc in pcs]
    )
    prompt = reroll_prompt(
        table=table,
        key=key,
        hint=hint,
        tool_name=TOOL_NAME,
        campaign=campaign_text,
        row=json.dumps(around.row, ensure_ascii=False),
        refers_to=_lines(around.refers_to),
        referred_by=_lines(around.referred_by),
    )
    # The marker the parts of a phase use to say which rows a call writes (worldgen.outline).
    prompt += f"\n\n{ASSIGNED_MARKER}{json.dumps({table: [key]})}"
    rows: dict[str, list[dict[str, Any]]] = {table: [around.row]}
    for source, row in [*around.refers_to, *around.referred_by]:
        if source != PC_TABLE:
            rows.setdefault(source, []).append(row)
    context = PhaseContext(
        phase=phase.id,
        campaign={k: campaign[k] for k in ("name", "setting", "tone")},
        player_characters=pcs,
        rows=rows,
        keys={t: sorted(pool) for t, pool in around.keys.items()},
    )
    offered = tool["input_schema"]["properties"][table]["items"]["properties"]
    references = {c.property_name: c.references or "" for c in spec.foreign_keys if c.property_name in offered}
    return ModelRequest(
        phase=phase,
        system=system_prompt(),
        messages=[{"role": "user", "content": prompt}],
        tool=tool,
        max_tokens=min(MAX_TOKENS, phase.max_tokens),
        context=context,
        references={table: references},
        options={"seed": seed, "scale": 1.0},
        deadline_seconds=REROLL_SECONDS,
        assigned={table: [key]},
        tables=(table,),
    )


# -- reroll ---------------------------------------------------------------------------------------


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
    calls: list[ModelUsage] = []
    try:
        written = _ask_and_save(
            conn, request, model, calls, campaign["id"], phase, spec, whole, around, hint, reroll_id
        )
    except Exception as exc:  # what was called was paid for: it reaches the ledger whatever happened
        error = exc.code if isinstance(exc, RerollRefused) else type(exc).__name__
        message = exc.message if isinstance(exc, RerollRefused | WorldgenError) else str(exc)
        _record_failed(conn, campaign["id"], table, whole, hint, reroll_id, phase, calls, error, message)
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


def _ask_and_save(
    conn: psycopg.Connection[Any],
    request: ModelRequest,
    model: WorldModel,
    calls: list[ModelUsage],
    campaign_id: Any,
    phase: Phase,
    spec: TableSpec,
    whole: dict[str, Any],
    around: Neighbourhood,
    hint: str | None,
    reroll_id: uuid.UUID,
) -> dict[str, Any]:
    """The call, the checks, one repair round, the save; the row as written."""
    table, key = spec.name, str(whole["key"])
    view = dataclasses.replace(phase, tables=(table,))
    specs = {table: spec}
    known = {t: dict(pool) for t, pool in around.keys.items()}
    known[table] = {k: v for k, v in known.get(table, {}).items() if k != key}  # its own key stays its own
    started = time.monotonic()
    for round_number in range(1, REPAIR_ROUNDS + 2):
        left = REROLL_SECONDS - (time.monotonic() - started)
        request = dataclasses.replace(request, round=round_number, deadline_seconds=max(1.0, left - SAVE_SECONDS))
        try:
            response = model.call(request)
        except WorldgenError as exc:
            calls.append(usage_of_failure(exc, model, phase))
            raise
        calls.append(response.usage)
        problems, row = _problems(conn, view, specs, response, known, request.tool, around, key)
        if row is not None and not problems:
            try:
                return _save(conn, campaign_id, spec, whole, row, around, hint, reroll_id, calls, phase)
            except InvalidModelOutput as exc:  # a rule only the database knows, by key
                problems = list(exc.details.get("problems") or [exc.message])
        if round_number > REPAIR_ROUNDS or REROLL_SECONDS - (time.monotonic() - started) < SAVE_SECONDS + 1:
            raise invalid_output(
                f"reroll of {table} {key!r}: the answer is still invalid after {REPAIR_ROUNDS} repair round(s)",
                problems,
            )
        request = dataclasses.replace(
            request, messages=request.messages + repair_messages(response, problems, len(problems))
        )
    raise AssertionError("unreachable")


def _problems(
    conn: psycopg.Connection[Any],
    view: Phase,
    specs: Mapping[str, TableSpec],
    response: ModelResponse,
    known: Mapping[str, Mapping[str, Any]],
    tool: dict[str, Any],
    around: Neighbourhood,
    key: str,
) -> tuple[list[str], dict[str, Any] | None]:
    """The answer's problems (as the model reads them) and its one row, slugged like a phase's."""
    if response.tool_input is None:
        return [response.problem or "the answer did not call the tool"], None
    table = view.tables[0]
    answer, collisions = rules.slug_keys(view, specs, response.tool_input)
    found = [
        *collisions,
        *rules.validate(
            conn, view, specs, answer, known, input_schema=tool["input_schema"], beside={table: around.siblings}
        ),
    ]
    rows = answer.get(table) if isinstance(answer, dict) else None
    if not found and (not isinstance(rows, list) or len(rows) != 1 or rows[0].get("key") != key):
        found.append(rules.Problem(table, f"write exactly one row, with the key {key!r}"))
    row = rows[0] if isinstance(rows, list) and len(rows) == 1 and isinstance(rows[0], dict) else None
    conn.commit()
    return [str(p) for p in found], row


def _save(
    conn: psycopg.Connection[Any],
    campaign_id: Any,
    spec: TableSpec,
    whole: dict[str, Any],
    row: dict[str, Any],
    around: Neighbourhood,
    hint: str | None,
    reroll_id: uuid.UUID,
    calls: list[ModelUsage],
    phase: Phase,
) -> dict[str, Any]:
    """One transaction: the fence, the row unchanged since it was read, the update, the history, the ledger."""
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
        record_model_calls(
            conn, calls, _call_ids(reroll_id, len(calls)), campaign_id=campaign_id, phase_id=phase.id,
            reroll_id=reroll_id,
        )  # fmt: skip
    return written


def _call_ids(reroll_id: uuid.UUID, count: int) -> list[uuid.UUID]:
    return [uuid.uuid5(uuid.NAMESPACE_URL, f"worldgen:reroll:{reroll_id}:{n + 1}") for n in range(count)]


def _record_failed(
    conn: psycopg.Connection[Any],
    campaign_id: Any,
    table: str,
    whole: dict[str, Any],
    hint: str | None,
    reroll_id: uuid.UUID,
    phase: Phase,
    calls: list[ModelUsage],
    error_type: str,
    message: str,
) -> None:
    """A reroll that wrote nothing: what its model calls cost still reaches the ledger (logged when
    the database cannot take it, never masking the reroll's own error)."""
    if not calls:
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
            record_model_calls(
                conn, calls, _call_ids(reroll_id, len(calls)), campaign_id=campaign_id, phase_id=phase.id,
                reroll_id=reroll_id, error=error_type,
            )  # fmt: skip
    except psycopg.Error:
        logger.exception("reroll's model calls not recorded", extra={"table": table, "calls": len(calls)})


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
