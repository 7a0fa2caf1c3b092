"""The rules of generation state that ``worldgen.state`` applies: the transition tables, and the
atomic conditional move of a generation (its campaign following it), under the campaign's lock.

Only ``worldgen.state`` calls these; every status change of campaigns, generations and phase runs
still goes through it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from worldgen.errors import CampaignNotFound

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
# event -> (statuses a phase run may take it from, None: not written yet; status it ends in). Applied by
# state (every write of phase_runs.status goes through it).
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


def lock_campaign(conn: psycopg.Connection[Any], campaign_id: uuid.UUID | str) -> None:
    from worldgen.db.save import campaign_lock_id

    conn.execute("SELECT pg_advisory_xact_lock(%s)", (campaign_lock_id(campaign_id),))


def campaign_of(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str) -> Any:
    row = conn.execute("SELECT campaign_id FROM generations WHERE id = %s", (str(generation_id),)).fetchone()
    if row is None:
        raise CampaignNotFound(f"generation {generation_id} does not exist")
    return row["campaign_id"]


def locked_generation(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str) -> dict[str, Any]:
    """Inside a transaction: the campaign lock, then the generation row (FOR UPDATE)."""
    lock_campaign(conn, campaign_of(conn, generation_id))
    row = conn.execute("SELECT * FROM generations WHERE id = %s FOR UPDATE", (str(generation_id),)).fetchone()
    if row is None:
        raise CampaignNotFound(f"generation {generation_id} does not exist")
    return dict(row)


def follow_campaign(conn: psycopg.Connection[Any], campaign_id: Any, generation_status: str) -> None:
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


def newer_generation(conn: psycopg.Connection[Any], generation: dict[str, Any]) -> str:
    """The id of a generation of the same campaign started after ``generation`` ("" when none)."""
    row = conn.execute(
        "SELECT id FROM generations WHERE campaign_id = %s AND id <> %s AND started_at > %s"
        " ORDER BY started_at DESC LIMIT 1",
        (generation["campaign_id"], generation["id"], generation["started_at"]),
    ).fetchone()
    return str(row["id"]) if row else ""


def refusal(conn: psycopg.Connection[Any], generation: dict[str, Any], event: str) -> Transition | None:
    """Why ``event`` may not move ``generation`` now (None when it may): the table, then the order."""
    allowed, _ = GENERATION_TRANSITIONS[event]
    if generation["status"] not in allowed:
        return Transition(False, generation["status"], f"generation is {generation['status']}")
    if event in ONLY_WHILE_LATEST:
        newer = newer_generation(conn, generation)
        if newer:
            return Transition(
                False, generation["status"], f"generation {newer} of its campaign started after it", newer
            )
    return None


def move(
    conn: psycopg.Connection[Any],
    generation: dict[str, Any],
    event: str,
    **columns: Any,
) -> Transition:
    refused = refusal(conn, generation, event)
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
    follow_campaign(conn, generation["campaign_id"], target)
    return Transition(True, target)


def follow_run(conn: psycopg.Connection[Any], generation: dict[str, Any], run: ExecutionRun | None) -> str:
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
    newer = newer_generation(conn, generation)
    if newer:
        return f"generation {newer} started after it"
    try:
        with conn.transaction():  # a savepoint: an older generation resumed since holds the campaign
            moved = move(
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


def earlier_run(generation: dict[str, Any], redrive_count: int | None, ended_at: datetime | None) -> bool:
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
