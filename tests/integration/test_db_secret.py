"""The production database path: the secret (URL or RDS JSON) through RDS Proxy, TLS, and rotation."""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from moto import mock_aws
from psycopg.conninfo import conninfo_to_dict

from worldgen.db.connection import connect, database_url, forget_database_url
from worldgen.errors import DatabaseUnavailable
from worldgen.settings import get_settings

PROXY = "worldgen.proxy-abc.eu-west-1.rds.amazonaws.com"


@pytest.fixture
def secret(settings_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    """A Secrets Manager secret (moto) that the settings name instead of a database URL."""
    monkeypatch.delenv("WORLDGEN_DATABASE_URL")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    from aws_lambda_powertools.utilities.parameters import base

    # Powertools keeps one Secrets Manager client per process (made in whatever region an earlier
    # test had): this test's secret lives in eu-west-1 of this mock.
    base.DEFAULT_PROVIDERS.clear()
    with mock_aws():
        import boto3

        client = boto3.client("secretsmanager", region_name="eu-west-1")
        arn = client.create_secret(Name="worldgen/test/database", SecretString="{}")["ARN"]
        monkeypatch.setenv("WORLDGEN_DATABASE_SECRET_ARN", arn)
        get_settings.cache_clear()
        forget_database_url()
        yield client, arn
    base.DEFAULT_PROVIDERS.clear()
    forget_database_url()
    get_settings.cache_clear()


def rds_json(url: str, user: str | None = None) -> str:
    """The test database in the JSON shape RDS writes into a secret."""
    params = conninfo_to_dict(url)
    return json.dumps(
        {
            "username": user or params.get("user", "postgres"),
            "password": params.get("password") or "unused",
            "host": params["host"],
            "port": int(params.get("port") or 5432),
            "dbname": params["dbname"],
        }
    )


def test_a_url_form_secret_connects_to_rds_proxy_when_one_is_configured(secret, settings_env, monkeypatch):
    client, arn = secret
    client.put_secret_value(SecretId=arn, SecretString="postgresql://app:s3cret@db.internal:5432/worldgen")
    monkeypatch.setenv("WORLDGEN_DATABASE_PROXY_ENDPOINT", PROXY)
    get_settings.cache_clear()

    params = conninfo_to_dict(database_url())

    assert params["host"] == PROXY  # never the database host the URL names: that would bypass the proxy
    assert (params["user"], params["password"], params["dbname"], params["port"]) == (
        "app",
        "s3cret",
        "worldgen",
        "5432",
    )


def test_staging_and_prod_require_tls_on_every_connection(secret, settings_env, monkeypatch):
    client, arn = secret
    client.put_secret_value(SecretId=arn, SecretString=rds_json(settings_env))
    with connect() as plain:  # the test server speaks no TLS: without sslmode it connects
        assert plain.execute("SELECT 1 AS one").fetchone() == {"one": 1}

    monkeypatch.setenv("WORLDGEN_DATABASE_SSLMODE", "require")
    get_settings.cache_clear()
    forget_database_url()

    assert conninfo_to_dict(database_url())["sslmode"] == "require"
    # libpq applies sslmode to TCP connections (the test server listens on a Unix socket only,
    # where TLS does not apply): the connection was opened with it.
    with connect() as tls:
        assert conninfo_to_dict(tls.info.dsn)["sslmode"] == "require"


def test_a_warm_function_reads_a_rotated_secret_again_when_its_login_fails(secret, settings_env, db_url):
    client, arn = secret
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute("CREATE ROLE worldgen_before LOGIN SUPERUSER")
        admin.execute("CREATE ROLE worldgen_after LOGIN SUPERUSER")
    client.put_secret_value(SecretId=arn, SecretString=rds_json(settings_env, user="worldgen_before"))
    with connect() as first:
        assert first.execute("SELECT current_user AS u").fetchone() == {"u": "worldgen_before"}

    # Rotation: the secret gets the new credentials, and the old ones stop working.
    client.put_secret_value(SecretId=arn, SecretString=rds_json(settings_env, user="worldgen_after"))
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute("DROP ROLE worldgen_before")

    with connect() as after:  # the cached string fails; the secret is read again and the login retried
        assert after.execute("SELECT current_user AS u").fetchone() == {"u": "worldgen_after"}
    assert conninfo_to_dict(database_url())["user"] == "worldgen_after"


def test_an_unchanged_secret_whose_login_fails_is_the_transient_database_error(secret, settings_env, db_url):
    client, arn = secret
    client.put_secret_value(SecretId=arn, SecretString=rds_json(settings_env, user="nobody_at_all"))

    with pytest.raises(DatabaseUnavailable, match="nobody_at_all"):
        connect()


def test_with_tls_required_a_server_without_tls_is_refused(secret, settings_env, monkeypatch):
    """A stand-in PostgreSQL on loopback that answers libpq's SSLRequest with "no TLS" ('N')."""
    client, arn = secret
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    asked: list[bytes] = []

    def answer() -> None:
        with listener:
            peer, _ = listener.accept()
            with peer:
                asked.append(peer.recv(8))  # length 8, code 80877103: the SSLRequest
                peer.sendall(b"N")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    secret_value = {"username": "app", "password": "pw", "host": "127.0.0.1", "port": port, "dbname": "worldgen"}
    client.put_secret_value(SecretId=arn, SecretString=json.dumps(secret_value))
    monkeypatch.setenv("WORLDGEN_DATABASE_SSLMODE", "require")
    get_settings.cache_clear()

    with pytest.raises(DatabaseUnavailable, match="SSL"):
        connect()
    thread.join(5)
    assert asked == [struct.pack("!ii", 8, 80877103)]
