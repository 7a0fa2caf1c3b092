"""worldgen.tools.hasura on real Hasura files (../shared/fixtures/hasura) and on small SDL snippets."""

from __future__ import annotations

import json

import pytest
from graphql import build_schema

from tests.shared import HASURA_FIXTURES, requires_hasura_fixtures
from worldgen.schema.spec import TableSpec
from worldgen.tools.hasura import (
    hasura_table_specs,
    insert_input_types,
    load_hasura_schema,
    pg_type_of,
    read_hasura_specs,
)

ESTE_JSON = HASURA_FIXTURES / "este" / "schema.json"
CARNET_SDL = HASURA_FIXTURES / "carnet-de-bord" / "schema.graphql"


@pytest.fixture(scope="module")
def carnet() -> dict[str, TableSpec]:
    return read_hasura_specs(CARNET_SDL)


@pytest.fixture(scope="module")
def este() -> dict[str, TableSpec]:
    return read_hasura_specs(ESTE_JSON)


def column_names(spec: TableSpec) -> set[str]:
    return {column.name for column in spec.columns}


@requires_hasura_fixtures
def test_este_introspection_without_data_wrapper_converts_its_three_tables(
    este: dict[str, TableSpec],
) -> None:
    assert set(este) == {"users", "teams", "tadas"}
    assert column_names(este["users"]) == {
        "id", "created_at", "updated_at", "email", "password", "themeName", "team_id"
    }  # fmt: skip
    assert column_names(este["tadas"]) == {
        "id",
        "created_at",
        "updated_at",
        "creator_id",
        "name",
        "description",
    }


@requires_hasura_fixtures
def test_este_introspection_with_data_wrapper_gives_the_same_specs(este: dict[str, TableSpec]) -> None:
    wrapped = {"data": json.loads(ESTE_JSON.read_text())}
    assert read_hasura_specs(wrapped) == este
    assert read_hasura_specs(json.dumps(wrapped)) == este


@requires_hasura_fixtures
def test_este_scalars_map_to_postgres_types(este: dict[str, TableSpec]) -> None:
    users = este["users"]
    assert users.column("id").pg_type == "uuid"
    assert users.column("created_at").pg_type == "timestamptz"
    assert users.column("email").pg_type == "text"


@requires_hasura_fixtures
def test_este_relationship_inserts_are_not_columns(este: dict[str, TableSpec]) -> None:
    assert not column_names(este["users"]) & {"team", "tadas", "on_conflict"}
    assert not column_names(este["teams"]) & {"users", "on_conflict"}
    assert "user" not in column_names(este["tadas"])


@requires_hasura_fixtures
def test_este_references_are_inferred_from_object_relationships(este: dict[str, TableSpec]) -> None:
    assert este["users"].column("team_id").references == "teams"  # relationship `team` + column `team_id`
    # relationship `user` and the only unpaired id-like column `creator_id`, both uuid
    assert este["tadas"].column("creator_id").references == "users"
    assert [c.name for c in este["teams"].columns if c.references] == []


@requires_hasura_fixtures
def test_without_catalog_every_hasura_column_is_optional(este: dict[str, TableSpec]) -> None:
    assert all(column.nullable and not column.required for spec in este.values() for column in spec.columns)


@requires_hasura_fixtures
def test_carnet_de_bord_every_table_insert_input_converts(carnet: dict[str, TableSpec]) -> None:
    schema = load_hasura_schema(CARNET_SDL)
    assert len(carnet) == len(insert_input_types(schema)) == 48
    assert all(spec.columns for spec in carnet.values())


@requires_hasura_fixtures
def test_carnet_de_bord_keeps_camel_case_custom_column_names(carnet: dict[str, TableSpec]) -> None:
    account = carnet["account"]
    assert {"accessKey", "adminStructureId", "onboardingDone", "createdAt"} <= column_names(account)
    assert "access_key" not in column_names(account)
    assert carnet["beneficiary"].column("dateOfBirth").pg_type == "date"
    assert carnet["beneficiary"].column("email").pg_type == "text"  # citext


@requires_hasura_fixtures
def test_carnet_de_bord_enum_table_columns_carry_the_enum_values(carnet: dict[str, TableSpec]) -> None:
    role = carnet["account"].column("type")
    assert role.enum == [
        "admin_cdb", "admin_structure", "beneficiary", "manager",
        "orientation_manager", "professional", "service",
    ]  # fmt: skip
    assert role.pg_type == "text"
    assert role.references is None  # the value itself is stored: nothing to translate from a key
    assert carnet["beneficiary"].column("rsaClosureReason").enum


@requires_hasura_fixtures
def test_carnet_de_bord_references_follow_camel_case_relationships(carnet: dict[str, TableSpec]) -> None:
    assert carnet["account"].column("adminStructureId").references == "admin_structure"
    assert carnet["account"].column("adminId").references == "admin_cdb"
    assert carnet["orientation_request"].column("decidedOrientationSystemId").references == "orientation_system"
    assert carnet["orientation_request"].column("requestor_account_id").references == "account"
    # two unpaired object relationships (account, accountByDeletedBy): no guess is made
    assert carnet["notebook_appointment"].column("deleted_by").references is None


@requires_hasura_fixtures
def test_carnet_de_bord_no_relationship_insert_or_on_conflict_field_leaks(
    carnet: dict[str, TableSpec],
) -> None:
    schema = load_hasura_schema(CARNET_SDL)
    for table, insert in insert_input_types(schema).items():
        leaked = {
            name
            for name in column_names(carnet[table])
            if "rel_insert_input" in str(insert.fields[name].type) or name == "on_conflict"
        }
        assert not leaked, table
    assert not column_names(carnet["account"]) & {"admin", "notebookActionsCreated", "role", "beneficiary"}


@requires_hasura_fixtures
def test_carnet_de_bord_comments_come_from_descriptions(carnet: dict[str, TableSpec]) -> None:
    assert carnet["professional_project"].column("hourlyRate").comment == "in cents (divide by 100 for the EUR value)"
    assert carnet["role"].comment == "liste des roles"
    assert carnet["account"].comment is None  # Hasura's default 'columns and relationships of "account"'


@requires_hasura_fixtures
def test_carnet_de_bord_recursive_relationship_inputs_do_not_become_tables_or_columns() -> None:
    # Relationship inputs nest recursively (<t>_arr_rel_insert_input -> <t>_insert_input -> ...); the
    # walk must stop at them. No timing assert here: a stopped walk shows as the right columns.
    specs = read_hasura_specs(CARNET_SDL)
    for spec in specs.values():
        assert not any(c.name.endswith(("_arr_rel_insert_input", "_obj_rel_insert_input")) for c in spec.columns)
        assert all(c.pg_type for c in spec.columns)


@requires_hasura_fixtures
def test_asking_for_a_table_without_insert_input_raises() -> None:
    with pytest.raises(LookupError, match="not_a_table"):
        hasura_table_specs(load_hasura_schema(ESTE_JSON), ["users", "not_a_table"])


def test_postgres_arrays_map_to_text_array_in_both_hasura_spellings() -> None:
    schema = build_schema(
        """
        scalar _text
        type Query { x: Int }
        input things_insert_input { old_style: _text, new_style: [String!], count: Int, price: Float }
        """
    )
    fields = schema.type_map["things_insert_input"].fields  # type: ignore[attr-defined]
    assert pg_type_of(fields["old_style"].type) == "text[]"
    assert pg_type_of(fields["new_style"].type) == "text[]"
    assert pg_type_of(fields["count"].type) == "integer"
    assert pg_type_of(fields["price"].type) == "numeric"


def test_catalog_specs_give_required_ness_and_column_order() -> None:
    schema = build_schema(
        """
        type Query { x: Int }
        input notes_insert_input { body: String, id: Int, title: String }
        """
    )
    catalog = TableSpec.model_validate(
        {
            "name": "notes",
            "columns": [
                {"name": "id", "pg_type": "integer", "nullable": False, "has_default": True},
                {"name": "title", "pg_type": "text", "nullable": False},
                {"name": "body", "pg_type": "text", "nullable": True},
            ],
        }
    )
    notes = hasura_table_specs(schema, catalog_specs={"notes": catalog})["notes"]
    assert [c.name for c in notes.columns] == ["id", "title", "body"]
    assert [c.name for c in notes.columns if c.required] == ["title"]
