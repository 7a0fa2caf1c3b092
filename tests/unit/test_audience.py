"""What a players export leaves out and when it refuses (``tools.export.audience``), on small hand-made worlds."""

from __future__ import annotations

from typing import Any

import pytest

from worldgen.phases import WORLD_TABLES
from worldgen.tools.export.audience import SecretLeak, for_audience
from worldgen.tools.export.world import committed_schema


def small_world(**rows: list[dict[str, Any]]) -> dict[str, Any]:
    world: dict[str, list[dict[str, Any]]] = {table: [] for table in WORLD_TABLES}
    world.update(rows)
    return {
        "format": "worldgen-export",
        "version": 1,
        "campaign": {"name": "Saltmark", "setting": "A drowned coast.", "tone": "grim"},
        "player_characters": [{"key": "isolde", "name": "Isolde", "backstory": "A smuggler's daughter."}],
        "generations": [{"key": "generation-1", "phase_runs": [{"phase": "1A"}], "model_calls": [{"phase": "1A"}]}],
        "world": world,
    }


def npc(key: str, name: str, description: str = "A sailor.", gm_notes: str = "") -> dict[str, Any]:
    return {"key": key, "name": name, "description": description, "gm_notes": gm_notes}


def faction(key: str, name: str) -> dict[str, Any]:
    return {"key": key, "name": name, "description": "A band.", "gm_notes": ""}


def membership(key: str, entity: str, faction_key: str, *, secret: bool) -> dict[str, Any]:
    return {"key": key, "entity_key": entity, "faction_key": faction_key, "description": "-", "is_secret": secret}


def keys(document: dict[str, Any], table: str) -> list[str]:
    return [row["key"] for row in document["world"][table]]


def test_a_row_known_only_through_a_secret_link_is_left_out_with_the_link() -> None:
    document = small_world(
        entities=[npc("ama", "Ama Vor"), npc("bren", "Bren Hale"), npc("cole", "Cole")],
        factions=[faction("ash-cult", "Cult of Ash"), faction("guild", "Tide Guild")],
        locations=[{"key": "quay", "name": "Quay", "description": "Wet.", "ruler_entity_key": "ama"}],
        entity_factions=[
            membership("ama-cult", "ama", "ash-cult", secret=True),
            membership("bren-guild", "bren", "guild", secret=False),
            membership("cole-cult", "cole", "ash-cult", secret=True),
        ],
    )

    players = for_audience(document, committed_schema(), "players")

    assert keys(players, "entity_factions") == ["bren-guild"]
    assert keys(players, "factions") == ["guild"]  # the cult: nobody public points at it
    assert keys(players, "entities") == ["ama", "bren"]  # Ama rules the quay; Cole is only a secret member
    assert all("gm_notes" not in r and "is_secret" not in r for rows in players["world"].values() for r in rows)
    assert players["generations"][0]["phase_runs"] == [] and players["audience"] == "players"
    gm = for_audience(document, committed_schema(), "gm")
    assert keys(gm, "factions") == ["ash-cult", "guild"] and keys(gm, "entities") == ["ama", "bren", "cole"]
    assert gm["audience"] == "gm"


def test_a_row_a_public_row_points_at_stays_even_when_a_secret_link_ties_it() -> None:
    document = small_world(
        entities=[npc("ama", "Ama Vor")],
        factions=[faction("ash-cult", "Cult of Ash")],
        locations=[{"key": "crypt", "name": "Crypt", "description": "Cold.", "controlling_faction_key": "ash-cult"}],
        entity_factions=[membership("ama-cult", "ama", "ash-cult", secret=True)],
    )

    players = for_audience(document, committed_schema(), "players")

    assert keys(players, "factions") == ["ash-cult"] and keys(players, "entity_factions") == []


def test_naming_the_other_end_of_a_secret_link_in_public_text_is_a_leak_naming_row_and_column() -> None:
    document = small_world(
        entities=[npc("ama", "Ama Vor", description="Ama sings hymns of the cult of ash at night.")],
        factions=[faction("ash-cult", "Cult of Ash")],
        locations=[
            {"key": "crypt", "name": "Crypt", "description": "Cold.", "controlling_faction_key": "ash-cult"},
            {"key": "quay", "name": "Quay", "description": "Wet.", "ruler_entity_key": "ama"},
        ],
        entity_factions=[membership("ama-cult", "ama", "ash-cult", secret=True)],
    )

    with pytest.raises(SecretLeak) as refused:
        for_audience(document, committed_schema(), "players")

    assert str(refused.value) == (
        "entities[key=ama].description names factions[key=ash-cult], tied to it only by the secret link"
        " entity_factions[key=ama-cult]"
    )


def test_a_gm_sentence_of_eight_words_anywhere_public_is_a_leak_and_a_shorter_one_is_not() -> None:
    notes = "She hides the drowned king's crown under her bed. Trust no one."
    document = small_world(
        entities=[npc("ama", "Ama Vor", gm_notes=notes), npc("bren", "Bren Hale", description="Trust no one.")],
    )
    assert for_audience(document, committed_schema(), "players")  # "Trust no one." is three words

    document["world"]["entities"][1]["description"] = 'Rumour: "she HIDES the drowned king\'s crown under her bed"!'
    with pytest.raises(SecretLeak) as refused:
        for_audience(document, committed_schema(), "players")

    (leak,) = refused.value.leaks
    assert (leak.table, leak.key, leak.column) == ("entities", "bren", "description")
    assert str(leak) == "entities[key=bren].description repeats a sentence of entities[key=ama]'s gm_notes"
