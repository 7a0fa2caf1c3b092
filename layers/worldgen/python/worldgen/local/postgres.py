"""Embedded PostgreSQL (pgserver) for laptops and tests, when no DATABASE_URL is set."""

from __future__ import annotations

import os
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from worldgen.repository.migrator import migrate
from worldgen.settings import get_settings


def ensure_runtime_dir() -> None:
    """pgserver moves its socket to XDG_RUNTIME_DIR when the data path is long: give it a short,
    private (0700) folder, as the XDG spec wants, so a deep clone path works without a warning."""
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = Path(tempfile.gettempdir()) / f"worldgen-runtime-{os.getuid()}"
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)


@cache
def embedded_server(data_dir: Path | None = None) -> Any:
    """Start (or reuse) pgserver with its data under ``<home>/pgdata`` (worldgen.local.home); stopped at exit."""
    from worldgen.local.home import PGDATA, worldgen_home

    ensure_runtime_dir()
    import pgserver  # of the [local] extra: imported only when the embedded server is wanted

    root = (data_dir or worldgen_home()).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return pgserver.get_server(root / PGDATA, cleanup_mode="stop")


def local_database_url(database: str = "worldgen") -> str:
    """The configured DATABASE_URL, else a database of the embedded server (created if absent)."""
    settings = get_settings()
    if settings.database_url:
        return settings.database_url
    from worldgen.local.home import old_database_notice

    notice = old_database_notice()
    if notice:
        print(notice, file=sys.stderr)
    server = embedded_server()
    admin_url = server.get_uri()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    return str(server.get_uri(database))


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database of the same server."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = database
    return psycopg.conninfo.make_conninfo("", **info)


def migrated_template(admin_url: str, template: str = "worldgen_template") -> str:
    """A migrated template database (made once); clones of it are the tests' fresh databases."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (template,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(template)))
    url = with_database(admin_url, template)
    migrate(url)  # a no-op when nothing is pending
    return template


def clone_database(admin_url: str, template: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template)))
    return with_database(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
