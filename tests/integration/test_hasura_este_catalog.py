"""este's real Hasura introspection + its real DDL: required-ness comes from the database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests.shared import HASURA_FIXTURES, requires_hasura_fixtures
from worldgen.db.catalog import read_table_specs
from worldgen.local.postgres import drop_database, with_database
from worldgen.schema.spec import TableSpec
from worldgen.tools.hasura import read_hasura_specs

ESTE = HASURA_FIXTURES / "este"
pytestmark = requires_hasura_fixtures
TABLES = ("users", "teams", "tadas")


@pytest.fixture
def este_catalog(admin_url: str) -> Iterator[dict[str, TableSpec]]:
    """este's init_up.sql applied to a scratch database, read back with read_table_specs."""
    name = f"este_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(with_database(admin_url, name), autocommit=True) as conn:
            # The DDL calls public.gen_random_uuid() (pgcrypto's); PostgreSQL 13+ has it built in.
            conn.execute(
                "CREATE FUNCTION public.gen_random_uuid() RETURNS uuid"
                " LANGUAGE sql AS 'SELECT pg_catalog.gen_random_uuid()'"
            )
            conn.execute((ESTE / "init_up.sql").read_bytes())
            yield read_table_specs(conn, TABLES)
    finally:
        drop_database(admin_url, name)


def test_este_not_null_columns_without_default_are_required(este_catalog: dict[str, TableSpec]) -> None:
    specs = read_hasura_specs(ESTE / "schema.json", catalog_specs=este_catalog)
    required = {table: {c.name for c in spec.columns if c.required} for table, spec in specs.items()}
    assert required == {
        "users": {"email", "password", "themeName", "team_id"},
        "teams": {"name"},
        "tadas": {"creator_id", "name"},
    }


def test_este_defaulted_and_nullable_columns_stay_optional(este_catalog: dict[str, TableSpec]) -> None:
    specs = read_hasura_specs(ESTE / "schema.json", catalog_specs=este_catalog)
    tadas = specs["tadas"]
    assert tadas.column("description").nullable
    assert tadas.column("id").has_default and not tadas.column("id").required
    assert not tadas.column("created_at").required


def test_este_inferred_references_match_the_foreign_keys_of_the_ddl(
    este_catalog: dict[str, TableSpec],
) -> None:
    specs = read_hasura_specs(ESTE / "schema.json", catalog_specs=este_catalog)
    for table in TABLES:
        hasura_refs = {c.name: c.references for c in specs[table].columns if c.references}
        catalog_refs = {c.name: c.references for c in este_catalog[table].columns if c.references}
        assert hasura_refs == catalog_refs, table
    assert specs["users"].column("team_id").references == "teams"


def test_este_columns_and_types_match_the_catalog(este_catalog: dict[str, TableSpec]) -> None:
    specs = read_hasura_specs(ESTE / "schema.json", catalog_specs=este_catalog)
    for table in TABLES:
        assert [(c.name, c.pg_type) for c in specs[table].columns] == [
            (c.name, c.pg_type) for c in este_catalog[table].columns
        ]
