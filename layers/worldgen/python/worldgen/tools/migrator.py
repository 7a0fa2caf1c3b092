"""Applies Hasura-format migrations and records them where the Hasura CLI does.

``infra/hasura/migrations/default/<version>_<name>/{up,down}.sql`` are read by both
``hasura migrate apply`` and this migrator; both record applied versions in
``hdb_catalog.schema_migrations (version bigint primary key, dirty boolean)``, so either tool
sees what the other applied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from worldgen.tools.repo import MIGRATIONS_DIR

# Any constant works; it only has to be the same for every migrator.
MIGRATION_LOCK_ID = 0x776F726C64  # "world"
_FOLDER = re.compile(r"^(\d{13})_([a-z0-9_]+)$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    folder: Path

    @property
    def up_sql(self) -> Path:
        return self.folder / "up.sql"

    @property
    def down_sql(self) -> Path:
        return self.folder / "down.sql"


class MigrationFailed(RuntimeError):
    """A migration file failed; the database stays at the last good version."""


def discover(migrations_dir: Path | None = None) -> list[Migration]:
    root = migrations_dir or MIGRATIONS_DIR
    found = []
    for folder in sorted(root.iterdir()):
        match = _FOLDER.match(folder.name)
        if folder.is_dir() and match:
            found.append(Migration(int(match.group(1)), match.group(2), folder))
    return sorted(found, key=lambda m: m.version)


def _ensure_version_table(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS hdb_catalog")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS hdb_catalog.schema_migrations"
        " (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)"
    )


def applied_versions(conn: psycopg.Connection[Any]) -> list[int]:
    exists = conn.execute("SELECT to_regclass('hdb_catalog.schema_migrations') IS NOT NULL AS ok").fetchone()
    if not exists or not _first(exists):
        return []
    rows = conn.execute("SELECT version FROM hdb_catalog.schema_migrations ORDER BY version").fetchall()
    return [_first(row) for row in rows]


def _first(row: Any) -> Any:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def _run_file(conn: psycopg.Connection[Any], path: Path) -> None:
    try:
        conn.execute(path.read_bytes())  # trusted files of the repo, several statements each
    except psycopg.Error as exc:
        raise MigrationFailed(f"{path}: {exc.diag.message_primary or exc}") from exc


def migrate(url: str, *, migrations_dir: Path | None = None) -> list[Migration]:
    """Apply every pending migration, each in its own transaction. Returns what was applied."""
    applied: list[Migration] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        try:
            _ensure_version_table(conn)
            done = set(applied_versions(conn))
            for migration in discover(migrations_dir):
                if migration.version in done:
                    continue
                with conn.transaction():
                    _run_file(conn, migration.up_sql)
                    conn.execute(
                        "INSERT INTO hdb_catalog.schema_migrations (version, dirty) VALUES (%s, false)",
                        (migration.version,),
                    )
                applied.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
    return applied


def migrate_down(url: str, steps: int, *, migrations_dir: Path | None = None) -> list[Migration]:
    """Revert the ``steps`` most recent applied migrations, newest first."""
    reverted: list[Migration] = []
    by_version = {m.version: m for m in discover(migrations_dir)}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        try:
            for version in list(reversed(applied_versions(conn)))[:steps]:
                migration = by_version.get(version)
                if migration is None:
                    raise MigrationFailed(f"version {version} is applied but has no folder on disk")
                with conn.transaction():
                    _run_file(conn, migration.down_sql)
                    conn.execute("DELETE FROM hdb_catalog.schema_migrations WHERE version = %s", (version,))
                reverted.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
    return reverted
