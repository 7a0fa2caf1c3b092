"""A phase's answer judged across its parts and saved: the continuity rules, the save in ONE
transaction with its record (``phase_runs``, the ledger), and the partial save (partial success:
the few rows still invalid after the repair rounds dropped and reported, ``phase_runs.dropped_rows``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from worldgen import continuity, state
from worldgen.db import validation as rules
from worldgen.db.problems import Problem
from worldgen.db.save import SaveResult, reference_keys, save_phase_rows
from worldgen.ledger import Attempt, Ledger
from worldgen.model.base import ModelUsage
from worldgen.observability import logger
from worldgen.phases import Phase
from worldgen.schema.spec import TableSpec
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


@dataclass
class PhaseSaver:
    """How a phase's answer is judged across its parts and saved, for ``worldgen.parts``."""

    conn: psycopg.Connection[Any]
    attempt: Attempt
    ledger: Ledger
    specs: dict[str, TableSpec]

    def continuity(self, answer: dict[str, Any]) -> list[Problem]:
        return continuity_problems(self.conn, self.attempt.generation, self.attempt.phase, answer)

    def save(self, answer: dict[str, Any]) -> PhaseOutcome:
        a = self.attempt
        result = save_phase_rows(
            self.conn, a.campaign_id, a.generation_id, a.phase, answer, self.specs, before_commit=self._finish
        )
        return outcome_of(a.phase, result, self.ledger.calls)

    def save_partially(self, answer: Any, unwritten: list[dict[str, str]]) -> PhaseOutcome | None:
        """Drop the rows still invalid after the repair rounds (and what in the phase refers to them)
        and save the rest, when they are few (``partial_success_max_share`` of the phase's rows); else
        None. ``unwritten``: rows the phase was to write (its outline) that no answer has, dropped too."""
        if not isinstance(answer, dict):
            return None
        conn, a = self.conn, self.attempt
        known = reference_keys(conn, a.campaign_id, a.phase, self.specs)  # the kept rows too
        problems = rules.validate(conn, a.phase, self.specs, answer, known)  # its keys were slugged at the door
        conn.commit()
        trimmed = rules.drop_rows(a.phase, self.specs, answer, problems) if problems else (answer, [])
        if trimmed is None or not (problems or unwritten):
            return None
        kept, dropped = trimmed
        dropped = [*unwritten, *dropped]
        total = sum(len(rows) for rows in answer.values() if isinstance(rows, list)) + len(unwritten)
        if len(dropped) > get_settings().partial_success_max_share * total:
            return None
        logger.warning("phase saved without its invalid rows", extra={"phase": a.phase.id, "dropped": dropped})
        result = save_phase_rows(
            conn, a.campaign_id, a.generation_id, a.phase, kept, self.specs,
            before_commit=partial(self._finish, dropped=dropped),
        )  # fmt: skip
        return outcome_of(a.phase, result, self.ledger.calls)

    def _finish(
        self, conn: psycopg.Connection[Any], result: SaveResult, dropped: list[dict[str, str]] | None = None
    ) -> None:
        """Inside the save's transaction: refuse to commit unless fenced in, then record."""
        a, calls = self.attempt, self.ledger.calls
        state.fence_phase_commit(conn, a.generation_id, a.phase, a.number)
        outcome = dataclasses.replace(outcome_of(a.phase, result, calls), rows_dropped=len(dropped or []))
        # Every call of the phase's earlier attempts (any model) is in the ledger: the result counts them too.
        earlier = conn.execute(
            "SELECT count(*) AS calls, coalesce(sum(input_tokens), 0) AS input_tokens,"
            " coalesce(sum(output_tokens), 0) AS output_tokens,"
            " coalesce(sum(cache_read_input_tokens), 0) AS cache_read_input_tokens,"
            " coalesce(sum(cost_usd), 0) AS cost_usd FROM model_calls"
            " WHERE generation_id = %s AND phase = %s AND NOT (id = ANY(%s))",
            (a.generation_id, a.phase.id, self.ledger.ids()),
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
        duration_ms = int((time.perf_counter() - a.started) * 1000)
        model_ms = int(self.ledger.model_seconds * 1000)
        state.succeed_phase_run(
            conn, a.generation_id, a.phase, duration_ms=duration_ms, model_ms=model_ms,
            db_ms=max(0, duration_ms - model_ms), rows_per_table=Jsonb(result.rows_per_table),
            rows_total=result.rows_total, result=Jsonb(json.loads(json.dumps(asdict(outcome)))),
            dropped_rows=Jsonb(dropped or []),
        )  # fmt: skip
        self.ledger.write(conn)  # the calls written as they ended are there already


def continuity_problems(
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


def outcome_of(phase: Phase, result: SaveResult, calls: list[ModelUsage]) -> PhaseOutcome:
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
