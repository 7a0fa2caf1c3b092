"""Applies Hasura-format migrations and keeps one migration record with the Hasura CLI.

``infra/hasura/migrations/default/<version>_<name>/{up,down}.sql`` are read by both
``hasura migrate apply`` and this migrator. Where the two record what they applied (read in the
Hasura v2 CLI's ``internal/statestore`` and ``migrate`` packages):

- **Catalog state** (config ``version: 3``): the server keeps the CLI's state in the JSONB column
  ``hdb_catalog.hdb_version.cli_state`` (one row), shaped
  ``{"migrations": {"<source>": {"<version>": <dirty>}}, "settings": {...},
  "isStateCopyCompleted": <bool>}``; the CLI reads and writes it through ``get_catalog_state`` /
  ``set_catalog_state``.
- **``hdb_catalog.schema_migrations (version bigint primary key, dirty boolean)``**: the config v2
  record. A config v3 CLI copies it into the catalog state once, on its first run after the server
  created the catalog (while ``isStateCopyCompleted`` is false), then never reads it again.

So the record the CLI will act on is: the table alone while the server has not created
``hdb_version`` yet; the table plus the catalog state until the copy is done; the catalog state alone
after it. ``applied_versions`` reads exactly that, and every up or down step writes both places in
the transaction that runs the file, so the two tools see the same versions in either order.

``hdb_version`` is never created here: the server decides whether to initialise its whole catalog by
whether that table exists, so a table made by anyone else would make its first start skip
``initialise.sql``. Until the server creates it, ``schema_migrations`` is the record and the CLI's
one-time copy carries it over.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from worldgen.repository.paths import MIGRATIONS_DIR

# Any constant works; it only has to be the same for every migrator.
MIGRATION_LOCK_ID = 0x776F726C64  # "world"
# The Hasura source the migrations belong to: infra/hasura/migrations/<source>/, databases.yaml's name.
SOURCE = "default"
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
    """A migration file failed, or the record is in a state no tool should migrate from."""


def discover(migrations_dir: Path | None = None) -> list[Migration]:
    root = migrations_dir or MIGRATIONS_DIR
    found = []
    for folder in sorted(root.iterdir()):
        match = _FOLDER.match(folder.name)
        if folder.is_dir() and match:
            found.append(Migration(int(match.group(1)), match.group(2), folder))
    return sorted(found, key=lambda m: m.version)


def _first(row: Any) -> Any:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def _exists(conn: psycopg.Connection[Any], relation: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()
    return bool(row and _first(row))


def _ensure_version_table(conn: psycopg.Connection[Any]) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS hdb_catalog")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS hdb_catalog.schema_migrations"
        " (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)"
    )


def _table_versions(conn: psycopg.Connection[Any]) -> dict[int, bool]:
    if not _exists(conn, "hdb_catalog.schema_migrations"):
        return {}
    rows = conn.execute("SELECT version, dirty FROM hdb_catalog.schema_migrations").fetchall()
    return {int(_first(row)): bool(row["dirty"] if isinstance(row, dict) else row[1]) for row in rows}


def _cli_state(conn: psycopg.Connection[Any], *, lock: bool = False) -> dict[str, Any] | None:
    """The server's ``cli_state``, or None while the server has not created its catalog."""
    if not _exists(conn, "hdb_catalog.hdb_version"):
        return None
    row = conn.execute("SELECT cli_state FROM hdb_catalog.hdb_version" + (" FOR UPDATE" if lock else "")).fetchone()
    if row is None:
        return None
    state = _first(row)
    return state if isinstance(state, dict) else {}


def _state_versions(state: dict[str, Any], source: str) -> dict[int, bool]:
    recorded = (state.get("migrations") or {}).get(source) or {}
    try:
        return {int(version): bool(dirty) for version, dirty in recorded.items()}
    except ValueError as exc:
        raise MigrationFailed(f"hdb_catalog.hdb_version.cli_state: migration version is not a number: {exc}") from exc


def recorded(conn: psycopg.Connection[Any], source: str = SOURCE) -> dict[int, bool]:
    """Version -> dirty, as the Hasura CLI would see it (see the module docstring)."""
    table = _table_versions(conn)
    state = _cli_state(conn)
    if state is None:
        return table
    catalog = _state_versions(state, source)
    if state.get("isStateCopyCompleted"):
        return catalog
    return {**table, **catalog}


def applied_versions(conn: psycopg.Connection[Any], source: str = SOURCE) -> list[int]:
    return sorted(recorded(conn, source))


def _record(conn: psycopg.Connection[Any], version: int, *, applied: bool, source: str) -> None:
    """Add or remove one version in both records, inside the caller's transaction."""
    if applied:
        conn.execute(
            "INSERT INTO hdb_catalog.schema_migrations (version, dirty) VALUES (%s, false)"
            " ON CONFLICT (version) DO UPDATE SET dirty = false",
            (version,),
        )
    else:
        conn.execute("DELETE FROM hdb_catalog.schema_migrations WHERE version = %s", (version,))
    state = _cli_state(conn, lock=True)
    if state is None:
        return
    migrations = state.setdefault("migrations", {}) or {}
    state["migrations"] = migrations
    versions = migrations.setdefault(source, {}) or {}
    migrations[source] = versions
    if applied:
        versions[str(version)] = False
    else:
        versions.pop(str(version), None)
    state.setdefault("settings", {})
    conn.execute("UPDATE hdb_catalog.hdb_version SET cli_state = %s", (Jsonb(state),))


def _sync_table(conn: psycopg.Connection[Any], versions: dict[int, bool]) -> None:
    """Make schema_migrations say what the CLI's record says (the CLI alone may have moved it)."""
    conn.execute("DELETE FROM hdb_catalog.schema_migrations WHERE NOT (version = ANY(%s))", (list(versions),))
    for version, dirty in versions.items():
        conn.execute(
            "INSERT INTO hdb_catalog.schema_migrations (version, dirty) VALUES (%s, %s)"
            " ON CONFLICT (version) DO UPDATE SET dirty = excluded.dirty",
            (version, dirty),
        )


def _refuse_dirty(versions: dict[int, bool]) -> None:
    dirty = sorted(version for version, flag in versions.items() if flag)
    if dirty:
        raise MigrationFailed(
            f"version {dirty[0]} is marked dirty (a Hasura CLI run failed half-way): fix the database, then "
            f"`hasura migrate apply --version {dirty[0]} --skip-execution` (or --type down) to clear the flag"
        )


def _run_file(conn: psycopg.Connection[Any], path: Path) -> None:
    try:
        conn.execute(path.read_bytes())  # trusted files of the repo, several statements each
    except psycopg.Error as exc:
        raise MigrationFailed(f"{path}: {exc.diag.message_primary or exc}") from exc


def _prepare(conn: psycopg.Connection[Any], source: str) -> dict[int, bool]:
    _ensure_version_table(conn)
    with conn.transaction():
        versions = recorded(conn, source)
        _sync_table(conn, versions)
    _refuse_dirty(versions)
    return versions


def migrate(url: str, *, migrations_dir: Path | None = None, source: str = SOURCE) -> list[Migration]:
    """Apply every pending migration, each in its own transaction. Returns what was applied."""
    applied: list[Migration] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        try:
            done = _prepare(conn, source)
            for migration in discover(migrations_dir):
                if migration.version in done:
                    continue
                with conn.transaction():
                    _run_file(conn, migration.up_sql)
                    _record(conn, migration.version, applied=True, source=source)
                applied.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
    return applied


def migrate_down(url: str, steps: int, *, migrations_dir: Path | None = None, source: str = SOURCE) -> list[Migration]:
    """Revert the ``steps`` most recent applied migrations, newest first."""
    reverted: list[Migration] = []
    by_version = {m.version: m for m in discover(migrations_dir)}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        try:
            done = _prepare(conn, source)
            for version in sorted(done, reverse=True)[:steps]:
                migration = by_version.get(version)
                if migration is None:
                    raise MigrationFailed(f"version {version} is applied but has no folder on disk")
                with conn.transaction():
                    _run_file(conn, migration.down_sql)
                    _record(conn, version, applied=False, source=source)
                reverted.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
    return reverted
