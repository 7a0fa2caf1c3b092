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


# Backend pids of this process's own lease sessions (a LocalRuntime's). Its executions are known to
# its own moto, so a lease one of them holds says nothing about another process: a runtime that
# takes a generation's lease before resuming it (issue 29) must not see its own lease as "alive".
_OWN_SESSIONS: set[int] = set()


def mark_own_session(conn: psycopg.Connection[Any]) -> None:
    _OWN_SESSIONS.add(int(conn.info.backend_pid))


def execution_lease_held(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str) -> bool:
    """Whether a session of another process (a local runtime) holds the lease of this generation's execution."""
    classid, objid = lease_keys(generation_id)
    row = conn.execute(
        "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = %s AND objsubid = 2"
        " AND granted AND NOT (pid = ANY(%s)) LIMIT 1",
        (classid, objid, sorted(_OWN_SESSIONS)),
    ).fetchone()
    return row is not None
