"""Phase tools built from Hasura's view equal the catalog-built ones, apart from documented differences.

No Hasura server runs here, so ``hasura_sdl`` writes the SDL Hasura would serve for worldgen's
tables: ``<table>_insert_input`` with every column nullable and sorted by name, column comments as
descriptions, generated columns left out, and one relationship-insert field per relationship of the
committed metadata (typed ``<remote>_obj_rel_insert_input`` / ``<remote>_arr_rel_insert_input``,
which recurse), plus ``on_conflict`` inputs.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from graphql.language.block_string import print_block_string

from worldgen.db.catalog import read_table_specs
from worldgen.phases import ALL_TABLES, PHASES
from worldgen.schema.spec import TableSpec
from worldgen.schema.tools import phase_tool
from worldgen.tools.hasura import hasura_table_specs, load_hasura_schema, phase_tools_from_hasura

TABLES_DIR = Path(__file__).resolve().parents[2] / "infra" / "hasura" / "metadata" / "databases" / "default" / "tables"
GRAPHQL_TYPES = {
    "text": "String",
    "integer": "Int",
    "boolean": "Boolean",
    "numeric": "numeric",
    "bigint": "bigint",
    "jsonb": "jsonb",
    "uuid": "uuid",
    "timestamptz": "timestamptz",
    "text[]": "[String!]",  # Hasura >= 2.29; older versions say _text
}
# What Hasura cannot show: CHECK constraints (closed vocabularies, numeric bounds).
INVISIBLE_TO_HASURA = ("enum", "minimum", "exclusiveMinimum", "maximum")


def relationships(table: str) -> list[tuple[str, str, str]]:
    """(name, "arr", remote table) and (name, "obj", foreign key column) from the committed metadata."""
    meta = yaml.safe_load((TABLES_DIR / f"public_{table}.yaml").read_text())
    found = [
        (rel["name"], "arr", rel["using"]["foreign_key_constraint_on"]["table"]["name"])
        for rel in meta.get("array_relationships", [])
    ]
    for rel in meta.get("object_relationships", []):
        column = rel["using"]["foreign_key_constraint_on"]
        found.append((rel["name"], "obj", column))  # remote table resolved by the caller
    return found


def description(text: str | None, indent: str = "") -> str:
    if not text:
        return ""
    return "\n".join(indent + line for line in print_block_string(text).splitlines()) + "\n"


def relationship_insert_input(table: str, kind: str, data_type: str) -> str:
    on_conflict = f"  on_conflict: {table}_on_conflict\n"
    return f"input {table}_{kind}_rel_insert_input {{\n  data: {data_type}\n{on_conflict}}}\n"


def hasura_sdl(specs: dict[str, TableSpec]) -> str:
    parts = ["scalar uuid\nscalar jsonb\nscalar timestamptz\nscalar numeric\nscalar bigint\n"]
    roots = []
    for table, spec in specs.items():
        references = {c.name: c.references for c in spec.columns if c.references}
        fields = {c.name: (GRAPHQL_TYPES[c.pg_type], c.comment) for c in spec.columns if not c.generated}
        for name, kind, remote in relationships(table):
            target = references[remote] if kind == "obj" else remote
            fields[name] = (f"{target}_{kind}_rel_insert_input", None)
        body = "".join(description(text, "  ") + f"  {name}: {gql}\n" for name, (gql, text) in sorted(fields.items()))
        columns = "".join(
            description(c.comment, "  ") + f"  {c.name}: {GRAPHQL_TYPES[c.pg_type]}\n" for c in spec.columns
        )
        parts += [
            description(spec.comment) + f"type {table} {{\n{columns}}}\n",
            description(f'input type for inserting data into table "{table}"')
            + f"input {table}_insert_input {{\n{body}}}\n",
            relationship_insert_input(table, "obj", f"{table}_insert_input!"),
            relationship_insert_input(table, "arr", f"[{table}_insert_input!]!"),
            f"input {table}_on_conflict {{\n  constraint: String!\n  update_columns: [String!]!\n}}\n",
        ]
        roots.append(f"  {table}: [{table}!]!\n")
    parts.append("type query_root {\n" + "".join(roots) + "}\nschema { query: query_root }\n")
    return "\n".join(parts)


def without_invisible_keywords(tool: dict[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(tool)
    for table in stripped["input_schema"]["properties"].values():
        for prop in table["items"]["properties"].values():
            for keyword in INVISIBLE_TO_HASURA:
                prop.pop(keyword, None)
    return stripped


@pytest.fixture(scope="module")
def catalog_specs(admin_url: str, template_db: str) -> dict[str, TableSpec]:
    from worldgen.local.postgres import with_database

    with psycopg.connect(with_database(admin_url, template_db)) as conn:
        return read_table_specs(conn, ALL_TABLES)


@pytest.fixture(scope="module")
def sdl(catalog_specs: dict[str, TableSpec]) -> str:
    return hasura_sdl(catalog_specs)


@pytest.mark.parametrize("phase", PHASES, ids=lambda p: p.id)
def test_hasura_tool_equals_catalog_tool_apart_from_check_constraints(
    phase: Any, sdl: str, catalog_specs: dict[str, TableSpec]
) -> None:
    from_hasura = phase_tools_from_hasura(sdl, catalog_specs=catalog_specs)[phase.id]
    from_catalog = phase_tool(phase, catalog_specs)
    assert from_hasura == without_invisible_keywords(from_catalog)
    assert list(from_hasura["input_schema"]["properties"]) == list(phase.tables)


def test_check_constraint_enums_and_bounds_are_the_only_loss(sdl: str, catalog_specs: dict[str, TableSpec]) -> None:
    from_hasura = phase_tools_from_hasura(sdl, catalog_specs=catalog_specs)
    lost = set()
    for phase in PHASES:
        for table, schema in phase_tool(phase, catalog_specs)["input_schema"]["properties"].items():
            for prop, column in schema["items"]["properties"].items():
                hasura_column = from_hasura[phase.id]["input_schema"]["properties"][table]["items"]["properties"][prop]
                lost |= {k for k in column if k not in hasura_column}
    assert lost == set(INVISIBLE_TO_HASURA)  # the differences are real, and there are no others


def test_without_the_catalog_no_column_is_required(sdl: str) -> None:
    tools = phase_tools_from_hasura(sdl)
    for tool in tools.values():
        for table in tool["input_schema"]["properties"].values():
            assert table["items"]["required"] == []


def test_every_foreign_key_is_inferred_from_the_relationship_inserts(
    sdl: str, catalog_specs: dict[str, TableSpec]
) -> None:
    specs = hasura_table_specs(load_hasura_schema(sdl), ALL_TABLES)
    for table in ALL_TABLES:
        inferred = {c.name: c.references for c in specs[table].columns if c.references}
        catalog = {c.name: c.references for c in catalog_specs[table].columns if c.references}
        assert inferred == catalog, table


def test_generated_columns_are_absent_from_hasura_insert_inputs(catalog_specs: dict[str, TableSpec]) -> None:
    # No world column is generated any more (player_characters.key became an ordinary column, filled by
    # worldgen or a trigger): mark one generated, as Hasura would see it, and check it is left out.
    entities = catalog_specs["entities"]
    columns = [c.model_copy(update={"generated": True}) if c.name == "alignment" else c for c in entities.columns]
    sdl = hasura_sdl({**catalog_specs, "entities": entities.model_copy(update={"columns": columns})})
    specs = hasura_table_specs(load_hasura_schema(sdl), ["entities"])
    assert "alignment" not in {c.name for c in specs["entities"].columns}
    assert "role" in {c.name for c in specs["entities"].columns}


def test_the_schema_command_prints_the_hasura_built_tools_with_required_ness_from_the_database(
    sdl: str, catalog_specs: dict[str, TableSpec], db_url: str, tmp_path: Any
) -> None:
    import json
    import os
    import subprocess
    import sys

    sdl_file = tmp_path / "worldgen.graphql"
    sdl_file.write_text(sdl)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORLDGEN_")}
    env["WORLDGEN_DATABASE_URL"] = db_url
    result = subprocess.run(
        [sys.executable, "-m", "worldgen.tools.cli", "schema", "--from-hasura", str(sdl_file)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    for phase in PHASES:
        expected = without_invisible_keywords(phase_tool(phase, catalog_specs))
        assert without_invisible_keywords(printed[phase.id]) == expected
