"""PostgreSQL connections (psycopg 3), created lazily and mapped to the error taxonomy."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from worldgen.errors import ConfigurationError, DatabaseUnavailable
from worldgen.settings import get_settings

# One connection per Lambda execution environment. Lambda runs one invocation at a time per
# environment; the local runtime runs Parallel branches in threads of one process, so the
# connection is per thread, which is the same thing in Lambda.
_local = threading.local()


_url_lock = threading.Lock()
_url: dict[str, str] = {}  # the connection string this process read, until a rotation replaces it


def database_url(*, refresh: bool = False) -> str:
    """The connection string from settings, else from the Secrets Manager secret (JSON of RDS's
    shape or a URL), read once per process; ``refresh`` reads the secret again (a rotation).

    A rotation changes the password and then moves the secret's AWSCURRENT label to the new value
    (docs.aws.amazon.com/secretsmanager/latest/userguide/rotate-secrets_lambda.html): a warm
    function's cached value fails its next login, which is when it reads the secret again."""
    with _url_lock:
        if refresh or "url" not in _url:
            _url["url"] = _configured_url(refresh=refresh)
        return _url["url"]


def forget_database_url() -> None:
    with _url_lock:
        _url.clear()


def _configured_url(*, refresh: bool) -> str:
    settings = get_settings()
    if settings.database_url:
        if not settings.database_sslmode:
            return settings.database_url
        return with_connection_options(conninfo_to_dict(settings.database_url))
    if settings.database_secret_arn:
        from aws_lambda_powertools.utilities import parameters

        # force_fetch skips Powertools' cache (max_age): after a failed login the secret is read anew.
        raw = str(parameters.get_secret(settings.database_secret_arn, max_age=300, force_fetch=refresh))
        return secret_conninfo(raw)
    raise ConfigurationError(
        "no database configured: set WORLDGEN_DATABASE_URL (or DATABASE_URL) or WORLDGEN_DATABASE_SECRET_ARN"
    )


def secret_conninfo(raw: str) -> str:
    """The connection string of a database secret: RDS's JSON shape, or a URL (``postgresql://``).

    With RDS Proxy configured, either form connects to the proxy's endpoint, never to the host the
    secret names (a URL would otherwise bypass the proxy and use one database connection per
    Lambda environment; clients connect to the proxy's endpoint in place of the database's,
    docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-proxy-connecting.html)."""
    if raw.lstrip().startswith("postgres"):
        params = conninfo_to_dict(raw)
    else:
        try:
            secret = json.loads(raw)
            params = {
                "user": secret["username"],
                "password": secret["password"],
                "host": secret["host"],
                "port": secret.get("port", 5432),
                "dbname": secret.get("dbname", "postgres"),
            }
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(
                "the database secret is neither a postgresql:// URL nor RDS's JSON shape"
                " (username, password, host[, port, dbname])"
            ) from exc
    proxy = get_settings().database_proxy_endpoint
    if proxy:
        params.pop("hostaddr", None)
        params["host"] = proxy
    return with_connection_options(params)


def with_connection_options(params: dict[str, Any]) -> str:
    """``params`` as a libpq connection string, with the configured ``sslmode`` (staging and prod
    require TLS: the setting wins over what the URL or secret says). A proxy that requires TLS
    refuses plain connections (docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-proxy.howitworks.html,
    "TLS/SSL"); libpq's sslmode is https://www.postgresql.org/docs/current/libpq-ssl.html."""
    sslmode = get_settings().database_sslmode
    if sslmode:
        params = {**params, "sslmode": sslmode}
    return make_conninfo(**{k: v for k, v in params.items() if v is not None})


def connect(url: str | None = None, *, autocommit: bool = True) -> psycopg.Connection[dict[str, Any]]:
    """A connection in autocommit mode: every write goes through an explicit ``conn.transaction()``.

    Behind RDS Proxy, server-side prepared statements would pin each client to one database
    connection, so psycopg never prepares (``prepare_threshold=None``).
    """
    behind_proxy = get_settings().database_proxy_endpoint is not None
    try:
        connection = _open(url or database_url(), autocommit)
    except DatabaseUnavailable:
        if url is not None or not get_settings().database_secret_arn:
            raise
        # The secret may have been rotated since this environment read it (a warm Lambda keeps
        # its string for its life): read it again and, if it changed, log in with the new one.
        stale = database_url()
        if database_url(refresh=True) == stale:
            raise
        connection = _open(database_url(), autocommit)
    if behind_proxy:
        connection.prepare_threshold = None
    return connection


def _open(conninfo: str, autocommit: bool) -> psycopg.Connection[dict[str, Any]]:
    try:
        return psycopg.connect(conninfo, autocommit=autocommit, row_factory=dict_row, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc


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
    forget_database_url()


@contextmanager
def database_errors() -> Iterator[None]:
    """Turn a lost connection into the transient DatabaseUnavailable (Step Functions retries it)."""
    try:
        yield
    except psycopg.OperationalError as exc:
        # Only this thread's connection: a Parallel branch's outage must not close its sibling's.
        release_thread_connection()
        raise DatabaseUnavailable(f"PostgreSQL connection failed: {exc}") from exc
