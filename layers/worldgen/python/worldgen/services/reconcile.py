"""The execution is the source of truth: an active generation whose execution ended, or no longer
exists, is recorded as such before anyone acts on it, so nothing stays stuck."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from worldgen import orchestrator, state
from worldgen.db import generations_read
from worldgen.db.leases import execution_lease_held
from worldgen.observability import logger

# A generation without an execution yet is being started; past this it is taken as lost.
STARTING_GRACE_SECONDS = 120


def reconcile(conn: psycopg.Connection[Any], generation: dict[str, Any]) -> dict[str, Any]:
    """The generation (``generations_read.GENERATION_COLUMNS``) with the status its execution says."""
    if generation["status"] not in state.ACTIVE_STATUSES:
        return generation
    arn = generation["execution_arn"]
    execution = orchestrator.describe_execution(arn) if arn else None
    if execution is not None and execution["status"] in orchestrator.ALIVE_STATUSES:
        return generation
    if execution is None:
        if execution_lease_held(conn, generation["id"]):  # a local runtime in another process runs it
            return generation
        if arn is None:
            age = generations_read.seconds_since(conn, generation["status_changed_at"])
            if age < STARTING_GRACE_SECONDS:
                return generation
        moved = state.fail_generation(
            conn,
            generation["id"],
            "ExecutionLost",
            "its execution no longer exists",
            redrivable=True,
            execution_arn=arn,
        )
    else:
        moved = state.record_execution_end(
            conn,
            generation["id"],
            execution["status"],
            execution.get("error"),
            execution.get("cause"),
            execution_arn=arn,
            redrive_count=execution.get("redriveCount"),  # DescribeExecution's: the latest run's
        )
    logger.warning("generation reconciled with its execution", extra={"status": moved.status})
    return {**generation, "status": moved.status}


def reconcile_active(conn: psycopg.Connection[Any], campaign_id: uuid.UUID) -> None:
    """Reconcile the campaign's active generations: one whose execution died does not block it."""
    for stale in generations_read.active_generations(conn, campaign_id):
        reconcile(conn, stale)
    conn.commit()
