"""Execution leases: a local runtime holds one per execution it runs, in a PostgreSQL session.

moto's executions live inside the process that started them. Another process (``worldgen status``
in a second terminal) cannot see them, so "the execution does not exist" is not enough to call a
generation lost. The runtime holds a session advisory lock per running execution; when its process
dies, PostgreSQL releases the lock, and reconciliation then knows the execution is gone. On AWS
nobody holds one and Step Functions' own answer decides.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

LEASE_CLASS = 0x5747  # the first key of the two-key advisory lock space, reserved for leases


def lease_keys(generation_id: uuid.UUID | str) -> tuple[int, int]:
    return LEASE_CLASS, uuid.UUID(str(generation_id)).int % (1 << 31)


def acquire_execution_lease(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s, %s) AS ok", lease_keys(generation_id)).fetchone()
    return bool(row and row["ok"])


def release_execution_lease(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s, %s)", lease_keys(generation_id))


def execution_lease_held(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str) -> bool:
    """Whether some session (a local runtime) holds the lease of this generation's execution."""
    classid, objid = lease_keys(generation_id)
    row = conn.execute(
        "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = %s AND objsubid = 2"
        " AND granted LIMIT 1",
        (classid, objid),
    ).fetchone()
    return row is not None
