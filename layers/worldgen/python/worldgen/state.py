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
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from worldgen.db.snapshot import capture_world, restore_world, tables_of
from worldgen.errors import AttemptSuperseded, CampaignNotFound, GenerationCancelled
from worldgen.phases import DEFAULT_PROFILE, Phase, profile_phases

ACTIVE_STATUSES = ("pending", "running")
ANY_EXECUTION: Any = object()  # no condition on the generation's current execution
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled", "reverted", "discarded")

# event -> (statuses it may start from, status it ends in). Written once; tests walk it.
GENERATION_TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "start": (("pending",), "running"),  # its execution started
    "resume": (("failed",), "running"),  # a new execution continues from the failed phase
    "redrive": (("failed",), "running"),  # the same execution, redriven, continues from its failed states
    "succeed": (("running",), "succeeded"),
    "fail": (("pending", "running"), "failed"),
    "cancel": (("pending", "running", "failed"), "cancelled"),
    "revert": (("failed", "cancelled"), "reverted"),
    "discard": (("failed", "cancelled"), "discarded"),
}
# One order of generations per campaign: these events move a generation only while no newer
# generation of its campaign has started. An older generation's resume would reuse work recorded
# against a world the newer one rewrote; its cancel, revert or discard would put its snapshot back
# over (or delete rows under) the newer world.
ONLY_WHILE_LATEST: frozenset[str] = frozenset({"resume", "redrive", "cancel", "revert", "discard"})
PHASE_RUN_TRANSITIONS: dict[str, tuple[tuple[str | None, ...], str]] = {
    "start_attempt": ((None, "running", "failed", "rolled_back"), "running"),
    "succeed": (("running",), "succeeded"),
    "fail": (("running",), "failed"),
    "roll_back": (("running", "succeeded", "failed"), "rolled_back"),
}


NOW: Any = object()  # a column value meaning the database's now()


class GenerationActive(Exception):
    """The campaign already has a pending or running generation."""


@dataclass(frozen=True)
class ExecutionRun:
    """One run of a Step Functions execution: its ARN (``$$.Execution.Id``) and redrive count
    (``$$.Execution.RedriveCount``: 0 for the first run, +1 per redrive). A redrive keeps the ARN,
    so the count is what tells the runs apart.
    https://docs.aws.amazon.com/step-functions/latest/dg/redrive-executions.html
    https://docs.aws.amazon.com/step-functions/latest/dg/input-output-contextobject.html
    """

    arn: str
    redrive_count: int = 0


@dataclass(frozen=True)
class Transition:
    moved: bool
    status: str  # the generation's status after the attempt (unchanged when it did not move)
    detail: str = ""
    newer_generation: str = ""  # set when refused because this newer generation of the campaign started
    kept: tuple[str, ...] = ()  # rows a restore kept because the game master locked or edited them since


def _lock_campaign(conn: psycopg.Connection[Any], campaign_id: uuid.UUID | str) -> None:
    from worldgen.db.save import campaign_lock_id

    conn.execute("SELECT pg_advisory_xact_lock(%s)", (campaign_lock_id(campaign_id),))


def _campaign_of(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str) -> Any:
    row = conn.execute("SELECT campaign_id FROM generations WHERE id = %s", (str(generation_id),)).fetchone()
    if row is None:
        raise CampaignNotFound(f"generation {generation_id} does not exist")
    return row["campaign_id"]


def _locked_generation(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str) -> dict[str, Any]:
    """Inside a transaction: the campaign lock, then the generation row (FOR UPDATE)."""
    _lock_campaign(conn, _campaign_of(conn, generation_id))
    row = conn.execute("SELECT * FROM generations WHERE id = %s FOR UPDATE", (str(generation_id),)).fetchone()
    if row is None:
        raise CampaignNotFound(f"generation {generation_id} does not exist")
    return dict(row)


def _follow_campaign(conn: psycopg.Connection[Any], campaign_id: Any, generation_status: str) -> None:
    if generation_status == "running":
        status = "generating"
    elif generation_status == "succeeded":
        status = "generated"
    elif generation_status == "failed":
        status = "failed"
    else:  # cancelled or reverted: the world in place is the last succeeded one, if any
        done = conn.execute(
            "SELECT 1 FROM generations WHERE campaign_id = %s AND status = 'succeeded' LIMIT 1", (campaign_id,)
        ).fetchone()
        status = "generated" if done else "draft"
    conn.execute(
        "UPDATE campaigns SET status = %s, updated_at = now(),"
        " current_phase = CASE WHEN %s = 'generating' THEN current_phase END WHERE id = %s",
        (status, status, campaign_id),
    )


def _newer_generation(conn: psycopg.Connection[Any], generation: dict[str, Any]) -> str:
    """The id of a generation of the same campaign started after ``generation`` ("" when none)."""
    row = conn.execute(
        "SELECT id FROM generations WHERE campaign_id = %s AND id <> %s AND started_at > %s"
        " ORDER BY started_at DESC LIMIT 1",
        (generation["campaign_id"], generation["id"], generation["started_at"]),
    ).fetchone()
    return str(row["id"]) if row else ""


def _refusal(conn: psycopg.Connection[Any], generation: dict[str, Any], event: str) -> Transition | None:
    """Why ``event`` may not move ``generation`` now (None when it may): the table, then the order."""
    allowed, _ = GENERATION_TRANSITIONS[event]
    if generation["status"] not in allowed:
        return Transition(False, generation["status"], f"generation is {generation['status']}")
    if event in ONLY_WHILE_LATEST:
        newer = _newer_generation(conn, generation)
        if newer:
            return Transition(
                False, generation["status"], f"generation {newer} of its campaign started after it", newer
            )
    return None


def _move(
    conn: psycopg.Connection[Any],
    generation: dict[str, Any],
    event: str,
    **columns: Any,
) -> Transition:
    refused = _refusal(conn, generation, event)
    if refused is not None:
        return refused
    target = GENERATION_TRANSITIONS[event][1]
    # Column names are this module's own literals; values travel as parameters.
    assignments = "".join(f", {name} = now()" if value is NOW else f", {name} = %s" for name, value in columns.items())
    values = [value for value in columns.values() if value is not NOW]
    conn.execute(
        f"UPDATE generations SET status = %s, status_changed_at = now(){assignments} WHERE id = %s",
        (target, *values, generation["id"]),
    )
    _follow_campaign(conn, generation["campaign_id"], target)
    return Transition(True, target)


def _follow_run(conn: psycopg.Connection[Any], generation: dict[str, Any], run: ExecutionRun | None) -> str:
    """Inside the locked transaction, what a Lambda of ``run`` finds its generation ready for: ""
    when it may go on (a redriven run moved a failed generation back to running, or recorded its
    redrive count on a running one), else why not (the generation is left unchanged)."""
    if run is None:  # a caller that names no execution (tests, the local tools): no fence on it
        return ""
    # A redriven run's execution was recorded when it first ran; none recorded means a resume
    # replaced it and the new execution is starting (its first run may come before its ARN does).
    if generation["execution_arn"] != run.arn and (generation["execution_arn"] is not None or run.redrive_count):
        return "its execution changed (a resume came since)"
    if run.redrive_count < generation["redrive_count"]:
        return f"run {run.redrive_count} of its execution was superseded by redrive {generation['redrive_count']}"
    if run.redrive_count == generation["redrive_count"]:
        return ""
    if generation["status"] in ACTIVE_STATUSES:  # redriven before the failure was even recorded
        conn.execute("UPDATE generations SET redrive_count = %s WHERE id = %s", (run.redrive_count, generation["id"]))
        generation["redrive_count"] = run.redrive_count
        return ""
    if generation["status"] != "failed" or not generation["redrivable"] or generation["execution_arn"] != run.arn:
        return f"generation is {generation['status']} and not redrivable"
    newer = _newer_generation(conn, generation)
    if newer:
        return f"generation {newer} started after it"
    try:
        with conn.transaction():  # a savepoint: an older generation resumed since holds the campaign
            moved = _move(
                conn,
                generation,
                "redrive",
                redrive_count=run.redrive_count,
                finished_at=None,
                redrivable=False,
                error_type=None,
                error_message=None,
            )
    except psycopg.errors.UniqueViolation:  # generations_one_active_per_campaign
        return "another generation of the campaign is in progress"
    generation.update(status=moved.status, redrive_count=run.redrive_count, redrivable=False)
    return ""


def _earlier_run(generation: dict[str, Any], redrive_count: int | None, ended_at: datetime | None) -> bool:
    """Whether an execution's event comes from a run before the generation's latest redrive: by its
    redrive count, or (an event that carries none) by its time against the redrive's."""
    if redrive_count is not None:
        return redrive_count < generation["redrive_count"]
    return (
        ended_at is not None
        and generation["redrive_count"] > 0
        and generation["status"] in ACTIVE_STATUSES
        and ended_at < generation["status_changed_at"]
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
            _lock_campaign(conn, campaign_id)
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
        generation = _locked_generation(conn, generation_id)
        if generation["execution_arn"] is None:
            conn.execute("UPDATE generations SET execution_arn = %s WHERE id = %s", (execution_arn, generation["id"]))
        return _move(conn, generation, "start", finished_at=None, redrivable=False)


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
            generation = _locked_generation(conn, generation_id)
            count = generation["resumed_count"] + 1
            moved = _move(
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
        generation = _locked_generation(conn, generation_id)
        before = generation["status"]
        refusal = _follow_run(conn, generation, run)
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
        generation = _locked_generation(conn, generation_id)
        refusal = _follow_run(conn, generation, run)
        if refusal:
            return Transition(False, generation["status"], refusal)
        moved = _move(
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
        generation = _locked_generation(conn, generation_id)
        if execution_arn is not ANY_EXECUTION and generation["execution_arn"] != execution_arn:
            return Transition(False, generation["status"], "its execution changed")
        if _earlier_run(generation, redrive_count, ended_at):
            return Transition(False, generation["status"], "an earlier run of its execution")
        moved = _move(
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
        generation = _locked_generation(conn, generation_id)
        if execution_arn is not ANY_EXECUTION and generation["execution_arn"] != execution_arn:
            return Transition(False, generation["status"], "its execution changed")
        if _earlier_run(generation, redrive_count, ended_at):
            return Transition(False, generation["status"], "an earlier run of its execution")
        moved = _move(conn, generation, "cancel", finished_at=NOW, redrivable=False)
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
        generation = _locked_generation(conn, generation_id)
        refused = _refusal(conn, generation, "revert")
        if refused is not None:
            return refused
        if generation["replaced_world"] is None:
            return Transition(False, generation["status"], "its snapshot of the world it replaced is not kept")
        moved = _move(conn, generation, "revert", finished_at=NOW)
        if moved.moved:
            return replace(moved, kept=_restore(conn, generation))
        return moved


def discard_generation(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str) -> Transition:
    """failed/cancelled -> discarded: every row the generation wrote is removed (a clean slate for
    those who do not want to resume it); rows of other generations stay.

    A regeneration (it replaced a world) is refused: removing its rows would leave the campaign
    with less than before and the replaced world out of reach; ``revert`` puts that world back."""
    with conn.transaction():
        generation = _locked_generation(conn, generation_id)
        refused = _refusal(conn, generation, "discard")
        if refused is not None:
            return refused
        if generation["replaced_world"]:
            return Transition(
                False,
                generation["status"],
                "it replaced a world that discarding would lose; `worldgen revert` puts that world back",
            )
        moved = _move(conn, generation, "discard", finished_at=NOW)
        if moved.moved:
            for table in reversed(tables_of(generation["phases"])):
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE generation_id = %s").format(sql.Identifier(table)),
                    (generation["id"],),
                )
            conn.execute(
                "UPDATE phase_runs SET status = 'rolled_back', finished_at = coalesce(finished_at, now())"
                " WHERE generation_id = %s",
                (generation["id"],),
            )
        return moved


def _restore(conn: psycopg.Connection[Any], generation: dict[str, Any]) -> tuple[str, ...]:
    """The world the generation replaced, back; returns the rows kept as the game master left them."""
    kept = restore_world(
        conn, generation["campaign_id"], tables_of(generation["phases"]), generation["replaced_world"], generation["id"]
    )
    conn.execute(
        "UPDATE phase_runs SET status = 'rolled_back', finished_at = coalesce(finished_at, now())"
        " WHERE generation_id = %s",
        (generation["id"],),
    )
    _follow_campaign(conn, generation["campaign_id"], "reverted")
    return tuple(str(row) for row in kept)


def _fail_running_phase_runs(conn: psycopg.Connection[Any], generation_id: Any, error_type: str) -> None:
    conn.execute(
        "UPDATE phase_runs SET status = 'failed', finished_at = now(), error_type = coalesce(error_type, %s)"
        " WHERE generation_id = %s AND status = 'running'",
        (error_type, generation_id),
    )


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
        generation = _locked_generation(conn, generation_id)
        return Transition(False, generation["status"], f"execution {execution_status}")


# -- phase runs ----------------------------------------------------------------------------------


def start_phase_attempt(
    conn: psycopg.Connection[Any], generation_id: uuid.UUID | str, phase: Phase, *, run: ExecutionRun | None = None
) -> int:
    """A new attempt of ``phase`` (an older attempt can no longer commit). GenerationCancelled when
    the generation is not active any more, or ``run`` is not its execution's latest run; a redriven
    run moves its failed generation back to running first (``_follow_run``)."""
    with conn.transaction():
        generation = _locked_generation(conn, generation_id)
        refusal = _follow_run(conn, generation, run)
        if refusal:
            raise GenerationCancelled(
                f"generation {generation_id}: {refusal}: phase {phase.id} does not start", status=generation["status"]
            )
        if generation["status"] == "pending":
            _move(conn, generation, "start")
        elif generation["status"] != "running":
            raise GenerationCancelled(
                f"generation {generation_id} is {generation['status']}: phase {phase.id} does not start",
                status=generation["status"],
            )
        row = conn.execute(
            """
            INSERT INTO phase_runs (generation_id, campaign_id, phase, status, attempt)
            VALUES (%s, %s, %s, 'running', 1)
            ON CONFLICT (generation_id, phase) DO UPDATE
               SET attempt = phase_runs.attempt + 1, status = 'running', started_at = now(),
                   finished_at = NULL, error_type = NULL, error_message = NULL
               WHERE phase_runs.status <> 'succeeded'
            RETURNING attempt
            """,
            (generation["id"], generation["campaign_id"], phase.id),
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
    generation = _locked_generation(conn, generation_id)
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
    """running -> succeeded, inside the fenced save transaction."""
    assignments = ", ".join(f"{name} = %s" for name in values)
    conn.execute(
        f"UPDATE phase_runs SET status = 'succeeded', finished_at = now(), {assignments}"
        " WHERE generation_id = %s AND phase = %s AND status = 'running'",
        (*values.values(), str(generation_id), phase.id),
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
    cur = conn.execute(
        "UPDATE phase_runs SET status = 'failed', finished_at = now(), error_type = %s, error_message = %s"
        " WHERE generation_id = %s AND phase = %s AND attempt = %s AND status = 'running'",
        (error_type, message[:4000], str(generation_id), phase.id, attempt),
    )
    return cur.rowcount == 1


# -- edits of a generated world (a reroll, its undo) ----------------------------------------------


def fence_campaign_edit(conn: psycopg.Connection[Any], campaign_id: uuid.UUID | str) -> None:
    """Inside an edit's transaction, before it writes: the campaign lock (held until the commit) and
    GenerationActive while a generation of the campaign is pending or running. A generation created
    before the edit refuses it; one created after waits for the edit's commit (``create_generation``
    takes the same lock), so its snapshot holds the edited row."""
    _lock_campaign(conn, campaign_id)
    active = conn.execute(
        "SELECT id, status FROM generations WHERE campaign_id = %s AND status IN ('pending', 'running') LIMIT 1",
        (str(campaign_id),),
    ).fetchone()
    if active is not None:
        raise GenerationActive(
            f"campaign {campaign_id} has a {active['status']} generation ({active['id']}): wait for it to end"
            " (or cancel it), then try again"
        )
