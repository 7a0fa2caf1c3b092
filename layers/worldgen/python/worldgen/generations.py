"""The lifecycle of a generation row: create, complete, roll back, record a failure, summarise."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from worldgen.db.save import campaign_lock_id
from worldgen.phases import PHASES, WORLD_TABLES

ACTIVE_STATUSES = ("pending", "running")


class GenerationActive(Exception):
    """The campaign already has a pending or running generation."""


def create_generation(
    conn: psycopg.Connection[Any],
    campaign_id: uuid.UUID | str,
    *,
    provider: str,
    options: dict[str, Any] | None = None,
    phases: list[str] | None = None,
) -> uuid.UUID:
    try:
        with conn.transaction():
            row = conn.execute(
                "INSERT INTO generations (campaign_id, model_provider, options, phases)"
                " VALUES (%s, %s, %s, %s) RETURNING id",
                (str(campaign_id), provider, Jsonb(options or {}), phases or [p.id for p in PHASES]),
            ).fetchone()
    except psycopg.errors.UniqueViolation as exc:  # generations_one_active_per_campaign
        raise GenerationActive(f"campaign {campaign_id} already has a generation in progress") from exc
    assert row is not None
    return uuid.UUID(str(row["id"]))


def set_execution(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str, execution_arn: str) -> None:
    with conn.transaction():
        conn.execute(
            "UPDATE generations SET execution_arn = %s, status = 'running', finished_at = NULL,"
            " error_type = NULL, error_message = NULL, redrivable = false WHERE id = %s",
            (execution_arn, str(generation_id)),
        )


def generation_summary(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str) -> dict[str, Any]:
    runs = conn.execute(
        "SELECT phase, status, attempt, duration_ms, model_ms, db_ms, rows_total, rows_per_table"
        " FROM phase_runs WHERE generation_id = %s ORDER BY phase",
        (str(generation_id),),
    ).fetchall()
    calls = conn.execute(
        "SELECT phase, provider, model, count(*) AS calls, sum(input_tokens) AS input_tokens,"
        " sum(output_tokens) AS output_tokens, sum(cache_read_input_tokens) AS cache_read_input_tokens,"
        " sum(cache_creation_input_tokens) AS cache_creation_input_tokens, sum(cost_usd) AS cost_usd"
        " FROM model_calls WHERE generation_id = %s GROUP BY phase, provider, model ORDER BY phase",
        (str(generation_id),),
    ).fetchall()
    return {
        "phases": [dict(r) for r in runs],
        "model_calls": [{**dict(c), "cost_usd": float(c["cost_usd"] or 0)} for c in calls],
        "rows_total": sum(r["rows_total"] or 0 for r in runs),
        "input_tokens": int(sum(c["input_tokens"] or 0 for c in calls)),
        "output_tokens": int(sum(c["output_tokens"] or 0 for c in calls)),
        "cost_usd": round(float(sum(c["cost_usd"] or 0 for c in calls)), 6),
    }


def complete_generation(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str) -> dict[str, Any]:
    summary = generation_summary(conn, generation_id)
    brief = {k: summary[k] for k in ("rows_total", "input_tokens", "output_tokens", "cost_usd")}
    with conn.transaction():
        row = conn.execute(
            """
            UPDATE generations SET status = 'succeeded', finished_at = now(), summary = %s, total_rows = %s,
                   total_input_tokens = %s, total_output_tokens = %s, total_cost_usd = %s, redrivable = false
            WHERE id = %s RETURNING campaign_id
            """,
            (
                Jsonb(summary | {"phases": [{**p, "rows_per_table": p["rows_per_table"]} for p in summary["phases"]]}),
                summary["rows_total"],
                summary["input_tokens"],
                summary["output_tokens"],
                summary["cost_usd"],
                str(generation_id),
            ),
        ).fetchone()
        if row:
            conn.execute(
                "UPDATE campaigns SET status = 'generated', current_phase = NULL, updated_at = now() WHERE id = %s",
                (row["campaign_id"],),
            )
    return brief


def rollback_generation(
    conn: psycopg.Connection[Any], generation_id: uuid.UUID | str, error_type: str, message: str
) -> dict[str, int]:
    """Compensate a permanent failure: remove every world row this generation wrote, mark it failed.

    The failed phase itself wrote nothing (a phase commits all or nothing); earlier phases of this
    generation are removed so no half-built world stays visible. Not redrivable: fix the input
    and start again (or regenerate).
    """
    removed: dict[str, int] = {}
    with conn.transaction():
        row = conn.execute("SELECT campaign_id FROM generations WHERE id = %s", (str(generation_id),)).fetchone()
        if row is None:
            return removed
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (campaign_lock_id(row["campaign_id"]),))
        for table in reversed(WORLD_TABLES):
            cur = conn.execute(
                sql.SQL("DELETE FROM {} WHERE generation_id = %s").format(sql.Identifier(table)),
                (str(generation_id),),
            )
            if cur.rowcount:
                removed[table] = cur.rowcount
        conn.execute(
            "UPDATE phase_runs SET status = CASE WHEN status = 'succeeded' THEN 'rolled_back' ELSE 'failed' END,"
            " finished_at = coalesce(finished_at, now()) WHERE generation_id = %s",
            (str(generation_id),),
        )
        # A cancelled generation stays cancelled: its phases stop with GenerationCancelled.
        conn.execute(
            "UPDATE generations SET status = CASE WHEN status = 'cancelled' THEN 'cancelled' ELSE 'failed' END,"
            " finished_at = now(), error_type = %s, error_message = %s, redrivable = false WHERE id = %s",
            (error_type, message[:4000], str(generation_id)),
        )
        conn.execute("UPDATE campaigns SET status = 'failed', updated_at = now() WHERE id = %s", (row["campaign_id"],))
    return removed


def record_execution_end(
    conn: psycopg.Connection[Any],
    generation_id: uuid.UUID | str,
    status: str,
    error_type: str | None,
    message: str | None,
) -> str:
    """An execution FAILED, TIMED_OUT or was ABORTED. Returns the generation's new status."""
    with conn.transaction():
        current = conn.execute(
            "SELECT status, campaign_id FROM generations WHERE id = %s FOR UPDATE", (str(generation_id),)
        ).fetchone()
        if current is None:
            return "unknown"
        if status == "ABORTED" or current["status"] == "cancelled":
            new_status, redrivable = "cancelled", False
        elif current["status"] == "failed" and current is not None and not _is_redrivable(conn, generation_id):
            return "failed"  # already rolled back by the Catch branch
        else:
            new_status, redrivable = "failed", True
        conn.execute(
            "UPDATE generations SET status = %s, finished_at = now(), redrivable = %s,"
            " error_type = coalesce(%s, error_type), error_message = coalesce(%s, error_message) WHERE id = %s",
            (new_status, redrivable, error_type, (message or "")[:4000] or None, str(generation_id)),
        )
        conn.execute(
            "UPDATE phase_runs SET status = 'failed', finished_at = now(),"
            " error_type = coalesce(error_type, %s) WHERE generation_id = %s AND status = 'running'",
            (error_type or status, str(generation_id)),
        )
        conn.execute(
            "UPDATE campaigns SET status = 'failed', updated_at = now() WHERE id = %s",
            (current["campaign_id"],),
        )
    return new_status


def _is_redrivable(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str) -> bool:
    row = conn.execute("SELECT redrivable FROM generations WHERE id = %s", (str(generation_id),)).fetchone()
    return bool(row and row["redrivable"])
