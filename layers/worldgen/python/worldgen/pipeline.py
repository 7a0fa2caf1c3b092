"""run_phase: dependencies -> context -> prompt -> model -> validate/repair -> save -> record.

The calls themselves (an outline, the parts, or the phase's one call) go through THE round loop
(``worldgen.rounds``, ``worldgen.parts``); their cost through the ledger (``worldgen.ledger``); every
status change through ``worldgen.state``; the answer is judged across parts and saved (or saved in
part) by ``worldgen.phase_save``. This module checks the dependencies, builds the phase's request
and runs its attempt.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from functools import cache
from typing import Any

import psycopg

from worldgen import cost_cap, state
from worldgen.db.catalog import read_table_specs
from worldgen.db.context import PhaseContext, phase_context
from worldgen.errors import CampaignNotFound, GenerationCancelled, PhaseDependencyMissing
from worldgen.ledger import Attempt, Ledger, record_failure
from worldgen.model.base import ModelRequest, ModelUsage, WorldModel
from worldgen.model.factory import get_model
from worldgen.parts import PhaseRun, run_parts
from worldgen.phase_save import PhaseOutcome, PhaseSaver
from worldgen.phases import WORLD_TABLES, Phase, get_phase
from worldgen.prompts import phase_prompt, size_hint, system_prompt
from worldgen.schema.spec import TableSpec
from worldgen.schema.tools import load_tool, strict_variant, with_key_enums, with_row_targets
from worldgen.settings import get_settings


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
    number = state.start_phase_attempt(conn, generation["id"], phase, run=run)
    attempt = Attempt(generation, phase, number, model, remaining_ms)
    ledger = Ledger.of_attempt(attempt)
    try:
        return _generate(conn, attempt, ledger)
    except Exception as exc:
        record_failure(attempt, ledger, conn, exc)
        raise
    finally:
        ledger.close()


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


def _generate(conn: psycopg.Connection[Any], attempt: Attempt, ledger: Ledger) -> PhaseOutcome:
    settings = get_settings()
    phase, generation = attempt.phase, attempt.generation
    repair_rounds = min(settings.repair_rounds, phase.repair_rounds)  # the rounds the Lambda's budget holds
    model = attempt.model or get_model(generation["model_provider"])
    specs = table_specs(conn)
    context = phase_context(conn, generation["campaign_id"], phase, specs)
    conn.commit()
    tool = with_key_enums(load_tool(phase), phase, specs, context.keys)
    if phase.strict_tools or phase.id in settings.strict_phases:
        tool = strict_variant(tool)
    request = model_request(phase, context, specs, tool=tool, options=generation["options"])
    attempt = dataclasses.replace(
        attempt, model=_within_cost_cap(conn, generation, phase, model, ledger.calls, request)
    )
    saver = PhaseSaver(conn, attempt, ledger, specs)
    return run_parts(PhaseRun(conn, attempt, ledger, specs, repair_rounds, saver), request)


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
