"""run_phase: dependencies -> context -> prompt -> model -> validate/repair -> save -> record."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from functools import cache, partial
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from worldgen import continuity, cost_cap, state
from worldgen import outline as outlines
from worldgen.audit import ROLE_TABLES, role_room
from worldgen.db import rules
from worldgen.db.catalog import read_table_specs
from worldgen.db.connection import connect
from worldgen.db.context import PhaseContext, phase_context, referenced_tables
from worldgen.db.problems import Problem
from worldgen.db.save import (
    SaveResult,
    existing_keys,
    external_tables,
    invalid_output,
    problem_listing,
    save_phase_rows,
    validate_phase_input,
)
from worldgen.errors import (
    CampaignNotFound,
    DatabaseUnavailable,
    GenerationCancelled,
    InvalidModelOutput,
    PhaseDependencyMissing,
    WorldgenError,
)
from worldgen.model.base import ModelRequest, ModelResponse, ModelUsage, WorldModel, get_model
from worldgen.model.families import find_family
from worldgen.observability import logger
from worldgen.phases import SAVE_SECONDS, WORLD_TABLES, Phase, get_phase, row_target
from worldgen.prompts import phase_prompt, size_hint, system_prompt
from worldgen.schema.spec import TableSpec
from worldgen.schema.tools import load_tool, strict_variant, with_key_enums, with_row_targets
from worldgen.settings import get_settings


@dataclass
class PhaseOutcome:
    phase: str
    status: str  # succeeded | skipped
    rows_total: int = 0
    rows_per_table: dict[str, int] = field(default_factory=dict)
    model_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0
    replayed: bool = False  # already succeeded for this generation: returned without a model call
    rows_dropped: int = 0  # invalid rows left out after the repair rounds (partial success)

    def payload(self) -> dict[str, Any]:
        """What the Lambda returns to Step Functions: small, the data lives in PostgreSQL."""
        return {k: v for k, v in asdict(self).items() if k != "rows_per_table"}


@cache
def _specs_for(dsn: str) -> dict[str, TableSpec]:
    from worldgen.db.connection import connect

    with connect(dsn) as conn:
        return read_table_specs(conn, WORLD_TABLES)


def table_specs(conn: psycopg.Connection[Any]) -> dict[str, TableSpec]:
    """The catalog's TableSpecs, read once per process and database."""
    return _specs_for(conn.info.dsn)


def load_generation(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT id, campaign_id, status, model_provider, options, phases FROM generations WHERE id = %s",
        (str(generation_id),),
    ).fetchone()
    if row is None:
        raise CampaignNotFound(f"generation {generation_id} does not exist")
    return dict(row)


def _check_dependencies(conn: psycopg.Connection[Any], generation: dict[str, Any], phase: Phase) -> None:
    succeeded = {
        r["phase"]
        for r in conn.execute(
            "SELECT phase FROM phase_runs WHERE generation_id = %s AND status = 'succeeded'",
            (generation["id"],),
        ).fetchall()
    }
    for dep in phase.depends_on:
        if dep in succeeded:
            continue
        if dep not in generation["phases"]:
            # A regeneration reuses the campaign's earlier world for phases it does not rerun.
            earlier = conn.execute(
                "SELECT 1 FROM phase_runs WHERE campaign_id = %s AND phase = %s AND status = 'succeeded' LIMIT 1",
                (generation["campaign_id"], dep),
            ).fetchone()
            if earlier:
                continue
        raise PhaseDependencyMissing(
            f"phase {phase.id} needs phase {dep}, which has not succeeded for generation {generation['id']}",
            phase=phase.id,
            missing=dep,
        )


def _insert_model_calls(
    conn: psycopg.Connection[Any],
    generation: dict[str, Any],
    phase: Phase,
    attempt: int,
    calls: list[ModelUsage],
    error: str | None,
) -> None:
    # The id is a function of (generation, phase, attempt, round): writing a call twice (a commit
    # whose answer was lost, then the failure path) leaves one row.
    ids = [
        uuid.uuid5(uuid.NAMESPACE_URL, f"worldgen:{generation['id']}:{phase.id}:{attempt}:{index + 1}")
        for index in range(len(calls))
    ]
    record_model_calls(
        conn, calls, ids, campaign_id=generation["campaign_id"], phase_id=phase.id,
        generation_id=generation["id"], error=error,
    )  # fmt: skip


def record_model_calls(
    conn: psycopg.Connection[Any],
    calls: list[ModelUsage],
    ids: list[uuid.UUID],
    *,
    campaign_id: Any,
    phase_id: str,
    generation_id: Any = None,
    reroll_id: Any = None,
    error: str | None = None,
) -> None:
    """The ledger rows of ``calls`` (one per round, ``ids`` in order), made for a generation's phase
    or for a reroll (exactly one of the two); ``error`` goes on the last call."""
    if not calls:
        return
    rows = [
        (
            ids[index], generation_id, reroll_id, campaign_id, phase_id, index + 1, u.provider, u.model,
            u.input_tokens, u.output_tokens, u.cache_creation_input_tokens, u.cache_read_input_tokens, u.latency_ms,
            u.stop_reason, u.cost_usd, error if index == len(calls) - 1 else None, u.part,
        )
        for index, u in enumerate(calls)
    ]  # fmt: skip
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO model_calls (id, generation_id, reroll_id, campaign_id, phase, round, provider, model,
                input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, latency_ms,
                stop_reason, cost_usd, error_type, part)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (id) DO NOTHING
            """,
            rows,
        )


def repair_messages(
    response: ModelResponse, problems: Sequence[Problem | str], problem_count: int | None = None
) -> list[dict[str, Any]]:
    """The rejected answer, then a user turn listing the problems (a tool_result for a tool call),
    bounded (MAX_PROBLEMS_LISTED, each clipped) however many and however large: 10,000 bad rows
    must not make a megabyte prompt."""
    problem_count = len(problems) if problem_count is None else problem_count
    if response.tool_input is None and response.problem:
        problems, problem_count = [response.problem], 1
    listing = "\n".join(f"- {p}" for p in problem_listing(problems, problem_count))
    if response.request_mode == "structured_output":
        text = f"Your JSON answer was rejected. Fix every problem below and answer again with ALL tables:\n{listing}"
        answer = [b for b in response.assistant_content if b.get("type") != "text" or b.get("text")]
        return [
            {"role": "assistant", "content": answer or [{"type": "text", "text": "(no answer)"}]},
            {"role": "user", "content": text},
        ]
    text = f"The tool input was rejected. Fix every problem below and call the tool again with ALL tables:\n{listing}"
    if response.tool_use_id is None:
        return [
            {
                "role": "assistant",
                "content": response.assistant_content or [{"type": "text", "text": "(no answer)"}],
            },
            {"role": "user", "content": "You must answer by calling the tool, with every table. " + text},
        ]
    return [
        {"role": "assistant", "content": response.assistant_content},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": response.tool_use_id,
                    "is_error": True,
                    "content": text,
                }
            ],
        },
    ]


def at_the_door(phase: Phase, specs: dict[str, TableSpec], response: ModelResponse) -> tuple[Any, list[Problem]]:
    """An answer as every check sees it: its keys and key references slugged (``Iron_Marches`` is
    ``iron-marches``), with the keys that collide once slugged; None and why when there is none."""
    if response.tool_input is None:
        return None, [Problem("", response.problem or "the answer did not call the tool")]
    return rules.slug_keys(phase, specs, response.tool_input)


def outline_at_the_door(response: ModelResponse) -> tuple[Any, list[Problem]]:
    """An outline answer with its keys and the player characters it names slugged."""
    if response.tool_input is None:
        return None, [Problem("", response.problem or "the answer did not call the tool")]
    answer = response.tool_input
    if not isinstance(answer, dict):
        return answer, []
    slugged = {
        table: [
            {p: rules.slug(v) if p in ("key", "player_character_key") and isinstance(v, str) and rules.slug(v) else v
             for p, v in row.items()} if isinstance(row, dict) else row
            for row in rows
        ] if isinstance(rows, list) else rows
        for table, rows in answer.items()
    }  # fmt: skip
    return slugged, []


def run_phase(
    conn: psycopg.Connection[Any],
    generation_id: uuid.UUID | str,
    phase_id: str,
    model: WorldModel | None = None,
    remaining_ms: Callable[[], int] | None = None,
    run: state.ExecutionRun | None = None,
) -> PhaseOutcome:
    """Run one phase of a generation; idempotent (a succeeded phase returns its recorded result).

    ``remaining_ms`` is the Lambda's remaining time (``context.get_remaining_time_in_millis``):
    a repair round starts only if its call and the save still fit in it. ``run`` is the execution
    run that calls (a redriven one may take its failed generation back, ``state.start_phase_attempt``).
    """
    phase = get_phase(phase_id)
    generation = load_generation(conn, generation_id)
    conn.commit()
    if generation["status"] == "cancelled":
        raise GenerationCancelled(f"generation {generation_id} was cancelled")
    if phase.id not in generation["phases"]:
        return PhaseOutcome(phase.id, "skipped")
    recorded = conn.execute(
        "SELECT status, result FROM phase_runs WHERE generation_id = %s AND phase = %s",
        (generation["id"], phase.id),
    ).fetchone()
    conn.commit()
    if recorded and recorded["status"] == "succeeded" and recorded["result"]:
        return PhaseOutcome(**{**recorded["result"], "replayed": True})
    _check_dependencies(conn, generation, phase)
    attempt = state.start_phase_attempt(conn, generation["id"], phase, run=run)
    started = time.perf_counter()
    calls: list[ModelUsage] = []
    try:
        return _generate(conn, generation, phase, attempt, model, calls, started, remaining_ms)
    except WorldgenError as exc:
        _record_failure(conn, generation, phase, attempt, calls, type(exc).__name__, exc.message)
        raise
    except Exception as exc:
        _record_failure(conn, generation, phase, attempt, calls, type(exc).__name__, str(exc))
        raise


def model_request(
    phase: Phase,
    context: PhaseContext,
    specs: dict[str, TableSpec],
    *,
    tool: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
) -> ModelRequest:
    """The first request of a phase, as run_phase sends it (tests and benchmarks build theirs here too).

    ``tool`` defaults to the committed tool with references to earlier rows narrowed to their keys.
    """
    pc_count = len(context.keys.get("player_characters", []))
    tool = tool if tool is not None else with_key_enums(load_tool(phase), phase, specs, context.keys)
    return ModelRequest(
        phase=phase,
        system=system_prompt(),
        messages=[{"role": "user", "content": phase_prompt(phase, context, size_hint(phase, pc_count))}],
        tool=with_row_targets(tool, phase, pc_count),
        max_tokens=phase.max_tokens,
        deadline_seconds=phase.stream_deadline_seconds,
        context=context,
        references={t: {c.property_name: c.references or "" for c in specs[t].foreign_keys} for t in phase.tables},
        options=options or {},
    )


def _generate(
    conn: psycopg.Connection[Any],
    generation: dict[str, Any],
    phase: Phase,
    attempt: int,
    model: WorldModel | None,
    calls: list[ModelUsage],
    started: float,
    remaining_ms: Callable[[], int] | None = None,
) -> PhaseOutcome:
    settings = get_settings()
    repair_rounds = min(settings.repair_rounds, phase.repair_rounds)  # the rounds the Lambda's budget holds
    model = model or get_model(generation["model_provider"])
    specs = table_specs(conn)
    context = phase_context(conn, generation["campaign_id"], phase, specs)
    conn.commit()
    tool = with_key_enums(load_tool(phase), phase, specs, context.keys)
    if phase.strict_tools or phase.id in settings.strict_phases:
        tool = strict_variant(tool)
    request = model_request(phase, context, specs, tool=tool, options=generation["options"])
    model = _within_cost_cap(conn, generation, phase, model, calls, request)
    if len(phase.table_groups) > 1:
        parts = _Parts(conn, generation, phase, attempt, model, calls, started, remaining_ms, specs, repair_rounds)
        return parts.run(request)
    model_ms = 0.0
    finish = partial(_finish, generation=generation, phase=phase, attempt=attempt, calls=calls, started=started)
    for round_number in range(1, repair_rounds + 2):
        request = dataclasses.replace(request, round=round_number)
        call_started = time.perf_counter()
        try:
            response = model.call(request)
        except WorldgenError as exc:
            # Every request made reaches the ledger: a refused or truncated answer with the tokens it
            # cost, an API error (429, 529, a timeout) with none.
            calls.append(usage_of_failure(exc, model, phase))
            raise
        finally:
            model_ms += time.perf_counter() - call_started
        calls.append(response.usage)
        tool_input, problems = at_the_door(phase, specs, response)
        problem_count = len(problems)
        if tool_input is not None and not problems and round_number <= repair_rounds:
            problems = _continuity_problems(conn, generation, phase, tool_input)
            problem_count = len(problems)
        if tool_input is not None and not problems:
            try:
                result = save_phase_rows(
                    conn, generation["campaign_id"], generation["id"], phase, tool_input, specs,
                    before_commit=partial(finish, model_seconds=model_ms),
                )  # fmt: skip
                return _outcome(phase, result, calls)
            except InvalidModelOutput as exc:
                problems = exc.problems or [Problem("", exc.message)]
                problem_count = int(exc.details.get("problem_count") or len(problems))
        if round_number > repair_rounds:
            if tool_input is not None:
                saved = _save_partially(
                    conn, generation, phase, specs, tool_input, partial(finish, model_seconds=model_ms)
                )
                if saved is not None:
                    return _outcome(phase, saved, calls)
            raise invalid_output(
                f"phase {phase.id}: tool input still invalid after {repair_rounds} repair round(s)"
                f" ({problem_count} problem(s))",
                problems,
                problem_count,
            )
        _check_time_for_a_round(phase, round_number + 1, remaining_ms, problems)
        state.check_attempt_current(conn, generation["id"], phase, attempt)  # cancelled: no more paid calls
        request = dataclasses.replace(
            request, messages=request.messages + repair_messages(response, problems, problem_count)
        )
    raise AssertionError("unreachable")


def _parts_in_flight(model: WorldModel, phase: Phase, requests: list[ModelRequest]) -> int:
    """How many parts may stream at once: the API reserves each request's ``max_tokens`` (in the
    family's tokens) against the output-tokens-per-minute limit when it starts, so the parts in
    flight reserve at most ``WORLDGEN_OUTPUT_TOKENS_PER_MINUTE`` (the others start as they finish)."""
    family = find_family(cost_cap.model_name(model, phase))
    factor = family.tokenizer_factor if family else 1.0
    reserved = max(r.max_tokens for r in requests) * factor
    return max(1, min(len(requests), int(get_settings().output_tokens_per_minute // reserved)))


def _within_cost_cap(
    conn: psycopg.Connection[Any],
    generation: dict[str, Any],
    phase: Phase,
    model: WorldModel,
    calls: list[ModelUsage],
    request: ModelRequest,
) -> WorldModel:
    """``model`` checked against the generation's cost cap before each call (``worldgen.cost_cap``),
    and the phase's first call checked now, at the phase boundary."""
    cap = cost_cap.cap_of(generation["options"])
    if cap is None:
        return model
    spent = cost_cap.spent_usd(conn, generation["id"])
    conn.commit()
    capped = cost_cap.CappedModel(model, phase, cap, spent, calls)
    capped.check_start(request)
    return capped


def _continuity_problems(
    conn: psycopg.Connection[Any], generation: dict[str, Any], phase: Phase, answer: dict[str, Any]
) -> list[Problem]:
    """The findings of the repairable continuity rules (``Settings.continuity_repair``) on the rows of
    ``answer``, judged with the world saved so far, as problems of the rows the phase wrote."""
    repairable = set(get_settings().continuity_repair)
    if not repairable:
        return []
    world, party = continuity.load_world(conn, generation["campaign_id"])
    conn.commit()
    found = continuity.answer_problems(world, party, answer, phase.tables, repairable)
    if found:
        logger.info("continuity findings sent back", extra={"phase": phase.id, "findings": len(found)})
    return found


def usage_of_failure(exc: Exception, model: WorldModel, phase: Phase, part: str | None = None) -> ModelUsage:
    """What a failed request cost, for the ledger: a refused or truncated answer with the tokens it
    streamed (``details["usage"]``, taken so it is counted once), an API error with none."""
    usage = exc.details.pop("usage", None) if isinstance(exc, WorldgenError) else None
    cost = ModelUsage(**usage) if isinstance(usage, dict) else _failed_call(model, phase)
    return dataclasses.replace(cost, part=part)


def _failed_call(model: WorldModel, phase: Phase) -> ModelUsage:
    """The ledger entry of a request that ended in an error before any usage was known."""
    model_id = getattr(model, "model_id", None)
    name = model_id(phase) if callable(model_id) else model.provider
    return ModelUsage(provider=model.provider, model=str(name), stop_reason="error")


def _save_partially(
    conn: psycopg.Connection[Any],
    generation: dict[str, Any],
    phase: Phase,
    specs: dict[str, TableSpec],
    tool_input: Any,
    finish: Any,
    unwritten: list[dict[str, str]] | None = None,
) -> SaveResult | None:
    """Drop the rows still invalid after the repair rounds (and what in the phase refers to them) and
    save the rest, when they are few (``partial_success_max_share`` of the phase's rows); else None.
    ``unwritten``: rows the phase was to write (its outline) that no answer has, dropped too."""
    if not isinstance(tool_input, dict):
        return None
    known = existing_keys(conn, generation["campaign_id"], external_tables(phase, specs))
    problems = rules.validate(conn, phase, specs, tool_input, known)  # keys slugged at the door
    conn.commit()
    trimmed = rules.drop_rows(phase, specs, tool_input, problems) if problems else (tool_input, [])
    if trimmed is None or not (problems or unwritten):
        return None
    kept, dropped = trimmed
    dropped = [*(unwritten or []), *dropped]
    total = sum(len(rows) for rows in tool_input.values() if isinstance(rows, list)) + len(unwritten or [])
    if len(dropped) > get_settings().partial_success_max_share * total:
        return None
    logger.warning("phase saved without its invalid rows", extra={"phase": phase.id, "dropped": dropped})
    return save_phase_rows(
        conn, generation["campaign_id"], generation["id"], phase, kept, specs,
        before_commit=partial(finish, dropped=dropped),
    )  # fmt: skip


class _Parts:
    """A phase generated in parts (``Phase.parts``): one call per part, concurrently, each repaired
    alone; the merged answer is validated and saved as one phase, in ONE transaction. An outlined
    phase (``Phase.outline``) first fixes every row's key in one short call; a retried attempt
    reuses the outline and the part answers an earlier attempt recorded (``phase_runs.parts``)."""

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        generation: dict[str, Any],
        phase: Phase,
        attempt: int,
        model: WorldModel,
        calls: list[ModelUsage],
        started: float,
        remaining_ms: Callable[[], int] | None,
        specs: dict[str, TableSpec],
        repair_rounds: int,
    ) -> None:
        self.conn, self.generation, self.phase, self.attempt = conn, generation, phase, attempt
        self.model, self.calls, self.started, self.remaining_ms = model, calls, started, remaining_ms
        self.specs, self.repair_rounds = specs, repair_rounds
        self.model_seconds = 0.0
        self.latest: dict[int, dict[str, Any]] = {}  # each part's last answer, for a partial save
        self.tables: dict[int, tuple[str, ...]] = {}  # the tables each part writes
        self.outline: outlines.Outline = {}
        self.assigned: dict[int, dict[str, list[str]]] = {}  # outlined: the keys each part writes
        self.fingerprint = ""  # of the context this attempt's answers are written against

    def run(self, request: ModelRequest) -> PhaseOutcome:
        groups = self.phase.table_groups
        self.fingerprint = request.context.fingerprint
        recorded = self._recorded(request)
        if self.phase.outline:
            self.outline = recorded.get("outline") or self._outline(request)
            dealt = outlines.deal(self.phase, self.outline)
            self.assigned = {i: rows for i, rows in enumerate(dealt) if rows}
            requests = {i: outlines.part_request(request, self.outline, rows) for i, rows in self.assigned.items()}
            self.tables = {i: tuple(rows) for i, rows in self.assigned.items()}
        else:
            requests = {
                index: outlines.table_part_request(self._part_base(request, tables), tables)
                for index, tables in enumerate(groups)
            }
            self.tables = dict(enumerate(groups))
        requests = self._deal_roles(requests, request)
        # A retried attempt reuses what an earlier attempt already got (same generation, same context).
        answers = {int(i): rows for i, rows in recorded.get("answers", {}).items() if int(i) in requests}
        self.latest.update(answers)
        if answers:
            logger.info("phase parts reused", extra={"phase": self.phase.id, "parts": sorted(i + 1 for i in answers)})
        pending = [i for i in requests if i not in answers]
        last: dict[int, ModelResponse] = {}  # each part's latest answer, for its repair turn
        if pending and self.phase.primes_cache:  # an outlined phase's outline call wrote the cache its parts read
            self._prime(request)
        for round_number in range(1, self.repair_rounds + 2):
            # each valid answer is recorded as it arrives, for a retry (a process killed mid-round loses none)
            responses, failure, problems = (
                self._call(pending, requests, round_number, answers) if pending else ({}, None, {})
            )
            last.update(responses)
            if failure is not None:
                raise failure
            if not problems and round_number <= self.repair_rounds:
                found = _continuity_problems(self.conn, self.generation, self.phase, self._merged(answers))
                problems = self._by_part(found)
                for index in problems:
                    answers.pop(index, None)
            if not problems:
                try:
                    return self._save(self._merged(answers))
                except InvalidModelOutput as exc:  # a rule only PostgreSQL knows: back to its part
                    problems = self._by_part(exc.problems or [Problem("", exc.message)])
                    for index in problems:
                        answers.pop(index, None)
            listing = [f"{', '.join(self.tables[i])}: {p}" for i, found in problems.items() for p in found]
            if round_number > self.repair_rounds:
                saved = self._save_partially(len(requests))
                if saved is not None:
                    return saved
                raise InvalidModelOutput(
                    f"phase {self.phase.id}: tool input still invalid after {self.repair_rounds} repair round(s): "
                    + "; ".join(problem_listing(listing, len(listing), 10)),
                    problems=[p for found in problems.values() for p in found],
                )
            _check_time_for_a_round(self.phase, round_number + 1, self.remaining_ms, listing)
            state.check_attempt_current(self.conn, self.generation["id"], self.phase, self.attempt)
            for index, listed in problems.items():
                response = last.get(index)  # this round's answer, or the earlier one a later check refused
                if response is not None:
                    repaired = requests[index].messages + repair_messages(response, listed, len(listed))
                    requests[index] = dataclasses.replace(requests[index], messages=repaired)
            pending = sorted(problems)
        raise AssertionError("unreachable")

    def _part_base(self, request: ModelRequest, tables: tuple[str, ...]) -> ModelRequest:
        """The phase's request as a part writing ``tables`` starts from: the same, or (``part_contexts``)
        with a context of its own showing the rows its tables refer to, within the phase's budget."""
        if not self.phase.part_contexts:
            return request
        shown = referenced_tables(dataclasses.replace(self.phase, tables=tables), self.specs)
        context = phase_context(self.conn, self.generation["campaign_id"], self.phase, self.specs, shown=shown)
        self.conn.commit()
        pcs = len(context.keys.get("player_characters", []))
        prompt = phase_prompt(self.phase, context, size_hint(self.phase, pcs))
        extra = {"phase": self.phase.id, "tables": list(tables), "rows": sum(len(r) for r in context.rows.values())}
        logger.info("phase part context", extra={**extra, "left_out": sum(context.omitted.values())})
        return dataclasses.replace(request, context=context, messages=[{"role": "user", "content": prompt}])

    def _deal_roles(self, requests: dict[int, ModelRequest], request: ModelRequest) -> dict[int, ModelRequest]:
        """Calls side by side cannot see each other's rows: each NPC's room for new roles (a ruler,
        an owner, a boss, a priest, a quest giver; at most ROLE_LIMIT in all, shared with the
        phases beside this one) is dealt out between the parts that hand roles out, in proportion
        to their role rows, least busy NPCs first, and each part is told whom it may choose."""
        givers = {i: self._role_rows(requests[i]) for i in requests if ROLE_TABLES.intersection(self.tables[i])}
        npcs = request.context.npc_roles  # every NPC, also those the context left out for length
        if not givers or not npcs:
            return requests
        units = [
            npc
            for npc, roles in sorted(npcs.items(), key=lambda item: (item[1], item[0]))
            for _ in range(role_room(self.phase.id, npc, roles))
        ]
        quota: dict[int, list[str]] = {i: [] for i in givers}
        for npc in units:  # to the part furthest from its need, in proportion
            index = min(givers, key=lambda i: (len(quota[i]) / max(givers[i], 1), i))
            quota[index].append(npc)
        for index, chosen in quota.items():
            counts = {npc: chosen.count(npc) for npc in dict.fromkeys(chosen)}
            listing = ", ".join(f"{npc} (up to {n})" if n > 1 else npc for npc, n in counts.items()) or "none"
            line = (
                "\nNPCs this call may give a new role to (ruler, owner, boss, priest, quest giver); calls running"
                f" beside it give roles to others. Leave an optional role empty rather than use anyone else: {listing}."
            )
            first, *rest = requests[index].messages
            messages = [{**first, "content": str(first["content"]) + line}, *rest]
            requests[index] = dataclasses.replace(requests[index], role_npcs=tuple(chosen), messages=messages)
        return requests

    def _role_rows(self, request: ModelRequest) -> int:
        """The rows a part will write in the tables that give roles: its outline rows, or its targets."""
        tables = [t for t in request.tables or self.phase.tables if t in ROLE_TABLES]
        if request.assigned:
            return sum(len(request.assigned.get(t, [])) for t in tables)
        pcs = len(request.context.player_characters)
        return sum(row_target(t, pcs, self.phase.max_rows_per_table) for t in tables)

    def _prime(self, request: ModelRequest) -> None:
        """Write the parts' shared prefix to the prompt cache with a one-token request, so the
        parts (sent at once) read it instead of each paying for it in full. Only a model with a
        prompt cache (``prime``) does anything; a failure is logged and the parts go on without."""
        prime = getattr(self.model, "prime", None)
        if prime is None:
            return
        began = time.perf_counter()
        try:
            self.calls.append(dataclasses.replace(prime(outlines.primer_request(request)), part="primer"))
        except WorldgenError as exc:
            self.calls.append(usage_of_failure(exc, self.model, self.phase, part="primer"))
            logger.warning("prompt cache not primed", extra={"phase": self.phase.id, "error": type(exc).__name__})
        finally:
            self.model_seconds += time.perf_counter() - began

    def _outline(self, request: ModelRequest) -> outlines.Outline:
        """The outline call, repaired like a phase's answer; every problem is the outline's own."""
        asked = outlines.outline_request(request)
        taken = {t: {r["key"] for r in rows} for t, rows in request.context.kept.items()}
        for round_number in range(1, self.repair_rounds + 2):
            began = time.perf_counter()
            try:
                response = self.model.call(dataclasses.replace(asked, round=round_number))
            except WorldgenError as exc:
                self.calls.append(usage_of_failure(exc, self.model, self.phase, part="outline"))
                raise
            finally:
                self.model_seconds += time.perf_counter() - began
            self.calls.append(dataclasses.replace(response.usage, part="outline"))
            party = request.context.keys.get("player_characters", [])
            answer, refused = outline_at_the_door(response)
            outline, found = outlines.check_outline(self.phase, answer, taken, party)
            problems = refused or [Problem("", p) for p in found]
            rows = sum(len(r) for r in outline.values())
            extra = {"phase": self.phase.id, "round": round_number, "rows": rows, "problems": len(problems)}
            logger.info("phase outline answered", extra={**extra, "output_tokens": response.usage.output_tokens})
            if not problems:
                self._record({"outline": outline})
                return outline
            if round_number > self.repair_rounds:
                raise invalid_output(
                    f"phase {self.phase.id}: the outline is still invalid after {self.repair_rounds} repair round(s)",
                    problems,
                    len(problems),
                )
            _check_time_for_a_round(self.phase, round_number + 1, self.remaining_ms, problems)
            state.check_attempt_current(self.conn, self.generation["id"], self.phase, self.attempt)
            asked = dataclasses.replace(
                asked, messages=asked.messages + repair_messages(response, problems, len(problems))
            )
        raise AssertionError("unreachable")

    def _merged(self, answers: dict[int, dict[str, Any]]) -> dict[str, list[Any]]:
        """The parts' rows as one phase answer, every table present, in the order of the parts."""
        return {t: [row for i in sorted(answers) for row in answers[i].get(t, [])] for t in self.phase.tables}

    def _call(
        self,
        pending: list[int],
        requests: dict[int, ModelRequest],
        round_number: int,
        answers: dict[int, dict[str, Any]],
    ) -> tuple[dict[int, ModelResponse], Exception | None, dict[int, list[Problem]]]:
        """The pending parts' calls, concurrently, and the first failure among them; every answered
        call reaches the ledger, and its answer is checked and recorded AS IT ARRIVES (``_problems``),
        even when another failed or is still in flight. Returns the answers, the first failure and
        the problems of each invalid answer."""
        began = time.perf_counter()
        in_flight = _parts_in_flight(self.model, self.phase, [requests[i] for i in pending])
        responses: dict[int, ModelResponse] = {}
        problems: dict[int, list[Problem]] = {}
        failure: Exception | None = None
        with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix=f"phase-{self.phase.slug}") as pool:
            futures = {
                pool.submit(self.model.call, dataclasses.replace(requests[i], round=round_number)): i for i in pending
            }
            for future in as_completed(futures):
                index = futures[future]
                try:
                    response = future.result()
                except Exception as exc:
                    self.calls.append(
                        dataclasses.replace(usage_of_failure(exc, self.model, self.phase), part=self._label(index))
                    )
                    failure = failure or exc
                    continue
                responses[index] = response
                self.calls.append(dataclasses.replace(response.usage, part=self._label(index)))
                extra = {
                    "phase": self.phase.id,
                    "part": index + 1,
                    "round": round_number,
                    "tables": list(self.tables[index]),
                    "output_tokens": response.usage.output_tokens,
                }
                logger.info("phase part answered", extra=extra)
                problems.update(self._problems({index: response}, answers))  # a valid one is recorded now
        self.model_seconds += time.perf_counter() - began
        return responses, failure, problems

    def _label(self, index: int) -> str:
        """A part as the ledger names it: its tables, and its first key when a table is split."""
        label = ",".join(self.tables[index])
        shared = [t for t in self.assigned.get(index, {}) if sum(t in tables for tables in self.tables.values()) > 1]
        return f"{label}:{self.assigned[index][shared[0]][0]}" if shared else label

    def _known(self, index: int, existing: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The keys a part may refer to: earlier phases' rows (``existing``, read once a round), and
        the outline's rows of other parts."""
        known: dict[str, dict[str, Any]] = dict(existing)
        mine = self.assigned.get(index, {})
        for table, rows in self.outline.items():
            others = {r["key"]: None for r in rows if r["key"] not in mine.get(table, [])}
            known[table] = {**known.get(table, {}), **others}
        return known

    def _problems(
        self, responses: dict[int, ModelResponse], answers: dict[int, dict[str, Any]]
    ) -> dict[int, list[Problem]]:
        """Validate each answered part against its own tables (its keys slugged at the door, its
        last answer kept for a partial save); keep the valid ones in ``answers``."""
        phase_tables = set(self.phase.tables)
        problems: dict[int, list[Problem]] = {}
        existing: dict[str, dict[str, Any]] = {}
        if responses:
            with self.conn.transaction():
                external = external_tables(self.phase, self.specs)
                existing = existing_keys(self.conn, self.generation["campaign_id"], external)
        for index, response in responses.items():
            tables = self.tables[index]
            view = dataclasses.replace(self.phase, tables=tables)
            given, collisions = at_the_door(view, self.specs, response)
            if not isinstance(given, dict):
                problems[index] = [dataclasses.replace(p, part=index) for p in collisions]
                continue
            self.latest[index] = given
            extra = [t for t, rows in given.items() if t in phase_tables and t not in tables and rows]
            own = {t: given[t] for t in given if t not in phase_tables or t in tables}
            found = [*collisions, *validate_phase_input(view, self.specs, own, self._known(index, existing))]
            found += [Problem(t, "not a table of this call") for t in extra]
            if index in self.assigned:
                found += [Problem("", p) for p in outlines.assigned_problems(own, self.assigned[index])]
            if found:
                problems[index] = [dataclasses.replace(p, part=index) for p in found]
            else:
                answers[index] = {t: own[t] for t in tables}
        valid = {str(i): answers[i] for i in responses if i in answers}
        if valid:
            self._record({"answers": valid})
        return problems

    def _recorded(self, request: ModelRequest) -> dict[str, Any]:
        """What earlier attempts of this phase run recorded (``phase_runs.parts``), when it was written
        against the world this attempt sees (same context fingerprint) and its outline still fits the
        kept rows; else nothing (the record is cleared and the model asked again)."""
        with self.conn.transaction():
            row = self.conn.execute(
                "SELECT parts FROM phase_runs WHERE generation_id = %s AND phase = %s",
                (self.generation["id"], self.phase.id),
            ).fetchone()
        recorded = dict(row["parts"] or {}) if row else {}
        if not recorded:
            return {}
        why = ""
        if recorded.get("fingerprint") != self.fingerprint:
            why = "the world it was written against changed (rows, locks or kept keys)"
        elif "outline" in recorded:
            taken = {t: {r["key"] for r in rows} for t, rows in request.context.kept.items()}
            problems = outlines.check_outline(self.phase, recorded["outline"], taken)[1]
            if problems:
                why = "its outline no longer fits the kept rows: " + "; ".join(problems[:3])
        if not why:
            return recorded
        logger.info("recorded parts dropped", extra={"phase": self.phase.id, "reason": why})
        with self.conn.transaction():
            self.conn.execute(
                "UPDATE phase_runs SET parts = NULL WHERE generation_id = %s AND phase = %s AND attempt = %s",
                (self.generation["id"], self.phase.id, self.attempt),
            )
        return {}

    def _record(self, progress: dict[str, Any]) -> None:
        """Add to ``phase_runs.parts`` (answers merged by part), if this attempt is still the current one."""
        with self.conn.transaction():
            self.conn.execute(
                """
                UPDATE phase_runs
                   SET parts = coalesce(parts, '{}'::jsonb) || %(progress)s
                       || jsonb_build_object('answers', coalesce(parts -> 'answers', '{}'::jsonb)
                                                        || coalesce(%(progress)s -> 'answers', '{}'::jsonb),
                                             'total', %(total)s::int)
                 WHERE generation_id = %(generation)s AND phase = %(phase)s AND attempt = %(attempt)s
                """,
                {
                    "progress": Jsonb({**progress, "fingerprint": self.fingerprint}),
                    "total": len(self.tables) or len(self.phase.table_groups),
                    "generation": self.generation["id"],
                    "phase": self.phase.id,
                    "attempt": self.attempt,
                },
            )

    def _by_part(self, problems: Sequence[Problem]) -> dict[int, list[Problem]]:
        """The merged answer's problems, each back to the part that wrote the row: the part it names,
        else the part dealt its key, else the first part writing its table."""
        found: dict[int, list[Problem]] = {}
        for problem in problems:
            holders = [i for i, tables in self.tables.items() if problem.table in tables]
            owner = next((i for i in holders if problem.key in self.assigned.get(i, {}).get(problem.table, [])), None)
            index = problem.part if problem.part is not None else owner
            index = index if index is not None else (holders[0] if holders else min(self.tables))
            found.setdefault(index, []).append(dataclasses.replace(problem, part=index))
        return found

    def _save_partially(self, parts: int) -> PhaseOutcome | None:
        """The parts' last answers merged, saved without their few invalid rows (issue 11), or None."""
        if len(self.latest) != parts:
            return None
        merged = self._merged({i: {t: answer.get(t, []) for t in self.tables[i]} for i, answer in self.latest.items()})
        saved = _save_partially(
            self.conn, self.generation, self.phase, self.specs, merged, self._finisher(), self._unwritten(merged)
        )
        return _outcome(self.phase, saved, self.calls) if saved is not None else None

    def _unwritten(self, merged: dict[str, list[Any]]) -> list[dict[str, str]]:
        """The outline's rows no part's answer has: dropped rows too, each with its reason."""
        unwritten = []
        for index, assigned in sorted(self.assigned.items()):
            for table, keys in assigned.items():
                written = {row.get("key") for row in merged.get(table, []) if isinstance(row, dict)}
                unwritten += [
                    {
                        "table": table,
                        "key": key,
                        "reason": f"{table}[key={key}]: in the outline, never written by part {index + 1}",
                    }
                    for key in keys
                    if key not in written
                ]
        return unwritten

    def _save(self, merged: dict[str, Any]) -> PhaseOutcome:
        result = save_phase_rows(
            self.conn,
            self.generation["campaign_id"],
            self.generation["id"],
            self.phase,
            merged,
            self.specs,
            before_commit=self._finisher(),
        )
        return _outcome(self.phase, result, self.calls)

    def _finisher(self) -> Callable[..., None]:
        """``_finish`` for this attempt, run inside the save's transaction."""
        return partial(
            _finish,
            generation=self.generation,
            phase=self.phase,
            attempt=self.attempt,
            calls=self.calls,
            started=self.started,
            model_seconds=self.model_seconds,
        )


def _check_time_for_a_round(
    phase: Phase, round_number: int, remaining_ms: Callable[[], int] | None, problems: Sequence[Problem | str]
) -> None:
    """Stop cleanly (a permanent error, recorded) rather than be killed by the Lambda timeout mid-save."""
    if remaining_ms is None:
        return
    left = remaining_ms() / 1000
    needed = phase.stream_deadline_seconds + SAVE_SECONDS
    if left < needed:
        raise InvalidModelOutput(
            f"phase {phase.id}: no time left for repair round {round_number - 1} ({left:.0f} s left in the"
            f" Lambda, a round and the save need {needed} s): " + "; ".join(str(p) for p in problems[:10]),
            problems=problems,
        )


def _outcome(phase: Phase, result: SaveResult, calls: list[ModelUsage]) -> PhaseOutcome:
    return PhaseOutcome(
        phase=phase.id,
        status="succeeded",
        rows_total=result.rows_total,
        rows_per_table=result.rows_per_table,
        model_calls=len(calls),
        input_tokens=sum(c.input_tokens for c in calls),
        output_tokens=sum(c.output_tokens for c in calls),
        cache_read_input_tokens=sum(c.cache_read_input_tokens for c in calls),
        cost_usd=round(sum(c.cost_usd for c in calls), 6),
    )


def _finish(
    conn: psycopg.Connection[Any],
    result: SaveResult,
    *,
    generation: dict[str, Any],
    phase: Phase,
    attempt: int,
    calls: list[ModelUsage],
    started: float,
    model_seconds: float,
    dropped: list[dict[str, str]] | None = None,
) -> None:
    """Inside the save's transaction: refuse to commit unless fenced in, then record."""
    state.fence_phase_commit(conn, generation["id"], phase, attempt)
    outcome = dataclasses.replace(_outcome(phase, result, calls), rows_dropped=len(dropped or []))
    # Every call of the phase's earlier attempts (any model) is in the ledger: the result counts them too.
    earlier = conn.execute(
        "SELECT count(*) AS calls, coalesce(sum(input_tokens), 0) AS input_tokens,"
        " coalesce(sum(output_tokens), 0) AS output_tokens,"
        " coalesce(sum(cache_read_input_tokens), 0) AS cache_read_input_tokens,"
        " coalesce(sum(cost_usd), 0) AS cost_usd FROM model_calls WHERE generation_id = %s AND phase = %s",
        (generation["id"], phase.id),
    ).fetchone()
    if earlier is not None and earlier["calls"]:
        outcome = dataclasses.replace(
            outcome,
            model_calls=outcome.model_calls + int(earlier["calls"]),
            input_tokens=outcome.input_tokens + int(earlier["input_tokens"]),
            output_tokens=outcome.output_tokens + int(earlier["output_tokens"]),
            cache_read_input_tokens=outcome.cache_read_input_tokens + int(earlier["cache_read_input_tokens"]),
            cost_usd=round(outcome.cost_usd + float(earlier["cost_usd"]), 6),
        )
    duration_ms = int((time.perf_counter() - started) * 1000)
    state.succeed_phase_run(
        conn,
        generation["id"],
        phase,
        duration_ms=duration_ms,
        model_ms=int(model_seconds * 1000),
        db_ms=max(0, duration_ms - int(model_seconds * 1000)),
        rows_per_table=Jsonb(result.rows_per_table),
        rows_total=result.rows_total,
        result=Jsonb(json.loads(json.dumps(asdict(outcome)))),
    )
    conn.execute(
        "UPDATE phase_runs SET dropped_rows = %s, parts = NULL WHERE generation_id = %s AND phase = %s",
        (Jsonb(dropped or []), generation["id"], phase.id),
    )
    _insert_model_calls(conn, generation, phase, attempt, calls, None)


def _record_failure(
    conn: psycopg.Connection[Any],
    generation: dict[str, Any],
    phase: Phase,
    attempt: int,
    calls: list[ModelUsage],
    error_type: str,
    message: str,
) -> None:
    """Record the failed attempt and what its model calls cost; never mask the original error.

    The calls were paid for whatever happened to the attempt, so they reach the ledger even when
    the phase's connection broke: on a fresh connection, retried through about 30 s of outage
    (a database restart with crash recovery), well inside the Lambda's timeout.
    """
    for delay in (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0):
        time.sleep(delay)
        try:
            if conn.broken or conn.closed:
                with connect() as fresh:
                    _write_failure(fresh, generation, phase, attempt, calls, error_type, message)
            else:
                conn.rollback()
                _write_failure(conn, generation, phase, attempt, calls, error_type, message)
            return
        except (psycopg.Error, DatabaseUnavailable):
            continue
    logger.error(
        "model calls not recorded: the database stayed unavailable",
        extra={"phase": phase.id, "attempt": attempt, "calls": [asdict(c) for c in calls]},
    )


def _write_failure(
    conn: psycopg.Connection[Any],
    generation: dict[str, Any],
    phase: Phase,
    attempt: int,
    calls: list[ModelUsage],
    error_type: str,
    message: str,
) -> None:
    with conn.transaction():
        state.fail_phase_attempt(conn, generation["id"], phase, attempt, error_type, message)
        _insert_model_calls(conn, generation, phase, attempt, calls, error_type)
