"""The HTML report's picture of a world: things as nodes, relationship rows and references as labelled
edges, and the players' copy without the secret rows and GM notes (built from a small hand-made file)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from worldgen.phases import get_phase
from worldgen.tools.export import world
from worldgen.tools.export.graph import RELATIONSHIP_TYPES, relationship_graph
from worldgen.tools.export.html import html_report, report_data

SCHEMA = world.committed_schema()


def small_world() -> dict[str, Any]:
    """Two NPCs (one of a faction, rivals), a deity worshipped at a temple, a PC tied to an NPC."""
    return {
        "campaign": {"name": "Test", "setting": "A coast.", "tone": "grim"},
        "generations": [{"key": "generation-1", "model_provider": "procedural", "total_cost_usd": 0}],
        "player_characters": [{"key": "ayla", "name": "Ayla"}],
        "world": {
            "factions": [{"key": "gulls", "name": "The Gulls"}],
            "deities": [{"key": "ossra", "name": "Ossra"}],
            "locations": [{"key": "port", "name": "Port"}],
            "temples": [{"key": "shrine", "name": "Shrine", "location_key": "port", "deity_key": "ossra"}],
            "entities": [
                {"key": "bram", "name": "Bram", "faction_key": "gulls", "generation_key": "generation-1"},
                {"key": "cora", "name": "Cora", "gm_notes": "She is the traitor.", "faction_key": None},
            ],
            "entity_relationships": [
                {
                    "key": "bram-cora",
                    "entity_key": "bram",
                    "related_entity_key": "cora",
                    "relationship_type": "rival",
                    "description": "Old grudge.",
                    "strength": 7,
                },
            ],
            "entity_factions": [
                {"key": "cora-gulls", "entity_key": "cora", "faction_key": "gulls", "rank": None, "is_secret": True},
            ],
            "entity_deities": [
                {
                    "key": "bram-ossra",
                    "entity_key": "bram",
                    "deity_key": "ossra",
                    "temple_key": "shrine",
                    "devotion": "devout",
                },
            ],
            "pc_connections": [
                {
                    "key": "ayla-bram",
                    "player_character_key": "ayla",
                    "entity_key": "bram",
                    "item_key": None,
                    "connection_type": "debt",
                },
            ],
        },
    }


def edges_of(graph: Any) -> set[tuple[str, str, str]]:
    return {(e.source, e.target, e.label) for e in graph.edges}


def test_the_relationship_tables_are_phase_3c_tables() -> None:
    assert set(RELATIONSHIP_TYPES) == set(get_phase("3C").tables)


def test_relationship_rows_are_labelled_edges_and_references_edges_of_their_own() -> None:
    graph = relationship_graph(small_world(), SCHEMA)

    assert set(graph.nodes) == {
        "player_characters/ayla",
        "factions/gulls",
        "deities/ossra",
        "locations/port",
        "temples/shrine",
        "entities/bram",
        "entities/cora",
    }
    relationships = {(e.source, e.target, e.label) for e in graph.edges if e.relationship is not None}
    assert relationships == {
        ("entities/bram", "entities/cora", "rival"),
        ("entities/cora", "factions/gulls", "member"),  # no rank: the tie's own word
        ("entities/bram", "deities/ossra", "devout"),  # the temple is a detail, not an end
        ("player_characters/ayla", "entities/bram", "debt"),
    }
    references = {(e.source, e.target, e.label) for e in graph.edges if e.relationship is None}
    assert references == {
        ("temples/shrine", "locations/port", "location"),
        ("temples/shrine", "deities/ossra", "deity"),
        ("entities/bram", "factions/gulls", "faction"),  # the generation is the audit, not an edge
    }


def test_the_report_data_carries_each_edges_label_fields_and_further_ends() -> None:
    data = report_data(small_world(), SCHEMA)

    names = [n["id"] for n in data["nodes"]]
    worship = next(e for e in data["edges"] if e.get("k") == "bram-ossra")
    assert (names[worship["s"]], names[worship["t"]], worship["l"]) == ("entities/bram", "deities/ossra", "devout")
    assert worship["f"] == "entity_deities"
    assert worship["x"] == [["temple", names.index("temples/shrine")]]
    rivalry = next(e for e in data["edges"] if e.get("k") == "bram-cora")
    assert rivalry["d"] == {"description": "Old grudge.", "relationship_type": "rival", "strength": 7}
    assert "entity_relationships" not in data["tables"] and data["tables"][0] == "player_characters"
    assert len(data["nodes"]) == 7 and len(data["edges"]) == 7
    groups = {name: [data["tables"][k] for k in kinds] for name, kinds in data["groups"]}
    assert groups["Player characters"] == ["player_characters"]
    assert groups["Social framework"] == ["factions", "deities"]  # the kinds phase 1C makes
    assert sorted(k for _, kinds in data["groups"] for k in kinds) == list(range(len(data["tables"])))


def test_the_players_copy_has_no_secret_edge_and_no_gm_note_in_its_data() -> None:
    document = small_world()
    document["world"]["locations"].append({"key": "vault", "name": "The Vault", "is_secret": True})
    document["world"]["entities"][0]["home_location_key"] = None

    gm = html_report(document, SCHEMA, audience="gm")
    players = html_report(document, SCHEMA, audience="players")
    data = report_data(document, SCHEMA, audience="players")

    assert "She is the traitor." in gm and "cora-gulls" in gm and "The Vault" in gm
    assert "She is the traitor." not in players and "gm_notes" not in players and "is_secret" not in players
    assert "cora-gulls" not in players  # the secret membership's edge is not in the page at all
    assert "The Vault" not in players  # nor a secret row's node
    assert ("entities/cora", "factions/gulls") not in {
        (data["nodes"][e["s"]]["id"], data["nodes"][e["t"]]["id"]) for e in data["edges"]
    }
    assert data["audience"] == "players" and json.loads(json.dumps(data)) == data


def test_an_edge_to_a_row_the_players_do_not_see_is_left_out_with_it() -> None:
    document = small_world()
    document["world"]["entities"][1]["is_secret"] = True  # Cora herself is a secret

    graph = relationship_graph(document, SCHEMA, audience="players")

    assert "entities/cora" not in graph.nodes
    assert all("entities/cora" not in (e.source, e.target) for e in graph.edges)
    assert ("entities/bram", "factions/gulls", "faction") in edges_of(graph)


def test_an_unknown_audience_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown audience 'everyone'"):
        relationship_graph(small_world(), SCHEMA, audience="everyone")
