"""The phase tools built from the migrated catalog: committed, faithful to the tables, strict-safe."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from worldgen.db.catalog import read_table_specs
from worldgen.phases import ALL_PHASES, PHASES, WORLD_TABLES, Phase, get_phase
from worldgen.schema.spec import SYSTEM_COLUMNS, TableSpec
from worldgen.schema.tools import (
    STRICT_UNSUPPORTED_KEYWORDS,
    phase_tool,
    render,
    strict_variant,
    with_key_enums,
)
from worldgen.tools.schemas import GENERATED_DIR


@pytest.fixture(scope="module")
def catalog_conn(admin_url: str, template_db: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection to the migrated template; these tests only read the catalog."""
    from worldgen.local.postgres import with_database

    with psycopg.connect(with_database(admin_url, template_db)) as conn:
        yield conn


@pytest.fixture(scope="module")
def specs(catalog_conn: psycopg.Connection[Any]) -> dict[str, TableSpec]:
    return read_table_specs(catalog_conn, WORLD_TABLES)


@pytest.fixture(scope="module")
def tools(specs: dict[str, TableSpec]) -> dict[str, dict[str, Any]]:
    return {phase.id: phase_tool(phase, specs) for phase in PHASES}


def items_of(tool: dict[str, Any], table: str) -> dict[str, Any]:
    return tool["input_schema"]["properties"][table]["items"]


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


@pytest.mark.parametrize("phase", ALL_PHASES, ids=lambda p: p.id)  # every profile's tools
def test_committed_tool_equals_the_one_regenerated_from_the_catalog(phase: Phase, specs: dict[str, TableSpec]) -> None:
    committed = (GENERATED_DIR / f"phase_{phase.slug}.json").read_text()
    assert render(phase_tool(phase, specs)) == committed, "stale: run `make schemas` and commit"


def test_foreign_key_columns_are_offered_as_string_keys(
    catalog_conn: psycopg.Connection[Any], tools: dict[str, dict[str, Any]]
) -> None:
    rows = catalog_conn.execute(
        """
        SELECT c.relname, a.attname FROM pg_constraint con
        JOIN pg_class c ON c.oid = con.conrelid
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = con.conkey[1]
        WHERE con.contype = 'f' AND c.relname = ANY(%s) AND a.attname NOT IN ('campaign_id', 'generation_id')
        """,
        (list(WORLD_TABLES),),
    ).fetchall()
    assert len(rows) > 50
    for table, column in rows:
        properties = items_of(tools[_owner(table).id], table)["properties"]
        assert column.endswith("_id")
        key = column.removesuffix("_id") + "_key"
        assert column not in properties, f"{table}.{column}"
        assert properties[key]["type"] == "string", f"{table}.{key}"


def test_system_columns_never_appear(tools: dict[str, dict[str, Any]]) -> None:
    for tool in tools.values():
        for table, schema in tool["input_schema"]["properties"].items():
            exposed = set(schema["items"]["properties"])
            assert exposed.isdisjoint({"id", "campaign_id", "generation_id", "created_at"}), table
            assert exposed.isdisjoint(SYSTEM_COLUMNS), table


def test_not_null_columns_without_default_are_required(
    catalog_conn: psycopg.Connection[Any], specs: dict[str, TableSpec], tools: dict[str, dict[str, Any]]
) -> None:
    rows = catalog_conn.execute(
        """
        SELECT table_name, column_name, is_nullable = 'NO' AND column_default IS NULL AND is_generated = 'NEVER'
        FROM information_schema.columns WHERE table_schema = 'public' AND table_name = ANY(%s)
        """,
        (list(WORLD_TABLES),),
    ).fetchall()
    for table, column, must_be_given in rows:
        if column in SYSTEM_COLUMNS:
            continue
        name = specs[table].column(column).property_name
        required = items_of(tools[_owner(table).id], table)["required"]
        assert (name in required) == must_be_given, f"{table}.{name}"
    assert "key" in items_of(tools["2B"], "locations")["required"]
    assert "parent_location_key" not in items_of(tools["2B"], "locations")["required"]
    assert "pantheon_key" in items_of(tools["1C"], "deities")["required"]


@pytest.mark.parametrize("phase", PHASES, ids=lambda p: p.id)
def test_every_row_schema_forbids_additional_properties_and_caps_rows_at_the_registry_limit(
    phase: Phase, tools: dict[str, dict[str, Any]]
) -> None:
    schema = tools[phase.id]["input_schema"]
    assert schema["additionalProperties"] is False
    assert list(schema["properties"]) == list(phase.tables)
    assert schema["required"] == list(phase.tables)
    for table in phase.tables:
        assert schema["properties"][table]["items"]["additionalProperties"] is False
        assert schema["properties"][table]["maxItems"] == phase.max_rows_per_table
    assert tools[phase.id]["name"] == f"record_phase_{phase.slug}"


def test_check_in_lists_become_enums(catalog_conn: psycopg.Connection[Any], tools: dict[str, dict[str, Any]]) -> None:
    rows = catalog_conn.execute(
        """
        SELECT c.relname, a.attname FROM pg_constraint con
        JOIN pg_class c ON c.oid = con.conrelid
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = con.conkey[1]
        WHERE con.contype = 'c' AND cardinality(con.conkey) = 1 AND c.relname = ANY(%s)
          AND pg_get_constraintdef(con.oid) LIKE '%%= ANY (ARRAY[%%'
        """,
        (list(WORLD_TABLES),),
    ).fetchall()
    assert len(rows) > 40
    for table, column in rows:
        assert "enum" in items_of(tools[_owner(table).id], table)["properties"][column], f"{table}.{column}"
    locations = items_of(tools["2B"], "locations")["properties"]
    assert locations["kind"]["enum"] == [
        "continent", "region", "city", "town", "village", "district", "wilderness", "site"
    ]  # fmt: skip
    assert items_of(tools["1B"], "character_classes")["properties"]["hit_die"]["enum"] == [6, 8, 10, 12]


def test_single_column_ranges_become_minimum_and_maximum(tools: dict[str, dict[str, Any]]) -> None:
    dungeon = items_of(tools["2B"], "dungeons")["properties"]
    assert (dungeon["recommended_min_level"]["minimum"], dungeon["recommended_min_level"]["maximum"]) == (1, 20)
    assert dungeon["floor_count"]["minimum"] == 1
    assert items_of(tools["2B"], "locations")["properties"]["population"]["minimum"] == 0


@pytest.mark.parametrize("phase", PHASES, ids=lambda p: p.id)
def test_strict_variant_drops_every_unsupported_keyword_and_says_strict(
    phase: Phase, tools: dict[str, dict[str, Any]]
) -> None:
    tool = tools[phase.id]
    before = copy.deepcopy(tool)
    strict = strict_variant(tool)

    assert strict["strict"] is True
    for node in walk(strict):
        # A property *named* like a keyword would be legitimate; none of these tables has one.
        assert STRICT_UNSUPPORTED_KEYWORDS.isdisjoint(node), node
    assert tool == before, "strict_variant must not modify its argument"
    for table in phase.tables:
        original, stripped = items_of(tool, table), items_of(strict, table)
        assert stripped["required"] == original["required"]
        assert stripped["additionalProperties"] is False
        assert list(stripped["properties"]) == list(original["properties"])
        for name, prop in original["properties"].items():
            assert stripped["properties"][name].get("enum") == prop.get("enum")


def test_with_key_enums_narrows_earlier_phase_references_to_the_given_keys(
    specs: dict[str, TableSpec], tools: dict[str, dict[str, Any]]
) -> None:
    phase = get_phase("2B")
    tool = tools["2B"]
    before = copy.deepcopy(tool)
    keys = {
        "geography_regions": ["north-reach", "ashen-coast"],
        "entities": ["old-mara"],
        "player_characters": ["lyra-ashdown"],
        "races": ["dwarf"],
        "factions": [],  # no factions yet: the optional reference to them is dropped
    }

    narrowed = with_key_enums(tool, phase, specs, keys)

    locations = items_of(narrowed, "locations")["properties"]
    assert locations["region_key"]["enum"] == ["ashen-coast", "north-reach"]
    assert locations["ruler_entity_key"]["enum"] == ["old-mara"]
    assert locations["player_character_key"]["enum"] == ["lyra-ashdown"]
    assert "controlling_faction_key" not in locations
    assert "enum" not in locations["parent_location_key"]  # in-phase: the model makes these keys itself
    assert "enum" not in items_of(narrowed, "dungeons")["properties"]["location_key"]
    assert items_of(narrowed, "dungeons")["properties"]["builder_race_key"]["enum"] == ["dwarf"]
    assert tool == before, "with_key_enums must not modify the committed tool"


def test_with_key_enums_leaves_a_required_reference_without_keys_a_plain_string(
    specs: dict[str, TableSpec], tools: dict[str, dict[str, Any]]
) -> None:
    narrowed = with_key_enums(tools["3C"], get_phase("3C"), specs, {})
    relationship = items_of(narrowed, "entity_relationships")
    assert "entity_key" in relationship["required"]
    original = items_of(tools["3C"], "entity_relationships")["properties"]["entity_key"]
    assert relationship["properties"]["entity_key"] == original
    assert "enum" not in relationship["properties"]["entity_key"]
    for node in walk(narrowed):
        assert node.get("enum", ["non-empty"]) != [], "a schema never carries an empty enum"


def _owner(table: str) -> Phase:
    return next(p for p in PHASES if table in p.tables)


def test_a_quick_tool_offers_only_required_columns_references_key_name_and_description(
    specs: dict[str, TableSpec],
) -> None:
    quick = phase_tool(get_phase("Q1"), specs)
    full = phase_tool(get_phase("1A"), specs)
    lean, rich = items_of(quick, "calendar_systems"), items_of(full, "calendar_systems")
    assert set(lean["properties"]) == {"key", "name", "description"} < set(rich["properties"])
    assert lean["required"] == rich["required"]
    regions = items_of(quick, "geography_regions")["properties"]
    assert {"plane_key", "parent_region_key"} <= set(regions) and "climate" not in regions
