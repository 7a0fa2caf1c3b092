"""run_phase: dependencies -> context -> prompt -> model -> validate/repair -> save -> record."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import cache, partial
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from worldgen import state
from worldgen.db.catalog import read_table_specs
from worldgen.db.connection import connect
from worldgen.db.context import PhaseContext, phase_context
from worldgen.db.save import SaveResult, existing_keys, external_tables, save_phase_rows, validate_phase_input
from worldgen.errors import (
    CampaignNotFound,
    DatabaseUnavailable,
    GenerationCancelled,
    InvalidModelOutput,
    PhaseDependencyMissing,
    WorldgenError,
)
from worldgen.model.base import ModelRequest, ModelResponse, ModelUsage, WorldModel, get_model
from worldgen.observability import logger
from worldgen.phases import SAVE_SECONDS, WORLD_TABLES, Phase, get_phase
from worldgen.prompts import phase_prompt, system_prompt
from worldgen.schema.spec import TableSpec
from worldgen.schema.tools import load_tool, strict_variant, with_key_enums
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


def _ledger_rows(
    generation: dict[str, Any], phase: Phase, attempt: int, calls: list[ModelUsage], error: str | None
) -> list[tuple[Any, ...]]:
    # The id is a function of (generation, phase, attempt, round): writing a call twice (a commit
    # whose answer was lost, then the failure path) leaves one row.
    return [
        (
            uuid.uuid5(uuid.NAMESPACE_URL, f"worldgen:{generation['id']}:{phase.id}:{attempt}:{index + 1}"),
            generation["id"], generation["campaign_id"], phase.id, index + 1, u.provider, u.model, u.input_tokens,
            u.output_tokens, u.cache_creation_input_tokens, u.cache_read_input_tokens, u.latency_ms, u.stop_reason,
            u.cost_usd, error if index == len(calls) - 1 else None,
        )
        for index, u in enumerate(calls)
    ]  # fmt: skip


def _insert_model_calls(
    conn: psycopg.Connection[Any],
    generation: dict[str, Any],
    phase: Phase,
    attempt: int,
    calls: list[ModelUsage],
    error: str | None,
) -> None:
    if not calls:
        return
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO model_calls (id, generation_id, campaign_id, phase, round, provider, model, input_tokens,
                output_tokens, cache_creation_input_tokens, cache_read_input_tokens, latency_ms, stop_reason,
                cost_usd, error_type)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (id) DO NOTHING
            """,
            _ledger_rows(generation, phase, attempt, calls, error),
        )


def _size_hint(phase: Phase) -> str:
    return f"Aim for 3 to 8 rows per table (at most {phase.max_rows_per_table}); more where the story needs it."


def _repair_messages(response: ModelResponse, problems: list[str]) -> list[dict[str, Any]]:
    listing = "\n".join(f"- {p}" for p in problems)
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


def run_phase(
    conn: psycopg.Connection[Any],
    generation_id: uuid.UUID | str,
    phase_id: str,
    model: WorldModel | None = None,
    remaining_ms: Callable[[], int] | None = None,
) -> PhaseOutcome:
    """Run one phase of a generation; idempotent (a succeeded phase returns its recorded result).

    ``remaining_ms`` is the Lambda's remaining time (``context.get_remaining_time_in_millis``):
    a repair round starts only if its call and the save still fit in it.
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
    attempt = state.start_phase_attempt(conn, generation["id"], phase)
    started = time.perf_counter()
    calls: list[ModelUsage] = []
    try:
        return _generate(conn, generation, phase, attempt, model, calls, started, remaining_ms)
    except WorldgenError as exc:
        if isinstance(exc.details.get("usage"), dict):  # a refused or truncated answer still cost tokens
            calls.append(ModelUsage(**exc.details["usage"]))
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
    return ModelRequest(
        phase=phase,
        system=system_prompt(),
        messages=[{"role": "user", "content": phase_prompt(phase, context, _size_hint(phase))}],
        tool=tool if tool is not None else with_key_enums(load_tool(phase), phase, specs, context.keys),
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
    if len(phase.table_groups) > 1:
        parts = _Parts(conn, generation, phase, attempt, model, calls, started, remaining_ms, specs, repair_rounds)
        return parts.run(request)
    model_ms = 0.0
    for round_number in range(1, repair_rounds + 2):
        request = dataclasses.replace(request, round=round_number)
        call_started = time.perf_counter()
        try:
            response = model.call(request)
        finally:
            model_ms += time.perf_counter() - call_started
        calls.append(response.usage)
        if response.tool_input is None:
            problems = ["the answer did not call the tool"]
        else:
            try:
                result = save_phase_rows(
                    conn,
                    generation["campaign_id"],
                    generation["id"],
                    phase,
                    response.tool_input,
                    specs,
                    before_commit=partial(
                        _finish,
                        generation=generation,
                        phase=phase,
                        attempt=attempt,
                        calls=calls,
                        started=started,
                        model_seconds=model_ms,
                    ),
                )
                return _outcome(phase, result, calls)
            except InvalidModelOutput as exc:
                problems = list(exc.details.get("problems") or [exc.message])
        if round_number > repair_rounds:
            raise InvalidModelOutput(
                f"phase {phase.id}: tool input still invalid after {repair_rounds} repair round(s): "
                + "; ".join(problems[:10]),
                problems=problems,
            )
        _check_time_for_a_round(phase, round_number + 1, remaining_ms, problems)
        request = dataclasses.replace(request, messages=request.messages + _repair_messages(response, problems))
    raise AssertionError("unreachable")


def part_request(request: ModelRequest, tables: tuple[str, ...]) -> ModelRequest:
    """The phase's request narrowed to some of its tables: the same context, a tool with those
    tables only, and a last line saying which tables this call fills."""
    schema = request.tool["input_schema"]
    tool = {
        **request.tool,
        "input_schema": {
            **schema,
            "properties": {t: schema["properties"][t] for t in tables},
            "required": [t for t in schema.get("required", []) if t in tables],
        },
    }
    first, *rest = request.messages
    note = (
        f"\n\nThis call fills only these tables of the phase: {', '.join(tables)}. "
        "Other calls fill the phase's other tables at the same time; call the tool with these tables only."
    )
    messages = [{**first, "content": str(first["content"]) + note}, *rest]
    return dataclasses.replace(request, tool=tool, messages=messages)


class _Parts:
    """A phase generated in parts (``Phase.parts``): one call per part, concurrently, each repaired
    alone; the merged answer is validated and saved as one phase, in ONE transaction."""

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

    def run(self, request: ModelRequest) -> PhaseOutcome:
        groups = self.phase.table_groups
        requests = {index: part_request(request, tables) for index, tables in enumerate(groups)}
        answers: dict[int, dict[str, Any]] = {}
        pending = list(requests)
        for round_number in range(1, self.repair_rounds + 2):
            responses = self._call(pending, requests, round_number)
            problems = self._problems(responses, groups, answers)
            if not problems:
                merged = {table: rows for answer in answers.values() for table, rows in answer.items()}
                try:
                    return self._save(merged)
                except InvalidModelOutput as exc:  # a rule only PostgreSQL knows: back to its part
                    problems = self._by_part(list(exc.details.get("problems") or [exc.message]), groups)
                    for index in problems:
                        answers.pop(index, None)
            listing = [f"{', '.join(groups[i])}: {p}" for i, found in problems.items() for p in found]
            if round_number > self.repair_rounds:
                raise InvalidModelOutput(
                    f"phase {self.phase.id}: tool input still invalid after {self.repair_rounds} repair round(s): "
                    + "; ".join(listing[:10]),
                    problems=listing,
                )
            _check_time_for_a_round(self.phase, round_number + 1, self.remaining_ms, listing)
            for index, found in problems.items():
                response = responses.get(index)
                if response is not None:
                    repaired = requests[index].messages + _repair_messages(response, found)
                    requests[index] = dataclasses.replace(requests[index], messages=repaired)
            pending = sorted(problems)
        raise AssertionError("unreachable")

    def _call(
        self, pending: list[int], requests: dict[int, ModelRequest], round_number: int
    ) -> dict[int, ModelResponse]:
        """The pending parts' calls, concurrently; every answered call reaches the ledger, even
        when another part's call failed (then the first failure is raised)."""
        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=len(pending), thread_name_prefix=f"phase-{self.phase.slug}") as pool:
            futures = {
                i: pool.submit(self.model.call, dataclasses.replace(requests[i], round=round_number)) for i in pending
            }
        self.model_seconds += time.perf_counter() - began
        responses: dict[int, ModelResponse] = {}
        failure: Exception | None = None
        for index, future in futures.items():
            try:
                responses[index] = future.result()
            except Exception as exc:
                if isinstance(exc, WorldgenError) and isinstance(exc.details.get("usage"), dict):
                    self.calls.append(ModelUsage(**exc.details.pop("usage")))
                failure = failure or exc
                continue
            self.calls.append(responses[index].usage)
            extra = {
                "phase": self.phase.id,
                "part": index + 1,
                "round": round_number,
                "tables": list(self.phase.table_groups[index]),
                "output_tokens": responses[index].usage.output_tokens,
            }
            logger.info("phase part answered", extra=extra)
        if failure is not None:
            raise failure
        return responses

    def _problems(
        self,
        responses: dict[int, ModelResponse],
        groups: tuple[tuple[str, ...], ...],
        answers: dict[int, dict[str, Any]],
    ) -> dict[int, list[str]]:
        """Validate each answered part against its own tables; keep the valid ones in ``answers``."""
        phase_tables = set(self.phase.tables)
        with self.conn.transaction():
            known = existing_keys(self.conn, self.generation["campaign_id"], external_tables(self.phase, self.specs))
        problems: dict[int, list[str]] = {}
        for index, response in responses.items():
            view = dataclasses.replace(self.phase, tables=groups[index])
            if response.tool_input is None:
                problems[index] = ["the answer did not call the tool"]
                continue
            extra = [t for t in response.tool_input if t in phase_tables and t not in groups[index]]
            found = [str(p) for p in validate_phase_input(view, self.specs, response.tool_input, known)]
            found += [f"{t}: not a table of this call" for t in extra]
            if found:
                problems[index] = found
            else:
                answers[index] = {t: response.tool_input[t] for t in groups[index]}
        return problems

    def _by_part(self, problems: list[str], groups: tuple[tuple[str, ...], ...]) -> dict[int, list[str]]:
        found: dict[int, list[str]] = {}
        for problem in problems:
            table = problem.split(":", 1)[0].split("[", 1)[0].strip()
            index = next((i for i, tables in enumerate(groups) if table in tables), 0)
            found.setdefault(index, []).append(problem)
        return found

    def _save(self, merged: dict[str, Any]) -> PhaseOutcome:
        result = save_phase_rows(
            self.conn,
            self.generation["campaign_id"],
            self.generation["id"],
            self.phase,
            merged,
            self.specs,
            before_commit=partial(
                _finish,
                generation=self.generation,
                phase=self.phase,
                attempt=self.attempt,
                calls=self.calls,
                started=self.started,
                model_seconds=self.model_seconds,
            ),
        )
        return _outcome(self.phase, result, self.calls)


def _check_time_for_a_round(
    phase: Phase, round_number: int, remaining_ms: Callable[[], int] | None, problems: list[str]
) -> None:
    """Stop cleanly (a permanent error, recorded) rather than be killed by the Lambda timeout mid-save."""
    if remaining_ms is None:
        return
    left = remaining_ms() / 1000
    needed = phase.stream_deadline_seconds + SAVE_SECONDS
    if left < needed:
        raise InvalidModelOutput(
            f"phase {phase.id}: no time left for repair round {round_number - 1} ({left:.0f} s left in the"
            f" Lambda, a round and the save need {needed} s): " + "; ".join(problems[:10]),
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
) -> None:
    """Inside the save's transaction: refuse to commit unless fenced in, then record."""
    state.fence_phase_commit(conn, generation["id"], phase, attempt)
    outcome = _outcome(phase, result, calls)
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
    the phase's connection broke: on a fresh connection, retried for a few seconds of outage.
    """
    for delay in (0.0, 0.5, 1.0, 2.0, 4.0):
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
