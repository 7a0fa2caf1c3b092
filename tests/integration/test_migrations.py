"""The Hasura-format migrations applied by worldgen's migrator on a real PostgreSQL.

Tests that need an unmigrated database create a scratch one on the session's server and drop it.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from worldgen.local.postgres import drop_database, with_database
from worldgen.repository.migrator import Migration, MigrationFailed, applied_versions, discover, migrate, migrate_down

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "infra" / "hasura" / "migrations" / "default"
ALL_VERSIONS = [m.version for m in discover(MIGRATIONS_DIR)]


def public_tables(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").fetchall()
    return {row[0] for row in rows}


def recorded_versions(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return applied_versions(conn)


@pytest.fixture
def empty_db_url(admin_url: str) -> Iterator[str]:
    """A brand-new database with nothing migrated."""
    name = f"scratch_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    yield with_database(admin_url, name)
    drop_database(admin_url, name)


def test_migrated_database_has_the_45_tables(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        assert len(public_tables(conn)) == 45


def test_every_table_and_every_column_has_a_comment(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        tables = conn.execute(
            """
            SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind = 'r'
              AND coalesce(obj_description(c.oid, 'pg_class'), '') = ''
            """
        ).fetchall()
        columns = conn.execute(
            """
            SELECT c.relname, a.attname FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            WHERE n.nspname = 'public' AND c.relkind = 'r' AND coalesce(col_description(c.oid, a.attnum), '') = ''
            """
        ).fetchall()
    assert tables == []
    assert columns == []


def test_migrating_a_migrated_database_again_is_a_no_op(db_url: str) -> None:
    assert migrate(db_url, migrations_dir=MIGRATIONS_DIR) == []
    assert recorded_versions(db_url) == ALL_VERSIONS


def test_migrating_an_empty_database_applies_and_records_every_version(empty_db_url: str) -> None:
    applied = migrate(empty_db_url, migrations_dir=MIGRATIONS_DIR)
    assert [m.version for m in applied] == ALL_VERSIONS
    assert recorded_versions(empty_db_url) == ALL_VERSIONS


def test_migrating_all_the_way_down_removes_every_table_and_version_and_up_again_works(db_url: str) -> None:
    reverted = migrate_down(db_url, len(ALL_VERSIONS), migrations_dir=MIGRATIONS_DIR)

    assert [m.version for m in reverted] == list(reversed(ALL_VERSIONS))
    with psycopg.connect(db_url) as conn:
        assert public_tables(conn) == set()
    assert recorded_versions(db_url) == []

    reapplied = migrate(db_url, migrations_dir=MIGRATIONS_DIR)
    assert [m.version for m in reapplied] == ALL_VERSIONS
    with psycopg.connect(db_url) as conn:
        assert len(public_tables(conn)) == 45


def test_migrating_down_one_step_reverts_only_the_newest_migration(db_url: str) -> None:
    newest = discover(MIGRATIONS_DIR)[-1]
    reverted = migrate_down(db_url, 1, migrations_dir=MIGRATIONS_DIR)
    assert reverted == [newest]
    assert recorded_versions(db_url) == ALL_VERSIONS[:-1]
    with psycopg.connect(db_url) as conn:
        tables = public_tables(conn)
        columns = {
            (r[0], r[1])
            for r in conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_name IN ('model_calls', 'entities', 'faction_relationships', 'entity_items')"
            ).fetchall()
        }
    assert newest.name == "row_rerolls"
    assert ("model_calls", "reroll_id") not in columns  # the newest step undone
    assert "row_rerolls" not in tables
    assert ("entities", "gm_notes") in columns  # the one before it (secrets) kept
    assert ("model_calls", "part") in columns  # the one before it kept
    assert "pc_connections" in tables


def copy_migrations(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, target)
    return target


def test_broken_migration_appended_fails_naming_the_file_and_postgres_message(
    empty_db_url: str, tmp_path: Path
) -> None:
    migrations = copy_migrations(tmp_path)
    broken = migrations / "9999999999999_broken" / "up.sql"
    broken.parent.mkdir()
    broken.write_text("CREATE TABLE public.half_done (id integer);\nCREATE TABLE public.oops (id nonsense_type);\n")

    with pytest.raises(MigrationFailed) as raised:
        migrate(empty_db_url, migrations_dir=migrations)

    assert str(broken) in str(raised.value)
    assert 'type "nonsense_type" does not exist' in str(raised.value)
    assert recorded_versions(empty_db_url) == ALL_VERSIONS
    with psycopg.connect(empty_db_url) as conn:
        tables = public_tables(conn)
    assert len(tables) == 45
    assert "half_done" not in tables  # the broken file's own transaction was rolled back


def test_broken_migration_in_the_middle_leaves_the_database_at_the_last_good_version(
    empty_db_url: str, tmp_path: Path
) -> None:
    migrations = copy_migrations(tmp_path)
    middle = discover(migrations)[5]  # phase 2B: locations, dungeons, buildings
    assert middle.name == "phase_2b_pc_connected_locations"
    # The file's first statements succeed; a later one fails, so only the transaction keeps it atomic.
    middle.up_sql.write_text(middle.up_sql.read_text() + "\nSELECT * FROM no_such_table;\n")

    with pytest.raises(MigrationFailed) as raised:
        migrate(empty_db_url, migrations_dir=migrations)

    assert str(middle.up_sql) in str(raised.value)
    assert 'relation "no_such_table" does not exist' in str(raised.value)
    assert recorded_versions(empty_db_url) == ALL_VERSIONS[:5]
    with psycopg.connect(empty_db_url) as conn:
        tables = public_tables(conn)
    assert {"locations", "dungeons", "buildings", "items", "pc_connections"}.isdisjoint(tables)
    assert {"campaigns", "races", "deities", "entities"} <= tables
    assert len(tables) == 5 + 7 + 4 + 5 + 1


def test_fixing_a_broken_migration_lets_the_next_run_finish(empty_db_url: str, tmp_path: Path) -> None:
    migrations = copy_migrations(tmp_path)
    middle = discover(migrations)[5]
    good = middle.up_sql.read_text()
    middle.up_sql.write_text(good + "\nSELECT * FROM no_such_table;\n")
    with pytest.raises(MigrationFailed):
        migrate(empty_db_url, migrations_dir=migrations)

    middle.up_sql.write_text(good)
    applied = migrate(empty_db_url, migrations_dir=migrations)

    assert [m.version for m in applied] == ALL_VERSIONS[5:]
    assert recorded_versions(empty_db_url) == ALL_VERSIONS


def test_two_migrators_racing_on_an_empty_database_apply_each_version_once(empty_db_url: str) -> None:
    results: list[list[int]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run() -> None:
        try:
            start.wait()
            results.append([m.version for m in migrate(empty_db_url, migrations_dir=MIGRATIONS_DIR)])
        except BaseException as exc:  # surfaced below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert len(results) == 2
    # The advisory lock serialises them: one applies everything, the other finds nothing pending.
    assert sorted(results, key=len) == [[], ALL_VERSIONS]
    with psycopg.connect(empty_db_url) as conn:
        counts = conn.execute(
            "SELECT version, count(*) FROM hdb_catalog.schema_migrations GROUP BY version ORDER BY version"
        ).fetchall()
        assert len(public_tables(conn)) == 45
    assert counts == [(version, 1) for version in ALL_VERSIONS]


# --- One record with the Hasura CLI -------------------------------------------------------------
# What a Hasura v2 server and a config v3 CLI do to the database, reduced to the SQL they end up
# running (read in hasura/graphql-engine: server/src-rsr/initialise.sql and Hasura/Server/Migrate.hs
# for the catalog; cli/internal/statestore/statestore.go (CLIState), statestore/migrations/
# catalogstate.go and cli/migrate/util.go (copyStateToCatalogStateAPIIfRequired) for the CLI).


def server_creates_catalog(url: str) -> None:
    """The server's first start: hdb_version as initialise.sql makes it, one row, empty cli_state."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS hdb_catalog")
        conn.execute(
            "CREATE FUNCTION hdb_catalog.gen_hasura_uuid() RETURNS uuid AS 'select gen_random_uuid()' LANGUAGE SQL"
        )
        conn.execute(
            """
            CREATE TABLE hdb_catalog.hdb_version (
                hasura_uuid UUID PRIMARY KEY DEFAULT hdb_catalog.gen_hasura_uuid(),
                version TEXT NOT NULL,
                upgraded_on TIMESTAMPTZ NOT NULL,
                cli_state JSONB NOT NULL DEFAULT '{}'::jsonb,
                console_state JSONB NOT NULL DEFAULT '{}'::jsonb
            )
            """
        )
        conn.execute("CREATE UNIQUE INDEX hdb_version_one_row ON hdb_catalog.hdb_version((version IS NOT NULL))")
        conn.execute("INSERT INTO hdb_catalog.hdb_version (version, upgraded_on) VALUES ('48', now())")


def cli_state(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    row = conn.execute("SELECT cli_state FROM hdb_catalog.hdb_version").fetchone()
    assert row is not None
    return dict(row[0])


def set_cli_state(conn: psycopg.Connection[Any], state: dict[str, Any]) -> None:
    conn.execute("UPDATE hdb_catalog.hdb_version SET cli_state = %s", (Jsonb(state),))


def cli_versions(url: str) -> dict[int, bool]:
    """What `hasura migrate status` sees: the one-time copy of schema_migrations, then the catalog state."""
    with psycopg.connect(url, autocommit=True) as conn:
        state = cli_state(conn)
        state.setdefault("migrations", {})
        state.setdefault("settings", {})
        if not state.get("isStateCopyCompleted"):
            if conn.execute("SELECT to_regclass('hdb_catalog.schema_migrations')").fetchone() != (None,):
                for version, dirty in conn.execute("SELECT version, dirty FROM hdb_catalog.schema_migrations"):
                    state["migrations"].setdefault("default", {})[str(version)] = dirty
            state["isStateCopyCompleted"] = True
            set_cli_state(conn, state)
        return {int(v): d for v, d in state["migrations"].get("default", {}).items()}


def cli_apply(url: str, migrations: list[Migration]) -> list[int]:
    """`hasura migrate apply` (config v3): runs what its record lacks, records in the catalog state only."""
    done = cli_versions(url)
    ran = []
    with psycopg.connect(url, autocommit=True) as conn:
        for migration in migrations:
            if migration.version in done:
                continue
            conn.execute(migration.up_sql.read_bytes())
            state = cli_state(conn)
            state["migrations"].setdefault("default", {})[str(migration.version)] = False
            set_cli_state(conn, state)
            ran.append(migration.version)
    return ran


def table_versions(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM hdb_catalog.schema_migrations ORDER BY 1")]


def catalog_versions(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return sorted(int(v) for v in cli_state(conn).get("migrations", {}).get("default", {}))


def test_after_hasura_migrate_apply_worldgen_reruns_nothing_and_fills_schema_migrations(empty_db_url: str) -> None:
    server_creates_catalog(empty_db_url)
    assert cli_apply(empty_db_url, discover(MIGRATIONS_DIR)) == ALL_VERSIONS
    assert not table_versions_exist(empty_db_url)  # config v3 keeps no table

    assert migrate(empty_db_url, migrations_dir=MIGRATIONS_DIR) == []  # no "relation campaigns already exists"

    assert recorded_versions(empty_db_url) == ALL_VERSIONS
    assert table_versions(empty_db_url) == ALL_VERSIONS
    assert catalog_versions(empty_db_url) == ALL_VERSIONS


def table_versions_exist(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT to_regclass('hdb_catalog.schema_migrations')").fetchone() != (None,)


def test_cli_applies_some_worldgen_the_rest_and_the_cli_then_sees_all(empty_db_url: str) -> None:
    server_creates_catalog(empty_db_url)
    cli_apply(empty_db_url, discover(MIGRATIONS_DIR)[:4])

    applied = migrate(empty_db_url, migrations_dir=MIGRATIONS_DIR)

    assert [m.version for m in applied] == ALL_VERSIONS[4:]
    assert cli_versions(empty_db_url) == dict.fromkeys(ALL_VERSIONS, False)
    assert cli_apply(empty_db_url, discover(MIGRATIONS_DIR)) == []
    assert table_versions(empty_db_url) == ALL_VERSIONS


def test_worldgen_before_the_server_leaves_hdb_version_to_it_and_the_cli_copy_sees_every_version(
    empty_db_url: str,
) -> None:
    migrate(empty_db_url, migrations_dir=MIGRATIONS_DIR)
    with psycopg.connect(empty_db_url) as conn:
        # The server initialises its catalog only when hdb_version is absent: worldgen must not make it.
        assert conn.execute("SELECT to_regclass('hdb_catalog.hdb_version')").fetchone() == (None,)

    server_creates_catalog(empty_db_url)

    assert cli_versions(empty_db_url) == dict.fromkeys(ALL_VERSIONS, False)
    assert cli_apply(empty_db_url, discover(MIGRATIONS_DIR)) == []


def test_worldgen_after_the_server_writes_the_catalog_state_the_cli_reads_without_copying(empty_db_url: str) -> None:
    server_creates_catalog(empty_db_url)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        set_cli_state(conn, {"settings": {"migration_mode": "true"}, "isStateCopyCompleted": True})

    migrate(empty_db_url, migrations_dir=MIGRATIONS_DIR)

    with psycopg.connect(empty_db_url) as conn:
        state = cli_state(conn)
    assert state["migrations"] == {"default": {str(v): False for v in ALL_VERSIONS}}
    assert state["settings"] == {"migration_mode": "true"}  # the rest of the CLI's state is kept
    assert state["isStateCopyCompleted"] is True
    assert cli_apply(empty_db_url, discover(MIGRATIONS_DIR)) == []


def test_migrating_down_removes_versions_from_both_records_and_follows_a_cli_down(empty_db_url: str) -> None:
    server_creates_catalog(empty_db_url)
    migrate(empty_db_url, migrations_dir=MIGRATIONS_DIR)

    migrate_down(empty_db_url, 2, migrations_dir=MIGRATIONS_DIR)
    assert table_versions(empty_db_url) == catalog_versions(empty_db_url) == ALL_VERSIONS[:-2]
    assert cli_versions(empty_db_url) == dict.fromkeys(ALL_VERSIONS[:-2], False)

    # `hasura migrate apply --down 1`: runs down.sql, removes the version from the catalog state only.
    third = discover(MIGRATIONS_DIR)[-3]
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute(third.down_sql.read_bytes())
        state = cli_state(conn)
        del state["migrations"]["default"][str(third.version)]
        set_cli_state(conn, state)

    reapplied = migrate(empty_db_url, migrations_dir=MIGRATIONS_DIR)

    assert [m.version for m in reapplied] == ALL_VERSIONS[-3:]
    assert table_versions(empty_db_url) == catalog_versions(empty_db_url) == ALL_VERSIONS


def test_a_version_the_cli_left_dirty_stops_worldgen_with_a_one_line_error(empty_db_url: str) -> None:
    server_creates_catalog(empty_db_url)
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        set_cli_state(conn, {"migrations": {"default": {str(ALL_VERSIONS[0]): True}}, "isStateCopyCompleted": True})

    with pytest.raises(MigrationFailed) as raised:
        migrate(empty_db_url, migrations_dir=MIGRATIONS_DIR)

    assert f"version {ALL_VERSIONS[0]} is marked dirty" in str(raised.value)
    assert "\n" not in str(raised.value)
    with psycopg.connect(empty_db_url) as conn:
        assert public_tables(conn) == set()
