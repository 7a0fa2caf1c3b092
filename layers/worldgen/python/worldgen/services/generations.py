"""Generate, resume, regenerate, cancel, revert and discard a campaign's generations.

Each answers at once: the state machine runs the generation for minutes. A refusal is a
``RequestRefused`` (or ``state.GenerationActive``, ``CampaignNotFound``, ``PhaseDependencyMissing``);
the status changes themselves are ``worldgen.state``'s.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from worldgen import orchestrator, state
from worldgen.cost_cap import MAX_COST_OPTION
from worldgen.db import generations_read
from worldgen.errors import (
    CampaignNotFound,
    GenerationNotFound,
    NewerGeneration,
    OrchestratorUnavailable,
    PhaseDependencyMissing,
    TransitionRefused,
    UnknownChoice,
)
from worldgen.observability import logger
from worldgen.phases import ANY_PHASE_BY_ID, PROFILE_NAMES, ancestors, descendants, get_phase
from worldgen.services.models import (
    Caller,
    GenerateInput,
    GenerationInput,
    GenerationStarted,
    GenerationUndone,
    RegenerateInput,
    ResumeInput,
)
from worldgen.services.reconcile import reconcile, reconcile_active
from worldgen.settings import get_settings


def load_campaign(conn: psycopg.Connection[Any], campaign_id: uuid.UUID, caller: Caller) -> dict[str, Any]:
    row = generations_read.campaign_owner(conn, campaign_id)
    # Another user's campaign gets the answer of a missing one: never confirm that it exists.
    if row is None or not caller.owns(row["owner_id"]):
        raise CampaignNotFound(f"campaign {campaign_id} does not exist")
    return row


def _load_generation(conn: psycopg.Connection[Any], generation_id: uuid.UUID, caller: Caller) -> dict[str, Any]:
    row = generations_read.generation_with_owner(conn, generation_id)
    if row is None or not caller.owns(row["owner_id"]):
        raise GenerationNotFound(f"generation {generation_id} does not exist")
    return reconcile(conn, row)


def _start_execution(
    conn: psycopg.Connection[Any], generation_id: uuid.UUID, campaign_id: Any, name: str, *, resumed: bool = False
) -> str:
    payload = {"generation_id": str(generation_id), "campaign_id": str(campaign_id)}
    profile = generations_read.generation_profile(conn, generation_id)
    try:
        machine = get_settings().state_machine_arn_of(profile)  # the machine of the generation's profile
        arn = orchestrator.start_execution(machine, name, payload)
    except Exception as exc:  # botocore's errors, configuration: the generation must not stay active
        state.fail_generation(conn, generation_id, "ExecutionNotStarted", str(exc), redrivable=False)
        logger.exception("start_execution failed")
        raise OrchestratorUnavailable(
            "the generation could not be started; try again", code="execution-not-started"
        ) from exc
    if resumed:
        state.set_execution_arn(conn, generation_id, arn)
    else:
        state.start_execution(conn, generation_id, arn)
    return arn


def _create_and_start(
    conn: psycopg.Connection[Any],
    campaign_id: uuid.UUID,
    options: dict[str, Any],
    phases: list[str] | None = None,
    profile: str = "full",
) -> GenerationStarted:
    """A new generation row (at most one active per campaign), then its execution, named after it."""
    reconcile_active(conn, campaign_id)
    generation_id = state.create_generation(
        conn, campaign_id, provider=get_settings().model_provider, options=options, phases=phases, profile=profile
    )
    arn = _start_execution(conn, generation_id, campaign_id, str(generation_id))
    return GenerationStarted(generation_id=str(generation_id), execution_arn=arn, status="running")


def _cost_cap(max_cost_usd: float | None) -> dict[str, float]:
    """The generation's cost cap option (worldgen.cost_cap): the request's, else the default setting."""
    cap = max_cost_usd if max_cost_usd is not None else get_settings().default_max_cost_usd
    return {MAX_COST_OPTION: cap} if cap is not None else {}


def generate_world(conn: psycopg.Connection[Any], request: GenerateInput, caller: Caller) -> GenerationStarted:
    settings = get_settings()
    profile = request.profile or settings.default_profile
    if profile not in PROFILE_NAMES:
        raise UnknownChoice(
            f"unknown profile {request.profile!r}; valid profiles: {', '.join(PROFILE_NAMES)}", code="unknown-profile"
        )
    load_campaign(conn, request.campaign_id, caller)
    options = {"seed": settings.seed, "scale": settings.scale, **_cost_cap(request.max_cost_usd)}
    return _create_and_start(conn, request.campaign_id, options, profile=profile)


def resume_generation(conn: psycopg.Connection[Any], request: ResumeInput, caller: Caller) -> GenerationStarted:
    generation = _load_generation(conn, request.generation_id, caller)
    if request.max_cost_usd is not None:
        state.set_cost_cap(conn, request.generation_id, request.max_cost_usd)
    moved, count = state.claim_resume(conn, request.generation_id, model_provider=request.model_provider)
    _refuse_if_newer(request.generation_id, "resumed", moved)
    if not moved.moved:  # of two racing resumes, this one lost (or it was never failed)
        raise TransitionRefused(
            f"generation {request.generation_id} is {moved.status}; only a failed one resumes", code="not-resumable"
        )
    name = f"{request.generation_id}-resume-{count}"
    arn = _start_execution(conn, request.generation_id, generation["campaign_id"], name, resumed=True)
    return GenerationStarted(generation_id=str(request.generation_id), execution_arn=arn, status="running")


def regenerate_from_phase(conn: psycopg.Connection[Any], request: RegenerateInput, caller: Caller) -> GenerationStarted:
    phase = request.phase.upper()
    if phase not in ANY_PHASE_BY_ID:
        raise UnknownChoice(
            f"unknown phase {request.phase!r}; valid phases: {', '.join(ANY_PHASE_BY_ID)}", code="unknown-phase"
        )
    load_campaign(conn, request.campaign_id, caller)
    _check_world_has(conn, request.campaign_id, phase)
    settings = get_settings()
    # Another seed, so the procedural model makes a different world for the regenerated phases.
    options = {"regenerate_from": phase, "seed": settings.seed + 1, "scale": settings.scale, **_cost_cap(None)}
    # The phase's profile runs the regeneration (Q2 regenerates with the quick machine).
    return _create_and_start(conn, request.campaign_id, options, descendants(phase), get_phase(phase).profile)


def _check_world_has(conn: psycopg.Connection[Any], campaign_id: uuid.UUID, phase: str) -> None:
    """A regeneration from ``phase`` keeps the phases before it: they must have succeeded for the
    campaign, in the same profile (a quick world regenerates from Q1..Q3, a full one from 1A..3C)."""
    missing = sorted(ancestors(phase) - generations_read.succeeded_phases(conn, campaign_id))
    if missing:
        profile = get_phase(phase).profile
        raise PhaseDependencyMissing(
            f"cannot regenerate campaign {campaign_id} from {phase} ({profile} profile): phases {', '.join(missing)}"
            " never succeeded for it; regenerate from a phase of the profile its world was generated with,"
            " or generate the world again"
        )


def _refuse_if_newer(generation_id: uuid.UUID, verb: str, moved: state.Transition) -> None:
    """The order rule (``state.ONLY_WHILE_LATEST``): refused, naming the newer generation."""
    if not moved.moved and moved.newer_generation:
        raise NewerGeneration(
            f"generation {generation_id} cannot be {verb}: generation {moved.newer_generation} of its campaign"
            " started after it; only a campaign's latest generation is resumed, cancelled, reverted or discarded"
        )


def cancel_generation(conn: psycopg.Connection[Any], request: GenerationInput, caller: Caller) -> GenerationUndone:
    generation = _load_generation(conn, request.generation_id, caller)
    moved = state.cancel_generation(conn, request.generation_id)
    _refuse_if_newer(request.generation_id, "cancelled", moved)
    if not moved.moved:
        raise TransitionRefused(f"generation {request.generation_id} is already {moved.status}", code="not-cancellable")
    if generation["execution_arn"] and generation["status"] in state.ACTIVE_STATUSES:
        # The cancel is already committed and fenced: no phase of it can commit any more. Stopping
        # the execution only saves its remaining model calls, so a failure here is logged, not fatal.
        try:
            orchestrator.stop_execution(generation["execution_arn"], "GenerationCancelled", "cancelled by its owner")
        except Exception:
            logger.exception("stop_execution failed; the execution ends at its next phase")
    return GenerationUndone(
        generation_id=str(request.generation_id),
        execution_arn=generation["execution_arn"],
        status="cancelled",
        kept=list(moved.kept),
    )


def _undo(
    conn: psycopg.Connection[Any],
    request: GenerationInput,
    caller: Caller,
    transition: Callable[[psycopg.Connection[Any], uuid.UUID], state.Transition],
    verb: str,
    code: str,
    refusal: Callable[[state.Transition], str],
) -> GenerationUndone:
    """Revert or discard a failed or cancelled generation; refused, saying why, when it does not move."""
    _load_generation(conn, request.generation_id, caller)
    moved = transition(conn, request.generation_id)
    _refuse_if_newer(request.generation_id, verb, moved)
    if not moved.moved:
        raise TransitionRefused(refusal(moved), code=code)
    return GenerationUndone(
        generation_id=str(request.generation_id), execution_arn=None, status=moved.status, kept=list(moved.kept)
    )


def revert_generation(conn: psycopg.Connection[Any], request: GenerationInput, caller: Caller) -> GenerationUndone:
    return _undo(
        conn,
        request,
        caller,
        state.revert_generation,
        "reverted",
        "not-revertible",
        lambda moved: (
            f"generation {request.generation_id} cannot be reverted ({moved.detail}); only the campaign's latest"
            " failed or cancelled generation can"
        ),
    )


def discard_generation(conn: psycopg.Connection[Any], request: GenerationInput, caller: Caller) -> GenerationUndone:
    g = request.generation_id
    return _undo(
        conn,
        request,
        caller,
        state.discard_generation,
        "discarded",
        "not-discardable",
        lambda moved: (
            f"generation {g} cannot be discarded: {moved.detail}"
            if moved.status in state.GENERATION_TRANSITIONS["discard"][0]
            else f"generation {g} is {moved.status}; only a failed or cancelled one is discarded"
        ),
    )
