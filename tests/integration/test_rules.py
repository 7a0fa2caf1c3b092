"""worldgen.db.validation: every rule checked before the save and reported by row key, forgiving keys,
PostgreSQL's errors named by key, and the rows a partial save drops."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tests.integration import test_save
from tests.integration.test_save import Campaign, empty_input, location, save, save_world
from tests.shared import one_row
from worldgen.db import validation
from worldgen.errors import InvalidModelOutput
from worldgen.phases import get_phase
from worldgen.schema.spec import TableSpec

Conn = psycopg.Connection[dict[str, Any]]
campaign = test_save.campaign  # fixtures shared with the saver's tests
specs = test_save.specs


def edge(key: str, a: str, b: str, kind: str = "rival") -> dict[str, Any]:
    return {"key": key, "description": "Old grudge.", "entity_key": a, "related_entity_key": b,
            "relationship_type": kind}  # fmt: skip


def test_every_rule_of_3c_is_reported_at_once_by_row_key_before_the_database_sees_it(
    conn: Conn, campaign: Campaign, specs: dict[str, TableSpec]
) -> None:
    inputs = save_world(conn, campaign, specs, through="3B")
    a, b = (e["key"] for e in inputs["2A"]["entities"][:2])
    phase = get_phase("3C")
    tool_input = empty_input(phase)
    tool_input["entity_relationships"] = [
        edge("self-love", a, a),  # distinct ends
        edge("first-grudge", a, b),
        edge("second-grudge", a, b),  # the same pair and type
    ]
    tool_input["pc_connections"] = [
        {"key": "lyra-alone", "description": "Nobody.", "player_character_key": "lyra-ashdown",
         "connection_type": "secret"},  # no target
    ]  # fmt: skip

    with pytest.raises(InvalidModelOutput) as raised:
        save(conn, campaign, phase, tool_input, specs)

    problems = raised.value.details["problems"]
    assert sorted(problems) == [
        "entity_relationships[key=second-grudge]: same entity_key, related_entity_key, relationship_type as row"
        " 'first-grudge': one row per combination",
        "entity_relationships[key=self-love]: entity_key, related_entity_key must differ (an edge needs two ends)",
        "pc_connections[key=lyra-alone]: give exactly one of entity_key, location_key, item_key, faction_key,"
        " quest_hook_key (given: none)",
    ]
    assert not any(validation._UUID.search(p) for p in problems)
    assert one_row(conn.execute("SELECT count(*) AS n FROM entity_relationships"))["n"] == 0


def test_one_per_parent_is_checked_from_a_single_column_unique(conn: Conn, specs: dict[str, TableSpec]) -> None:
    phase = get_phase("2C")
    tool_input = empty_input(phase)
    sentient = {"name": "Voice", "description": "It talks.", "item_key": "whisper-blade"}
    tool_input["sentient_item_properties"] = [{"key": "voice-1", **sentient}, {"key": "voice-2", **sentient}]

    problems = [str(p) for p in validation.rule_problems(validation.table_rules(conn, phase, specs), tool_input)]

    assert problems == ["sentient_item_properties[key=voice-2]: same item_key as row 'voice-1': one row per parent"]


@pytest.mark.parametrize(
    ("written", "slug"),
    [("Iron_Marches", "iron-marches"), ("iron marches", "iron-marches"), ("Île-d'Or", "ile-d-or")],
)
def test_a_key_is_a_slug_however_it_is_written(written: str, slug: str) -> None:
    assert validation.slug(written) == slug


def test_keys_are_slugged_in_definitions_and_references_alike_and_the_save_succeeds(
    conn: Conn, campaign: Campaign, specs: dict[str, TableSpec]
) -> None:
    phase = get_phase("2B")
    tool_input = empty_input(phase)
    tool_input["locations"] = [
        location("Iron_Marches", "region"),
        location("Port Vell", "city", parent="iron marches"),
    ]

    slugged, problems = validation.slug_keys(phase, specs, tool_input)
    save(conn, campaign, phase, slugged, specs)

    assert problems == []
    assert tool_input["locations"][0]["key"] == "Iron_Marches"  # the model's input is not modified
    rows = conn.execute(
        "SELECT l.key, p.key AS parent FROM locations l LEFT JOIN locations p ON p.id = l.parent_location_id"
        " ORDER BY l.key"
    ).fetchall()
    assert [(r["key"], r["parent"]) for r in rows] == [("iron-marches", None), ("port-vell", "iron-marches")]


def test_two_keys_that_collide_once_slugged_are_reported(specs: dict[str, TableSpec]) -> None:
    phase = get_phase("2B")
    tool_input = empty_input(phase)
    tool_input["locations"] = [location("Iron_Marches", "region"), location("iron marches", "region")]

    _, problems = validation.slug_keys(phase, specs, tool_input)

    assert [str(p) for p in problems] == [
        "locations[key=iron-marches].key: keys 'Iron_Marches' and 'iron marches' are the same key 'iron-marches'"
        " once written as a slug: give them different keys"
    ]


def test_the_tool_schema_is_checked_by_jsonschema_and_located_by_row(specs: dict[str, TableSpec]) -> None:
    phase = get_phase("2B")
    tool_input = empty_input(phase)
    tool_input["locations"] = [location("north-reach", "region", population="many")]

    problems = validation.schema_problems(phase, tool_input)

    assert [(p.table, p.key, p.column) for p in problems] == [("locations", "north-reach", "population")]
    assert "'many' is not of type 'integer'" in problems[0].problem


def test_a_database_rejection_names_the_rows_by_key_never_by_uuid(conn: Conn, campaign: Campaign) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    conn.execute(
        "INSERT INTO locations (id, campaign_id, generation_id, key, name, description, kind)"
        " VALUES (%s, %s, %s, 'north-reach', 'North Reach', 'Cold.', 'region')",
        (first, campaign.id, campaign.generation_id),
    )
    with pytest.raises(psycopg.errors.UniqueViolation) as raised:
        conn.execute(
            "INSERT INTO locations (id, campaign_id, generation_id, key, name, description, kind)"
            " VALUES (%s, %s, %s, 'north-reach', 'Again', 'Cold.', 'region')",
            (second, campaign.id, campaign.generation_id),
        )
    conn.rollback()

    error = validation.database_error("locations", raised.value, {"locations": {"north-reach": second}}, {})

    assert str(campaign.id) in (raised.value.diag.message_detail or "")  # PostgreSQL's words carry a UUID
    assert not validation._UUID.search(error.message)
    assert "locations_campaign_key_unique" in error.message


def test_dropping_a_bad_row_drops_what_in_the_phase_refers_to_it(specs: dict[str, TableSpec]) -> None:
    phase = get_phase("2B")
    tool_input = empty_input(phase)
    tool_input["locations"] = [
        location("north-reach", "region"),
        location("port-vell", "metropolis", parent="north-reach"),
        location("old-quay", "district", parent="port-vell"),
    ]
    problem = validation.Problem("locations", "'metropolis' is not one of ...", 1, "port-vell", "kind")

    result = validation.drop_rows(phase, specs, tool_input, [problem])

    assert result is not None
    kept, dropped = result
    assert [r["key"] for r in kept["locations"]] == ["north-reach"]
    assert [(d["table"], d["key"]) for d in dropped] == [("locations", "old-quay"), ("locations", "port-vell")]
    assert "refers to the dropped locations row 'port-vell'" in dropped[0]["reason"]
    assert validation.drop_rows(phase, specs, tool_input, [validation.Problem("locations", "missing")]) is None


def test_schema_problems_name_the_missing_table_and_each_missing_field(specs: dict[str, TableSpec]) -> None:
    phase = get_phase("2B")
    tool_input = {"locations": [{"key": "north-reach", "kind": "region"}], "dungeons": []}

    problems = {(p.table, p.key, p.column) for p in validation.schema_problems(phase, tool_input)}

    assert problems == {
        ("buildings", None, None),
        ("locations", "north-reach", "name"),
        ("locations", "north-reach", "description"),
    }


def test_dropping_a_duplicated_key_reports_each_row_it_removes(specs: dict[str, TableSpec]) -> None:
    phase = get_phase("2B")
    tool_input = empty_input(phase)
    tool_input["locations"] = [
        location("north-reach", "region"),
        location("port-vell", "city", parent="north-reach"),
        location("port-vell", "town", parent="north-reach"),
    ]
    problem = validation.Problem("locations", "duplicate key 'port-vell'", 2, "port-vell", "key")

    result = validation.drop_rows(phase, specs, tool_input, [problem])

    assert result is not None
    kept, dropped = result
    removed = len(tool_input["locations"]) - len(kept["locations"])
    assert removed == 2
    assert [(d["table"], d["key"]) for d in dropped] == [("locations", "port-vell")] * removed


def test_the_schema_is_checked_by_jsonschema_alone_and_worded_by_column(specs: dict[str, TableSpec]) -> None:
    """A float is no PostgreSQL integer (JSON Schema would take 1.0); a wrong type is reported once,
    in the column's words; what no schema says (PostgreSQL's range, a NUL) by hand."""
    phase = get_phase("2B")
    tool_input = empty_input(phase)
    tool_input["locations"] = [
        location("north-reach", "region", population=1.0),
        location("port-vell", "city", population=True, parent_location_key=7),
        location("mistmoor", "town", population=2**40, description="nul\x00"),
        location("old-quay", "district", population=-1, mayor="Old Mara"),
    ]

    problems = [str(p) for p in validation.validate_phase_input(phase, specs, tool_input, {})]

    assert sorted(problems) == [
        "locations[key=mistmoor].description: text cannot contain the NUL character (\\u0000)",
        "locations[key=mistmoor].population: 1099511627776 does not fit a PostgreSQL integer",
        "locations[key=north-reach].population: expected integer, got float",
        "locations[key=old-quay].mayor: unknown field",
        "locations[key=old-quay].population: -1 is below the minimum 0",
        "locations[key=port-vell].parent_location_key: a reference must be the key (a string) of the referenced row",
        "locations[key=port-vell].population: expected integer, got a boolean",
    ]
