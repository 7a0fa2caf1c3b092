"""What the action services read of campaigns and generations before they act (no writes: every
status change goes through ``worldgen.state``). Each read ends its transaction, so a pooled
connection never idles inside one."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import psycopg

# The columns reconciliation needs of a generation (``worldgen.services.reconcile``).
GENERATION_COLUMNS = "g.id, g.campaign_id, g.status, g.execution_arn, g.resumed_count, g.status_changed_at"


def _one(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
    row = conn.execute(query, params).fetchone()
    conn.commit()
    return dict(row) if row is not None else None


def campaign_owner(conn: psycopg.Connection[Any], campaign_id: uuid.UUID) -> dict[str, Any] | None:
    """The campaign's id and owner_id, or None when it does not exist."""
    return _one(conn, "SELECT id, owner_id FROM campaigns WHERE id = %s", (str(campaign_id),))


def generation_with_owner(conn: psycopg.Connection[Any], generation_id: uuid.UUID) -> dict[str, Any] | None:
    """The generation (GENERATION_COLUMNS) and its campaign's owner_id, or None when it does not exist."""
    return _one(
        conn,
        f"SELECT {GENERATION_COLUMNS}, c.owner_id FROM generations g JOIN campaigns c ON c.id = g.campaign_id"
        " WHERE g.id = %s",
        (str(generation_id),),
    )


def active_generations(conn: psycopg.Connection[Any], campaign_id: uuid.UUID) -> list[dict[str, Any]]:
    """The campaign's pending and running generations."""
    rows = conn.execute(
        f"SELECT {GENERATION_COLUMNS} FROM generations g"
        " WHERE g.campaign_id = %s AND g.status IN ('pending', 'running')",
        (str(campaign_id),),
    ).fetchall()
    conn.commit()
    return [dict(row) for row in rows]


def generation_profile(conn: psycopg.Connection[Any], generation_id: uuid.UUID) -> str:
    """The profile the generation runs (``full`` for a row that is gone)."""
    row = _one(conn, "SELECT profile FROM generations WHERE id = %s", (str(generation_id),))
    return str(row["profile"]) if row else "full"


def succeeded_phases(conn: psycopg.Connection[Any], campaign_id: uuid.UUID) -> set[str]:
    """Every phase that succeeded for the campaign, in any of its generations."""
    rows = conn.execute(
        "SELECT DISTINCT phase FROM phase_runs WHERE campaign_id = %s AND status = 'succeeded'", (str(campaign_id),)
    ).fetchall()
    conn.commit()
    return {str(row["phase"]) for row in rows}


def seconds_since(conn: psycopg.Connection[Any], moment: datetime) -> float:
    """Seconds from ``moment`` to the database's now() (the clock the status timestamps use)."""
    row = _one(conn, "SELECT extract(epoch FROM now() - %s) AS age", (moment,))
    return float(row["age"]) if row else 0.0
