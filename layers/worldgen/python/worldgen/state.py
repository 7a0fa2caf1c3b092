"""THE owner of generation state: every status change of campaigns, generations and phase runs.

Each change is one transaction that takes the campaign's advisory lock, checks the current state
and moves it only if the transition is allowed (``GENERATION_TRANSITIONS``), saying whether it
moved. Nothing else writes these status columns, so two requests racing (two resumes, a cancel
against a completion) have exactly one winner, and a phase commits only while its generation is
running and its attempt is current (``fence_phase_commit``, called inside the save's transaction).

A Step Functions redrive reruns the failed states of the SAME execution (same ARN, the context
object's ``Execution.RedriveCount`` one higher). Its Lambdas name their run (``ExecutionRun``); a
redriven run may move its failed generation back to running (``redrive``) only while that execution
is still the generation's, the failure was a redrivable one (not cancelled, not resumed since), no
newer generation of the campaign started, and its redrive count is above the last one seen. Events
and Lambdas of an earlier run of the execution change nothing.

Campaign status follows its latest generation: generating while one runs, generated when one
succeeded (or a cancel/revert put the previous world back), failed when one failed, draft before.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from worldgen.db.snapshot import capture_world, restore_world, tables_of
from worldgen.errors import AttemptSuperseded, GenerationCancelled
from worldgen.phases import DEFAULT_PROFILE, Phase, profile_phases
from worldgen.transitions import (  # noqa: F401  (re-exported: state is where callers find them)
    ACTIVE_STATUSES,
    ANY_EXECUTION,
    GENERATION_TRANSITIONS,
    NOW,
    ONLY_WHILE_LATEST,
    PHASE_RUN_TRANSITIONS,
    TERMINAL_STATUSES,
    ExecutionRun,
    GenerationActive,
    Transition,
    campaign_of,
    earlier_run,
    follow_campaign,
    follow_run,
    lock_campaign,
    locked_generation,
    move,
    newer_generation,
    refusal,
)

# -- generations ---------------------------------------------------------------------------------


def create_generation(
    conn: psycopg.Connection[Any],
    campaign_id: uuid.UUID | str,
    *,
    provider: str,
    options: dict[str, Any] | None = None,
    phases: list[str] | None = None,
    profile: str = DEFAULT_PROFILE,
) -> uuid.UUID:
    """A pending generation (at most one active per campaign) that keeps the rows it will replace.

    ``profile`` names the phases it follows (``phases.PROFILES``); ``phases`` defaults to all of them."""
    phases = phases or [p.id for p in profile_phases(profile)]
    try:
        with conn.transaction():
            lock_campaign(conn, campaign_id)
            replaced = capture_world(conn, campaign_id, tables_of(phases))
            row = conn.execute(
                "INSERT INTO generations (campaign_id, model_provider, options, phases, replaced_world, profile)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    str(campaign_id),
                    provider,
                    Jsonb(options or {}),
                    phases,
                    # {} when it replaces nothing; NULL only once no snapshot is kept (never "restore to empty").
                    Jsonb(replaced or {}),
                    profile,
                ),
            ).fetchone()
            # What a client shows as "phase n of N": the generation's profile's phase count.
            conn.execute(
                "UPDATE campaigns SET total_phases = %s WHERE id = %s",
                (len(profile_phases(profile)), str(campaign_id)),
            )
    except psycopg.errors.UniqueViolation as exc:  # generations_one_active_per_campaign
        raise GenerationActive(f"campaign {campaign_id} already has a generation in progress") from exc
    assert row is not None
    return uuid.UUID(str(row["id"]))


def start_execution(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str, execution_arn: str) -> Transition:
    """pending -> running (unless its first phase moved it already), recording its execution."""
    with conn.transaction():
        generation = locked_generation(conn, generation_id)
        if generation["execution_arn"] is None:
            conn.execute("UPDATE generations SET execution_arn = %s WHERE id = %s", (execution_arn, generation["id"]))
        return move(conn, generation, "start", finished_at=None, redrivable=False)


def claim_resume(
    conn: psycopg.Connection[Any], generation_id: uuid.UUID | str, *, model_provider: str | None = None
) -> tuple[Transition, int]:
    """failed -> running for a new execution; of two racing resumes exactly one moves. With
    ``model_provider`` the phases still to run use that model (a resume may switch models).

    Returns the transition and the resume number (names the new execution).
    Raises GenerationActive when another generation of the campaign is active.
    """
    try:
        with conn.transaction():
            generation = locked_generation(conn, generation_id)
            count = generation["resumed_count"] + 1
            moved = move(
                conn,
                generation,
                "resume",
                resumed_count=count,
                execution_arn=None,  # the failed execution's late events must not touch the resumed run
                redrive_count=0,  # the new execution's runs count from 0
                finished_at=None,
                redrivable=False,
                error_type=None,
                error_message=None,
                **({"model_provider": model_provider} if model_provider else {}),
            )
            return moved, count
    except psycopg.errors.UniqueViolation as exc:
        raise GenerationActive("the campaign already has a generation in progress") from exc


def redrive_generation(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str, run: ExecutionRun) -> Transition:
    """failed -> running for a redriven run of the generation's own execution (what its first
    redriven Lambda does, ``start_phase_attempt`` / ``complete_generation``); says why not otherwise."""
    with conn.transaction():
        generation = locked_generation(conn, generation_id)
        before = generation["status"]
        refusal = follow_run(conn, generation, run)
        return Transition(generation["status"] != before, generation["status"], refusal)


def set_cost_cap(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str, max_cost_usd: float) -> None:
    """A new cost cap for a generation (``options.max_cost_usd``, worldgen.cost_cap), e.g. before a
    resume: the phases read it from the generation's options when they run."""
    with conn.transaction():
        conn.execute(
            "UPDATE generations SET options = options || jsonb_build_object('max_cost_usd', %s::numeric) WHERE id = %s",
            (max_cost_usd, str(generation_id)),
        )


def set_execution_arn(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str, execution_arn: str) -> None:
    """The execution of a resumed (already running) generation."""
    with conn.transaction():
        conn.execute(
            "UPDATE generations SET execution_arn = %s WHERE id = %s AND execution_arn IS NULL",
            (execution_arn, str(generation_id)),
        )


def complete_generation(
    conn: psycopg.Connection[Any],
    generation_id: uuid.UUID | str,
    summary: dict[str, Any],
    *,
    run: ExecutionRun | None = None,
) -> Transition:
    """running -> succeeded; its own snapshot is no longer a way back and goes (a succeeded
    generation is neither reverted nor discarded). Other generations' snapshots stay untouched.

    A redriven run (``run``) of a generation that failed in this very state completes it too."""
    with conn.transaction():
        generation = locked_generation(conn, generation_id)
        refusal = follow_run(conn, generation, run)
        if refusal:
            return Transition(False, generation["status"], refusal)
        moved = move(
            conn,
            generation,
            "succeed",
            finished_at=NOW,
            summary=Jsonb(summary),
            total_rows=summary["rows_total"],
            total_input_tokens=summary["input_tokens"],
            total_output_tokens=summary["output_tokens"],
            total_cost_usd=summary["cost_usd"],
            redrivable=False,
        )
        if moved.moved:
            conn.execute("UPDATE generations SET replaced_world = NULL WHERE id = %s", (generation["id"],))
        return moved


def fail_generation(
    conn: psycopg.Connection[Any],
    generation_id: uuid.UUID | str,
    error_type: str,
    message: str,
    *,
    redrivable: bool,
    execution_arn: Any = ANY_EXECUTION,
    redrive_count: int | None = None,
    ended_at: datetime | None = None,
) -> Transition:
    """pending/running -> failed. The phases that succeeded keep their rows: `resume` continues.

    With ``execution_arn``, only while that is still the generation's execution (an ended
    execution's event must not fail the run a resume started since); with ``redrive_count`` (or,
    lacking it, ``ended_at``), only for the generation's latest run of it (a late event of the run
    before a redrive must not fail the redriven one).
    """
    with conn.transaction():
        generation = locked_generation(conn, generation_id)
        if execution_arn is not ANY_EXECUTION and generation["execution_arn"] != execution_arn:
            return Transition(False, generation["status"], "its execution changed")
        if earlier_run(generation, redrive_count, ended_at):
            return Transition(False, generation["status"], "an earlier run of its execution")
        moved = move(
            conn,
            generation,
            "fail",
            finished_at=NOW,
            error_type=error_type,
            error_message=message[:4000],
            redrivable=redrivable,
        )
        if moved.moved:
            _fail_running_phase_runs(conn, generation["id"], error_type)
        return moved


def cancel_generation(
    conn: psycopg.Connection[Any],
    generation_id: uuid.UUID | str,
    *,
    execution_arn: Any = ANY_EXECUTION,
    redrive_count: int | None = None,
    ended_at: datetime | None = None,
) -> Transition:
    """pending/running/failed -> cancelled. From this commit on nothing of it can commit (the fence).

    A generation that replaced rows (a regeneration) puts the previous world back in the same
    transaction: cancelling never leaves the campaign with less than it had.
    """
    with conn.transaction():
        generation = locked_generation(conn, generation_id)
        if execution_arn is not ANY_EXECUTION and generation["execution_arn"] != execution_arn:
            return Transition(False, generation["status"], "its execution changed")
        if earlier_run(generation, redrive_count, ended_at):
            return Transition(False, generation["status"], "an earlier run of its execution")
        moved = move(conn, generation, "cancel", finished_at=NOW, redrivable=False)
        if moved.moved:
            _fail_running_phase_runs(conn, generation["id"], "GenerationCancelled")
            if generation["replaced_world"]:
                return replace(moved, kept=_restore(conn, generation))
        return moved


def revert_generation(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str) -> Transition:
    """failed/cancelled -> reverted: the campaign's world is exactly what it was before it started.

    Only the campaign's latest generation can be reverted (``ONLY_WHILE_LATEST``: an older one's
    snapshot would undo a newer world), and only while its snapshot is kept: an absent snapshot is
    refused, never taken for an empty world.
    """
    with conn.transaction():
        generation = locked_generation(conn, generation_id)
        refused = refusal(conn, generation, "revert")
        if refused is not None:
            return refused
        if generation["replaced_world"] is None:
            return Transition(False, generation["status"], "its snapshot of the world it replaced is not kept")
        moved = move(conn, generation, "revert", finished_at=NOW)
        if moved.moved:
            return replace(moved, kept=_restore(conn, generation))
        return moved


def discard_generation(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str) -> Transition:
    """failed/cancelled -> discarded: every row the generation wrote is removed (a clean slate for
    those who do not want to resume it); rows of other generations stay.

    A regeneration (it replaced a world) is refused: removing its rows would leave the campaign
    with less than before and the replaced world out of reach; ``revert`` puts that world back."""
    with conn.transaction():
        generation = locked_generation(conn, generation_id)
        refused = refusal(conn, generation, "discard")
        if refused is not None:
            return refused
        if generation["replaced_world"]:
            return Transition(
                False,
                generation["status"],
                "it replaced a world that discarding would lose; `worldgen revert` puts that world back",
            )
        moved = move(conn, generation, "discard", finished_at=NOW)
        if moved.moved:
            for table in reversed(tables_of(generation["phases"])):
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE generation_id = %s").format(sql.Identifier(table)),
                    (generation["id"],),
                )
            _roll_back_phase_runs(conn, generation["id"])
        return moved


def _restore(conn: psycopg.Connection[Any], generation: dict[str, Any]) -> tuple[str, ...]:
    """The world the generation replaced, back; returns the rows kept as the game master left them."""
    kept = restore_world(
        conn, generation["campaign_id"], tables_of(generation["phases"]), generation["replaced_world"], generation["id"]
    )
    _roll_back_phase_runs(conn, generation["id"])
    follow_campaign(conn, generation["campaign_id"], "reverted")
    return tuple(str(row) for row in kept)


def _fail_running_phase_runs(conn: psycopg.Connection[Any], generation_id: Any, error_type: str) -> None:
    target, moving = _phase_run_move("fail")
    conn.execute(
        "UPDATE phase_runs SET status = %s, finished_at = now(), error_type = coalesce(error_type, %s)"
        " WHERE generation_id = %s AND status = ANY(%s)",
        (target, error_type, generation_id, moving),
    )


def _roll_back_phase_runs(conn: psycopg.Connection[Any], generation_id: Any) -> None:
    target, moving = _phase_run_move("roll_back")
    conn.execute(
        "UPDATE phase_runs SET status = %s, finished_at = coalesce(finished_at, now())"
        " WHERE generation_id = %s AND status = ANY(%s)",
        (target, generation_id, moving),
    )


def _phase_run_move(event: str) -> tuple[str, list[str]]:
    """The status a phase run takes on ``event`` and the statuses it may take it from
    (``PHASE_RUN_TRANSITIONS``; None is a phase run not written yet)."""
    allowed, target = PHASE_RUN_TRANSITIONS[event]
    return target, [status for status in allowed if status is not None]


def record_execution_end(
    conn: psycopg.Connection[Any],
    generation_id: uuid.UUID | str,
    execution_status: str,
    error_type: str | None,
    message: str | None,
    *,
    execution_arn: Any = ANY_EXECUTION,
    redrive_count: int | None = None,
    ended_at: datetime | None = None,
) -> Transition:
    """What an execution's end means for its generation; idempotent (a second delivery is a no-op).

    FAILED or TIMED_OUT while running: failed and redrivable (a transient error outlived its
    retries, or a bug). ABORTED while running: cancelled (with the previous world restored).
    An event of a run before the execution's latest redrive changes nothing.
    """
    if execution_status == "ABORTED":
        return cancel_generation(
            conn, generation_id, execution_arn=execution_arn, redrive_count=redrive_count, ended_at=ended_at
        )
    if execution_status in ("FAILED", "TIMED_OUT"):
        return fail_generation(
            conn,
            generation_id,
            error_type or execution_status,
            message or "",
            redrivable=True,
            execution_arn=execution_arn,
            redrive_count=redrive_count,
            ended_at=ended_at,
        )
    with conn.transaction():
        generation = locked_generation(conn, generation_id)
        return Transition(False, generation["status"], f"execution {execution_status}")


# -- phase runs ----------------------------------------------------------------------------------


def start_phase_attempt(
    conn: psycopg.Connection[Any], generation_id: uuid.UUID | str, phase: Phase, *, run: ExecutionRun | None = None
) -> int:
    """A new attempt of ``phase`` (an older attempt can no longer commit). GenerationCancelled when
    the generation is not active any more, or ``run`` is not its execution's latest run; a redriven
    run moves its failed generation back to running first (``follow_run``)."""
    with conn.transaction():
        generation = locked_generation(conn, generation_id)
        refusal = follow_run(conn, generation, run)
        if refusal:
            raise GenerationCancelled(
                f"generation {generation_id}: {refusal}: phase {phase.id} does not start", status=generation["status"]
            )
        if generation["status"] == "pending":
            move(conn, generation, "start")
        elif generation["status"] != "running":
            raise GenerationCancelled(
                f"generation {generation_id} is {generation['status']}: phase {phase.id} does not start",
                status=generation["status"],
            )
        target, moving = _phase_run_move("start_attempt")
        row = conn.execute(
            """
            INSERT INTO phase_runs (generation_id, campaign_id, phase, status, attempt)
            VALUES (%(generation)s, %(campaign)s, %(phase)s, %(target)s, 1)
            ON CONFLICT (generation_id, phase) DO UPDATE
               SET attempt = phase_runs.attempt + 1, status = %(target)s, started_at = now(),
                   finished_at = NULL, error_type = NULL, error_message = NULL
               WHERE phase_runs.status = ANY(%(moving)s)
            RETURNING attempt
            """,
            {
                "generation": generation["id"],
                "campaign": generation["campaign_id"],
                "phase": phase.id,
                "target": target,
                "moving": moving,
            },
        ).fetchone()
        if row is None:
            raise AttemptSuperseded(f"phase {phase.id} already succeeded for generation {generation_id}")
        conn.execute(
            "UPDATE campaigns SET current_phase = %s, updated_at = now() WHERE id = %s",
            (phase.id, generation["campaign_id"]),
        )
    return int(row["attempt"])


def fence_phase_commit(
    conn: psycopg.Connection[Any], generation_id: uuid.UUID | str, phase: Phase, attempt: int
) -> None:
    """Inside the save's transaction, before it commits: refuse unless the generation is running
    (so it is the campaign's active one and not cancelled) and ``attempt`` is the current one.
    The generation row stays locked until the commit, so a cancel waits for it or wins before it."""
    generation = locked_generation(conn, generation_id)
    current = conn.execute(
        "SELECT attempt, status FROM phase_runs WHERE generation_id = %s AND phase = %s FOR UPDATE",
        (str(generation_id), phase.id),
    ).fetchone()
    superseded = AttemptSuperseded(
        f"phase {phase.id} attempt {attempt} was superseded"
        f" (current: attempt {current and current['attempt']}, {current and current['status']})"
    )
    if current is None or current["attempt"] != attempt:
        raise superseded
    if generation["status"] != "running":
        raise GenerationCancelled(
            f"generation {generation_id} is {generation['status']}: phase {phase.id} attempt {attempt} may not commit",
            status=generation["status"],
        )
    if current["status"] != "running":
        raise superseded


def check_attempt_current(
    conn: psycopg.Connection[Any], generation_id: uuid.UUID | str, phase: Phase, attempt: int
) -> None:
    """Between two rounds of model calls: GenerationCancelled (or AttemptSuperseded) when the
    attempt could not commit any more, so a cancelled phase stops paying for calls (its own
    transaction; ``fence_phase_commit``'s checks)."""
    with conn.transaction():
        fence_phase_commit(conn, generation_id, phase, attempt)


def succeed_phase_run(
    conn: psycopg.Connection[Any], generation_id: uuid.UUID | str, phase: Phase, **values: Any
) -> None:
    """running -> succeeded, inside the fenced save transaction, with what the phase wrote and cost
    (``values``: columns of this module's caller, ``pipeline``: timings, rows, result, dropped rows);
    what its parts recorded for a retry is cleared."""
    target, moving = _phase_run_move("succeed")
    assignments = "".join(f", {name} = %s" for name in values)
    conn.execute(
        f"UPDATE phase_runs SET status = %s, finished_at = now(), parts = NULL{assignments}"
        " WHERE generation_id = %s AND phase = %s AND status = ANY(%s)",
        (target, *values.values(), str(generation_id), phase.id, moving),
    )


def record_phase_parts(
    conn: psycopg.Connection[Any],
    generation_id: uuid.UUID | str,
    phase: Phase,
    attempt: int,
    progress: dict[str, Any],
    fingerprint: str,
    total: int,
) -> None:
    """Add to ``phase_runs.parts`` (answers merged by part), if ``attempt`` is still the current one."""
    with conn.transaction():
        conn.execute(
            """
            UPDATE phase_runs
               SET parts = coalesce(parts, '{}'::jsonb) || %(progress)s
                   || jsonb_build_object('answers', coalesce(parts -> 'answers', '{}'::jsonb)
                                                    || coalesce(%(progress)s -> 'answers', '{}'::jsonb),
                                         'total', %(total)s::int)
             WHERE generation_id = %(generation)s AND phase = %(phase)s AND attempt = %(attempt)s
            """,
            {
                "progress": Jsonb({**progress, "fingerprint": fingerprint}),
                "total": total,
                "generation": str(generation_id),
                "phase": phase.id,
                "attempt": attempt,
            },
        )


def recorded_phase_parts(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str, phase: Phase) -> dict[str, Any]:
    """What the attempts of ``phase`` recorded so far (``phase_runs.parts``), or nothing."""
    with conn.transaction():
        row = conn.execute(
            "SELECT parts FROM phase_runs WHERE generation_id = %s AND phase = %s", (str(generation_id), phase.id)
        ).fetchone()
    return dict(row["parts"] or {}) if row else {}


def clear_phase_parts(
    conn: psycopg.Connection[Any], generation_id: uuid.UUID | str, phase: Phase, attempt: int
) -> None:
    """Forget what earlier attempts recorded (written against another world)."""
    with conn.transaction():
        conn.execute(
            "UPDATE phase_runs SET parts = NULL WHERE generation_id = %s AND phase = %s AND attempt = %s",
            (str(generation_id), phase.id, attempt),
        )


def fail_phase_attempt(
    conn: psycopg.Connection[Any],
    generation_id: uuid.UUID | str,
    phase: Phase,
    attempt: int,
    error_type: str,
    message: str,
) -> bool:
    """running -> failed for this attempt only (a newer attempt is left alone)."""
    target, moving = _phase_run_move("fail")
    cur = conn.execute(
        "UPDATE phase_runs SET status = %s, finished_at = now(), error_type = %s, error_message = %s"
        " WHERE generation_id = %s AND phase = %s AND attempt = %s AND status = ANY(%s)",
        (target, error_type, message[:4000], str(generation_id), phase.id, attempt, moving),
    )
    return cur.rowcount == 1


# -- edits of a generated world (a reroll, its undo) ----------------------------------------------


def fence_campaign_edit(conn: psycopg.Connection[Any], campaign_id: uuid.UUID | str) -> None:
    """Inside an edit's transaction, before it writes: the campaign lock (held until the commit) and
    GenerationActive while a generation of the campaign is pending or running. A generation created
    before the edit refuses it; one created after waits for the edit's commit (``create_generation``
    takes the same lock), so its snapshot holds the edited row."""
    lock_campaign(conn, campaign_id)
    active = conn.execute(
        "SELECT id, status FROM generations WHERE campaign_id = %s AND status IN ('pending', 'running') LIMIT 1",
        (str(campaign_id),),
    ).fetchone()
    if active is not None:
        raise GenerationActive(
            f"campaign {campaign_id} has a {active['status']} generation ({active['id']}): wait for it to end"
            " (or cancel it), then try again"
        )
