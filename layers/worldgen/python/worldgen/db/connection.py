"""PostgreSQL connections (psycopg 3), created lazily and mapped to the error taxonomy."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg.rows import dict_row

from worldgen.errors import ConfigurationError, DatabaseUnavailable
from worldgen.settings import get_settings

# One connection per Lambda execution environment. Lambda runs one invocation at a time per
# environment; the local runtime runs Parallel branches in threads of one process, so the
# connection is per thread, which is the same thing in Lambda.
_local = threading.local()


@cache
def database_url() -> str:
    """The URL from settings, else from the Secrets Manager secret (JSON of RDS's shape or a URL)."""
    settings = get_settings()
    if settings.database_url:
        return settings.database_url
    if settings.database_secret_arn:
        from aws_lambda_powertools.utilities import parameters

        raw = str(parameters.get_secret(settings.database_secret_arn, max_age=300))
        if raw.startswith("postgres"):
            return raw
        secret = json.loads(raw)
        host = settings.database_proxy_endpoint or secret["host"]
        return (
            f"postgresql://{quote(secret['username'])}:{quote(secret['password'])}"
            f"@{host}:{secret.get('port', 5432)}/{secret.get('dbname', 'postgres')}"
        )
    raise ConfigurationError(
        "no database configured: set WORLDGEN_DATABASE_URL (or DATABASE_URL) or WORLDGEN_DATABASE_SECRET_ARN"
    )


def connect(url: str | None = None, *, autocommit: bool = True) -> psycopg.Connection[dict[str, Any]]:
    """A connection in autocommit mode: every write goes through an explicit ``conn.transaction()``.

    Behind RDS Proxy, server-side prepared statements would pin each client to one database
    connection, so psycopg never prepares (``prepare_threshold=None``).
    """
    behind_proxy = get_settings().database_proxy_endpoint is not None
    try:
        connection = psycopg.connect(
            url or database_url(), autocommit=autocommit, row_factory=dict_row, connect_timeout=10
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
    if behind_proxy:
        connection.prepare_threshold = None
    return connection


def shared_connection() -> psycopg.Connection[dict[str, Any]]:
    """The execution environment's connection, reopened when it was closed or broken."""
    connection: psycopg.Connection[dict[str, Any]] | None = getattr(_local, "connection", None)
    if connection is None or connection.closed or connection.broken:
        connection = connect()
        _local.connection = connection
        _all_connections.append(connection)
    return connection


_all_connections: list[psycopg.Connection[dict[str, Any]]] = []


def release_thread_connection() -> None:
    """Close this thread's connection (the local runtime runs each invocation in a new thread)."""
    connection = getattr(_local, "connection", None)
    if connection is not None:
        _local.connection = None
        if connection in _all_connections:
            _all_connections.remove(connection)
        connection.close()


def reset_shared_connection() -> None:
    """Close every thread's connection (tests and the local runtime switch databases)."""
    while _all_connections:
        connection = _all_connections.pop()
        if not connection.closed:
            connection.close()
    _local.__dict__.clear()
    database_url.cache_clear()


@contextmanager
def database_errors() -> Iterator[None]:
    """Turn a lost connection into the transient DatabaseUnavailable (Step Functions retries it)."""
    try:
        yield
    except psycopg.OperationalError as exc:
        # Only this thread's connection: a Parallel branch's outage must not close its sibling's.
        release_thread_connection()
        raise DatabaseUnavailable(f"PostgreSQL connection failed: {exc}") from exc
