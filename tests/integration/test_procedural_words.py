"""The offline model speaks the campaign (issue 28): a world's names and text come from its own
setting, tone and backstories, never from the sample campaign's sea."""

from __future__ import annotations

import json
import re
from typing import Any

from worldgen import state
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, CampaignFile, insert_campaign
from worldgen.phases import PHASES, WORLD_TABLES
from worldgen.pipeline import run_phase
from worldgen.schema.tools import load_tool

FROSTMARCH = {
    "name": "Frostmarch",
    "owner_id": "gm-north",
    "setting": (
        "A frozen northern march where reindeer clans roam the endless tundra beneath a pale aurora. "
        "The fallen king's iron fortress of Kaldheim guards the only mountain pass, and frost giants wake "
        "in the glaciers when the long night comes. Fur traders and rune-carvers barter for amber charms."
    ),
    "tone": "Bleak survival with warm hearths and old loyalties",
    "player_characters": [
        {
            "name": "Ada Frostborn",
            "race": "Human",
            "character_class": "Ranger",
            "backstory": "Raised by reindeer herders after her family's sledge was found empty on the glacier.",
        },
        {
            "name": "Bjorn Ashfell",
            "race": "Dwarf",
            "character_class": "Fighter",
            "backstory": "A former guard of the iron fortress who deserted when the king's heir fled into the pass.",
        },
    ],
}


def words(text: str) -> set[str]:
    return {word.lower() for word in re.findall(r"[A-Za-z]{4,}", text)}


def schema_words() -> set[str]:
    """The closed vocabularies of the tool schemas (a relation's kind 'lost', a place's 'village'):
    the schema's words, which any world may use."""
    found: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.get("enum", []):
                found.update(words(str(value).replace("_", " ")))
            for child in node.values():
                visit(child)
        elif isinstance(node, list):
            for child in node:
                visit(child)

    for phase in PHASES:
        visit(load_tool(phase))
    return found


def sample_only_words() -> set[str]:
    """Words of the sample campaign (The Drowned Crown: its setting, tone, names, backstories) that
    the Frostmarch campaign does not use and the schema does not offer: none may appear in
    Frostmarch's offline world."""
    return words(SAMPLE_CAMPAIGN.read_text()) - words(json.dumps(FROSTMARCH)) - schema_words()


def world_text(conn: Any, campaign_id: Any) -> str:
    """Every name and description of the world, and every other free text the model wrote (the
    closed vocabularies, CHECK-constrained kinds such as 'village', are the schema's words)."""
    texts = []
    for table in WORLD_TABLES:
        for row in conn.execute(f"SELECT * FROM {table} WHERE campaign_id = %s", (campaign_id,)).fetchall():
            texts += [str(v) for k, v in row.items() if k in ("name", "description")]
    return "\n".join(texts)


def test_a_frozen_north_campaigns_offline_world_carries_none_of_the_sample_campaigns_words(settings_env, conn):
    campaign_id = insert_campaign(conn, CampaignFile.model_validate(FROSTMARCH))
    generation = state.create_generation(conn, campaign_id, provider="procedural")
    for phase in PHASES:
        run_phase(conn, generation, phase.id)

    text = world_text(conn, campaign_id)
    found = words(text)

    assert len(found) > 100  # a world was written
    leaked = sorted(found & sample_only_words())
    assert leaked == [], f"the sample campaign's words in Frostmarch's world: {leaked}"
    # and its own setting's words name things
    names = " ".join(
        row["name"]
        for row in conn.execute(
            "SELECT name FROM locations UNION ALL SELECT name FROM temples"
            " UNION ALL SELECT name FROM taverns UNION ALL SELECT name FROM"
            " geography_regions UNION ALL SELECT name FROM quest_hooks"
        ).fetchall()
    )
    assert words(names) & {"frozen", "northern", "bleak", "tundra", "aurora", "fortress", "glaciers", "pass"}
    factions_and_places = conn.execute(
        "SELECT name FROM factions WHERE campaign_id = %(c)s UNION ALL SELECT name FROM locations"
        " WHERE campaign_id = %(c)s",
        {"c": campaign_id},
    ).fetchall()
    assert any("Kaldheim" in row["name"] for row in factions_and_places), "a name the setting gives names a place"
