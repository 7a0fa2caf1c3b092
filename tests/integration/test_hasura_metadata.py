"""infra/hasura/metadata agrees with the migrated catalog and with the action handler."""

from __future__ import annotations

import dataclasses
import re
import typing
from collections import Counter
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest
import yaml
from graphql import FieldNode, GraphQLObjectType, OperationDefinitionNode, build_schema, get_named_type, parse
from pydantic import BaseModel

from worldgen.contracts import GM_NOTES_COLUMN, SECRET_LINK_COLUMN
from worldgen.db.catalog import foreign_key_edges
from worldgen.phases import ALL_TABLES, CORE_TABLES, WORLD_TABLES
from worldgen.tools import hasura_metadata

METADATA = Path(__file__).resolve().parents[2] / "infra" / "hasura" / "metadata"
TABLES_DIR = METADATA / "databases" / "default" / "tables"
ROLE = "user"
OWNER_FILTER = {"campaign": {"owner_id": {"_eq": "X-Hasura-User-Id"}}}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def tracked_tables() -> dict[str, dict[str, Any]]:
    """Table name -> its metadata, following tables.yaml's "!include" lines as Hasura does."""
    includes = load_yaml(TABLES_DIR / "tables.yaml")
    tables = {}
    for include in includes:
        document = load_yaml(TABLES_DIR / include.removeprefix("!include ").strip())
        assert document["table"]["schema"] == "public"
        tables[document["table"]["name"]] = document
    return tables


@pytest.fixture(scope="module")
def catalog(admin_url: str, template_db: str) -> dict[str, Any]:
    """Columns and foreign keys of the migrated template (read-only, so no clone needed)."""
    from worldgen.local.postgres import with_database

    with psycopg.connect(with_database(admin_url, template_db)) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
        ).fetchall()
        edges = foreign_key_edges(conn)
    columns: dict[str, set[str]] = {}
    for table, column in rows:
        columns.setdefault(table, set()).add(column)
    return {"columns": columns, "edges": edges}


def relationship_targets(tables: dict[str, dict[str, Any]], edges: list[tuple[str, str, str]]) -> dict:
    """(table, relationship name) -> remote table."""
    referenced = {(table, column): target for table, column, target in edges}
    targets = {}
    for table, meta in tables.items():
        for rel in meta.get("object_relationships", []):
            targets[(table, rel["name"])] = referenced[(table, rel["using"]["foreign_key_constraint_on"])]
        for rel in meta.get("array_relationships", []):
            targets[(table, rel["name"])] = rel["using"]["foreign_key_constraint_on"]["table"]["name"]
    return targets


def bool_exp_problems(exp: dict[str, Any], table: str, columns: dict[str, set[str]], targets: dict) -> list[str]:
    problems = []
    for key, value in exp.items():
        if key in ("_and", "_or"):
            for sub in value:
                problems += bool_exp_problems(sub, table, columns, targets)
        elif key == "_not":
            problems += bool_exp_problems(value, table, columns, targets)
        elif key.startswith("_"):
            problems.append(f"{table}: operator {key} where a column or relationship belongs")
        elif key in columns[table]:
            continue
        elif (table, key) in targets:
            problems += bool_exp_problems(value, targets[(table, key)], columns, targets)
        else:
            problems.append(f"{table}: {key} is neither a column nor a relationship")
    return problems


def test_every_migrated_table_is_tracked(catalog: dict[str, Any]) -> None:
    tracked = set(tracked_tables())
    assert tracked == set(catalog["columns"]) == set(ALL_TABLES)
    assert len(tracked) == 45


def test_every_foreign_key_has_an_object_and_an_array_relationship(catalog: dict[str, Any]) -> None:
    tables = tracked_tables()
    for table, column, target in catalog["edges"]:
        objects = [r["using"]["foreign_key_constraint_on"] for r in tables[table].get("object_relationships", [])]
        arrays = [r["using"]["foreign_key_constraint_on"] for r in tables[target].get("array_relationships", [])]
        assert column in objects, f"{table}.{column} has no object relationship"
        assert {"column": column, "table": {"name": table, "schema": "public"}} in arrays, (
            f"{target} has no array relationship for {table}.{column}"
        )
    relationship_count = sum(
        len(m.get("object_relationships", [])) + len(m.get("array_relationships", [])) for m in tables.values()
    )
    assert relationship_count == 2 * len(catalog["edges"])


def test_relationship_names_are_unique_and_clash_with_no_column_or_aggregate_field(catalog: dict[str, Any]) -> None:
    problems = []
    for table, meta in tracked_tables().items():
        objects = [r["name"] for r in meta.get("object_relationships", [])]
        arrays = [r["name"] for r in meta.get("array_relationships", [])]
        names = objects + arrays
        # Hasura adds a field <array relationship>_aggregate beside each array relationship.
        fields = names + [f"{name}_aggregate" for name in arrays] + sorted(catalog["columns"][table])
        problems += [f"{table}: {name} is used twice" for name, n in Counter(fields).items() if n > 1]
    assert problems == []


def test_relationships_are_the_ones_the_generator_derives_from_the_catalog(catalog: dict[str, Any]) -> None:
    derived = hasura_metadata.relationships(catalog["edges"])
    for table, meta in tracked_tables().items():
        for kind in ("object_relationships", "array_relationships"):
            assert meta.get(kind, []) == derived.get(table, {}).get(kind, []), (
                f"{table}.{kind} is stale: run `make hasura-metadata`"
            )


def test_relationship_names_are_the_ones_a_graphql_user_would_guess() -> None:
    tables = tracked_tables()

    def names(table: str, kind: str) -> set[str]:
        return {r["name"] for r in tables[table].get(f"{kind}_relationships", [])}

    assert {"campaign", "generation", "parent_location", "region", "ruler_entity"} <= names("locations", "object")
    assert {"child_locations", "buildings", "originating_items"} <= names("locations", "array")
    assert "pantheon" in names("deities", "object")
    assert "deities" in names("pantheons", "array")
    assert {"entity", "related_entity"} <= names("entity_relationships", "object")
    assert {"relationships", "related_by"} <= names("entities", "array")
    assert {"player_characters", "generations", "locations"} <= names("campaigns", "array")
    assert {"phase_runs", "model_calls"} <= names("generations", "array")


def test_array_relationships_say_what_a_qualified_foreign_key_means() -> None:
    tables = tracked_tables()
    meaning = {}
    for table, meta in tables.items():
        for rel in meta.get("array_relationships", []):
            key = rel["using"]["foreign_key_constraint_on"]
            meaning[(key["table"]["name"], key["column"])] = f"{table}.{rel['name']}"
    assert meaning[("locations", "ruler_entity_id")] == "entities.ruled_locations"
    assert meaning[("locations", "controlling_faction_id")] == "factions.controlled_locations"
    assert meaning[("quest_hooks", "quest_giver_entity_id")] == "entities.given_quest_hooks"
    assert meaning[("quest_hooks", "reward_item_id")] == "items.rewarded_quest_hooks"
    assert meaning[("temples", "high_priest_entity_id")] == "entities.high_priest_of_temples"
    assert meaning[("dungeons", "builder_race_id")] == "races.built_dungeons"
    assert meaning[("items", "origin_location_id")] == "locations.originating_items"
    assert meaning[("items", "origin_region_id")] == "geography_regions.originating_items"
    # A column that only names its target keeps the source table's name.
    assert meaning[("buildings", "location_id")] == "locations.buildings"
    assert meaning[("quest_hooks", "player_character_id")] == "player_characters.quest_hooks"


def test_a_foreign_key_with_a_role_nobody_named_fails_naming_the_column() -> None:
    with pytest.raises(hasura_metadata.UnnamedRelationship) as raised:
        hasura_metadata.array_relationship_name("shops", "landlord_entity_id", "entities")
    assert "shops.landlord_entity_id -> entities" in str(raised.value)
    assert "'landlord'" in str(raised.value) and "ROLE_NAMES" in str(raised.value)


def test_every_permission_names_existing_columns_and_relationships(catalog: dict[str, Any]) -> None:
    tables = tracked_tables()
    targets = relationship_targets(tables, catalog["edges"])
    problems = []
    for table, meta in tables.items():
        for kind in ("insert", "select", "update", "delete"):
            for entry in meta.get(f"{kind}_permissions", []):
                permission = entry["permission"]
                for key in ("filter", "check"):
                    problems += bool_exp_problems(permission.get(key, {}), table, catalog["columns"], targets)
                unknown = set(permission.get("columns", [])) | set(permission.get("set", {}))
                problems += [f"{table}: no column {c}" for c in unknown - catalog["columns"][table]]
    assert problems == []


def test_user_reads_every_table_of_its_own_campaigns_only() -> None:
    tables = tracked_tables()
    for table in (*WORLD_TABLES, "player_characters", "generations", "phase_runs", "model_calls", "row_rerolls"):
        (select,) = tables[table]["select_permissions"]
        assert select["role"] == ROLE
        assert select["permission"]["filter"] == OWNER_FILTER, table
    (own,) = tables["campaigns"]["select_permissions"]
    assert own["permission"]["filter"] == {"owner_id": {"_eq": "X-Hasura-User-Id"}}


def test_user_writes_campaigns_and_player_characters_and_only_edits_and_locks_world_rows(
    admin_url: str, template_db: str
) -> None:
    from worldgen.db.catalog import read_table_specs
    from worldgen.local.postgres import with_database

    tables = tracked_tables()
    for table in (*WORLD_TABLES, "generations", "phase_runs", "model_calls", "row_rerolls"):
        assert not {"insert_permissions", "delete_permissions"} & set(tables[table]), table
    for table in ("generations", "phase_runs", "model_calls", "row_rerolls"):
        assert "update_permissions" not in tables[table], table
    with psycopg.connect(with_database(admin_url, template_db)) as conn:
        specs = read_table_specs(conn, WORLD_TABLES)
    for table in WORLD_TABLES:
        # A game master edits the words of its own campaigns' rows and locks them; never a key,
        # a reference or a number the generator and the model rely on.
        # And marks a link secret or not (is_secret), which decides what a players export shows.
        text = {c.name for c in specs[table].columns if c.pg_type in ("text", "text[]") and not c.references}
        secret = {c.name for c in specs[table].columns if c.name == SECRET_LINK_COLUMN}
        (update,) = tables[table]["update_permissions"]
        assert update["role"] == ROLE
        assert set(update["permission"]["columns"]) == (text - {"key"}) | {"locked"} | secret, table
        assert update["permission"]["filter"] == update["permission"]["check"] == OWNER_FILTER, table
    (insert,) = tables["campaigns"]["insert_permissions"]
    assert insert["permission"]["check"] == {"owner_id": {"_eq": "X-Hasura-User-Id"}}
    assert insert["permission"]["set"] == {"owner_id": "x-hasura-User-Id"}
    assert "owner_id" not in insert["permission"]["columns"]
    (pc_insert,) = tables["player_characters"]["insert_permissions"]
    assert pc_insert["permission"]["check"] == OWNER_FILTER
    assert {"campaigns", "player_characters"} == {t for t in CORE_TABLES if "update_permissions" in tables[t]}


def test_the_owner_reads_and_edits_gm_notes_and_secret_flags_through_explicit_column_lists(
    catalog: dict[str, Any],
) -> None:
    """Secrets are readable by the campaign's owner (role user) only because its select permission
    names them: every select permission is an explicit column list, so a role added later (a
    player's) sees gm_notes and is_secret only if someone writes them into its list."""
    tables = tracked_tables()
    secret_columns = {GM_NOTES_COLUMN, SECRET_LINK_COLUMN}
    holders = {t for t, columns in catalog["columns"].items() if columns & secret_columns}
    assert holders == {
        "entities", "factions", "locations", "dungeons", "buildings", "items", "quest_hooks", "encounters",
        "deities", "shops", "taverns", "temples",
        "entity_factions", "entity_relationships", "entity_locations", "entity_items", "faction_relationships",
    }  # fmt: skip
    for table, meta in tables.items():
        for entry in meta.get("select_permissions", []):
            columns = entry["permission"]["columns"]
            assert isinstance(columns, list), f"{table}: role {entry['role']} selects '*'"
            if entry["role"] != ROLE:
                assert not set(columns) & secret_columns, f"{table}: role {entry['role']} reads a secret"
    for table in holders:
        own = catalog["columns"][table] & secret_columns
        (select,) = tables[table]["select_permissions"]
        (update,) = tables[table]["update_permissions"]
        assert own <= set(select["permission"]["columns"]) & set(update["permission"]["columns"]), table


def actions_schema_fields() -> dict[str, Any]:
    text = (METADATA / "actions.graphql").read_text()
    parse(text)  # the file as Hasura reads it
    schema = build_schema("scalar uuid\ntype Query { unused: Boolean }\n" + text)
    assert schema.mutation_type is not None
    return dict(schema.mutation_type.fields)


def test_actions_graphql_and_actions_yaml_declare_the_same_actions() -> None:
    declared = {action["name"] for action in load_yaml(METADATA / "actions.yaml")["actions"]}
    assert set(actions_schema_fields()) == declared == {
        "generateWorld", "resumeGeneration", "regenerateFromPhase", "cancelGeneration", "revertGeneration",
        "discardGeneration", "rerollRow", "undoReroll",
    }  # fmt: skip


def test_every_action_has_a_handler_in_worldgen() -> None:
    from worldgen.handlers.actions import ACTION_NAMES

    assert set(actions_schema_fields()) == set(ACTION_NAMES)


def test_actions_call_the_handler_with_the_shared_secret_and_return_generation_started() -> None:
    for action in load_yaml(METADATA / "actions.yaml")["actions"]:
        definition = action["definition"]
        assert definition["kind"] == "synchronous"
        assert definition["handler"] == "{{WORLDGEN_ACTION_URL}}"
        assert definition["timeout"] == 25  # below Hasura's 30 s default and the action Lambda's 29 s
        assert {"name": "x-worldgen-action-secret", "value_from_env": "WORLDGEN_ACTION_SECRET"} in definition["headers"]
        assert action["permissions"] == [{"role": ROLE}]
    for name, field in actions_schema_fields().items():
        expected = "RowRerolled" if name in ("rerollRow", "undoReroll") else "GenerationStarted"
        assert get_named_type(field.type).name == expected, name


def test_row_rerolled_links_to_the_reroll_and_answers_what_the_handler_returns(catalog: dict[str, Any]) -> None:
    from worldgen.reroll import RerollOutcome

    objects = load_yaml(METADATA / "actions.yaml")["custom_types"]["objects"]
    (rerolled,) = [o for o in objects if o["name"] == "RowRerolled"]
    (relationship,) = rerolled["relationships"]
    assert relationship["remote_table"] == {"name": "row_rerolls", "schema": "public"}
    assert relationship["field_mapping"] == {"reroll_id": "id"}
    output = get_named_type(actions_schema_fields()["rerollRow"].type)
    assert isinstance(output, GraphQLObjectType)
    assert set(output.fields) == set(RerollOutcome.__dataclass_fields__)
    assert "id" in catalog["columns"]["row_rerolls"]


def answer_fields(output: type) -> set[str]:
    """The keys of the JSON object an action's handler answers with: its output model's fields."""
    if dataclasses.is_dataclass(output):
        return {f.name for f in dataclasses.fields(output)}
    assert issubclass(output, BaseModel), output
    return set(output.model_fields)


def test_every_action_output_type_declares_every_field_its_handler_answers_with() -> None:
    """Hasura drops what the output type does not declare (a cancel's ``kept`` was lost so)."""
    from worldgen.handlers.actions import ACTIONS

    fields = actions_schema_fields()
    missing = {
        name: sorted(
            answer_fields(action.output) - set(cast(GraphQLObjectType, get_named_type(fields[name].type)).fields)
        )
        for name, action in ACTIONS.items()
    }
    assert {name: gone for name, gone in missing.items() if gone} == {}
    assert "kept" in answer_fields(ACTIONS["revertGeneration"].output)  # what the test is for
    # The output the table names is what the service returns (mypy holds the service to its annotation).
    returns = {name: typing.get_type_hints(action.run)["return"] for name, action in ACTIONS.items()}
    assert returns == {name: action.output for name, action in ACTIONS.items()}


def test_generation_started_links_to_the_generations_table(catalog: dict[str, Any]) -> None:
    objects = load_yaml(METADATA / "actions.yaml")["custom_types"]["objects"]
    (started,) = [o for o in objects if o["name"] == "GenerationStarted"]
    (relationship,) = started["relationships"]
    assert relationship["name"] == "generation" and relationship["type"] == "object"
    assert relationship["remote_table"] == {"name": "generations", "schema": "public"}
    assert relationship["field_mapping"] == {"generation_id": "id"}
    output = get_named_type(actions_schema_fields()["generateWorld"].type)
    assert isinstance(output, GraphQLObjectType)
    assert set(output.fields) == {"generation_id", "execution_arn", "status", "kept"}
    assert "id" in catalog["columns"]["generations"]


def test_generation_started_keeps_its_description_in_actions_yaml_where_the_cli_reads_it() -> None:
    # The CLI builds custom types from actions.graphql, then overwrites descriptions with actions.yaml's.
    objects = load_yaml(METADATA / "actions.yaml")["custom_types"]["objects"]
    (started,) = [o for o in objects if o["name"] == "GenerationStarted"]
    schema = build_schema("scalar uuid\ntype Query { unused: Boolean }\n" + (METADATA / "actions.graphql").read_text())
    started_type = schema.get_type("GenerationStarted")
    assert started_type is not None
    assert started["description"] == started_type.description


def graphql_examples() -> list[str]:
    text = (METADATA.parents[2] / "docs" / "hasura.md").read_text()
    return re.findall(r"```graphql\n(.*?)```", text, re.S)


def test_graphql_examples_in_the_docs_declare_their_variables_and_name_real_fields(catalog: dict[str, Any]) -> None:
    tables = tracked_tables()
    targets = relationship_targets(tables, catalog["edges"])
    actions = {name: get_named_type(field.type).name for name, field in actions_schema_fields().items()}
    schema = build_schema("scalar uuid\ntype Query { unused: Boolean }\n" + (METADATA / "actions.graphql").read_text())
    outputs: dict[str, tuple[set[str], dict[str, str]]] = {}  # an action's output: its fields, its relationships
    for output in load_yaml(METADATA / "actions.yaml")["custom_types"]["objects"]:
        declared_type = schema.get_type(output["name"])
        assert isinstance(declared_type, GraphQLObjectType)
        related = {r["name"]: r["remote_table"]["name"] for r in output["relationships"]}
        outputs[output["name"]] = (set(declared_type.fields), related)
    problems: list[str] = []

    def walk(selections: Any, table: str) -> None:
        for field in selections.selections:
            name = field.name.value
            if table in outputs and name in outputs[table][0]:
                continue
            if table in outputs and name in outputs[table][1]:
                walk(field.selection_set, outputs[table][1][name])
            elif table in catalog["columns"] and name in catalog["columns"][table]:
                continue
            elif (table, name) in targets:
                walk(field.selection_set, targets[(table, name)])
            else:
                problems.append(f"{table} has no field {name}")

    examples = graphql_examples()
    assert len(examples) >= 4
    for example in examples:
        for operation in parse(example).definitions:
            assert isinstance(operation, OperationDefinitionNode) and operation.name is not None
            declared = {v.variable.name.value for v in operation.variable_definitions or ()}
            used = set(re.findall(r"\$(\w+)", example.split("{", 1)[1])) if "{" in example else set()
            problems += [f"{operation.name.value}: ${v} is not declared" for v in sorted(used - declared)]
            for root in operation.selection_set.selections:
                assert isinstance(root, FieldNode)
                name = root.name.value
                if name in actions:
                    walk(root.selection_set, actions[name])
                elif name.removesuffix("_by_pk") in tables:
                    walk(root.selection_set, name.removesuffix("_by_pk"))
                else:
                    problems.append(f"no root field {name}")
    assert problems == []


def test_metadata_directory_is_a_complete_version_3_export() -> None:
    assert load_yaml(METADATA / "version.yaml") == {"version": 3}
    (source,) = load_yaml(METADATA / "databases" / "databases.yaml")
    assert source["name"] == "default"
    assert source["configuration"]["connection_info"]["database_url"] == {"from_env": "HASURA_GRAPHQL_DATABASE_URL"}
    for name in (
        "allow_list", "cron_triggers", "query_collections", "remote_schemas", "inherited_roles",
        "rest_endpoints", "api_limits", "network", "backend_configs", "graphql_schema_introspection",
        "metrics_config", "opentelemetry",
    ):  # fmt: skip
        assert load_yaml(METADATA / f"{name}.yaml") is not None, name
    config = load_yaml(METADATA.parent / "config.yaml")
    assert config["version"] == 3
    assert (METADATA.parent / config["migrations_directory"]).is_dir()
    assert (METADATA.parent / config["metadata_directory"]) == METADATA
    assert config["actions"]["kind"] == "synchronous"
    # `hasura actions create` builds a new action's handler from it: worldgen serve's default address.
    from worldgen.tools.cli import build_parser

    serve_port = build_parser().parse_args(["serve"]).port
    assert config["actions"]["handler_webhook_baseurl"] == f"http://localhost:{serve_port}"
