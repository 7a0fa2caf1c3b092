"""Secrets apart from what players read (issue 25): the model is asked for them, the offline one writes them."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from tests.support.worlds import generate_sample_world
from worldgen.contracts import GM_NOTES_COLUMN, SECRET_LINK_COLUMN
from worldgen.local.database import migrated_local_database
from worldgen.phases import get_phase
from worldgen.schema.tools import load_tool

GM_TABLES = (
    "entities", "factions", "locations", "dungeons", "buildings", "items", "quest_hooks", "encounters",
    "deities", "shops", "taverns", "temples",
)  # fmt: skip
SECRET_LINK_TABLES = (
    "entity_factions",
    "entity_relationships",
    "entity_locations",
    "entity_items",
    "faction_relationships",
)


@pytest.fixture
def campaign_id(settings_env: str, conn: Any) -> uuid.UUID:
    migrated_local_database.cache_clear()  # the CLI's database is this test's
    return generate_sample_world(conn)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]


def test_the_tools_ask_for_gm_notes_apart_from_the_description_and_for_secret_links() -> None:
    offered: dict[str, dict[str, Any]] = {}
    for phase_id in ("1C", "2A", "2B", "2C", "3A", "3B", "3C"):
        tool = load_tool(get_phase(phase_id))
        for table, schema in tool["input_schema"]["properties"].items():
            offered[table] = schema["items"]["properties"]
    for table in GM_TABLES:
        assert "game master only" in offered[table][GM_NOTES_COLUMN]["description"], table
    for table in SECRET_LINK_TABLES:
        assert offered[table][SECRET_LINK_COLUMN]["type"] == "boolean", table
        assert "hidden" in offered[table][SECRET_LINK_COLUMN]["description"], table
    # The NPC's description is what the players learn; it used to ask for the NPC's secrets.
    assert offered["entities"]["description"]["description"].startswith("What the players can learn")
    assert "No secrets: those go in gm_notes." in offered["entities"]["description"]["description"]


def test_the_offline_model_writes_gm_notes_the_description_never_repeats_and_hides_some_links(conn, campaign_id):
    for table in GM_TABLES:
        rows = conn.execute(
            f"SELECT key, description, gm_notes FROM {table} WHERE campaign_id = %s", (campaign_id,)
        ).fetchall()
        assert rows, table
        for row in rows:
            assert len(row["gm_notes"].split()) >= 8, (table, row["key"])
            for sentence in sentences(row["gm_notes"]):
                assert sentence.lower() not in row["description"].lower(), (table, row["key"])
    flags = []
    for table in SECRET_LINK_TABLES:
        flags += [
            r["is_secret"]
            for r in conn.execute(f"SELECT is_secret FROM {table} WHERE campaign_id = %s", (campaign_id,)).fetchall()
        ]
    assert True in flags and False in flags  # some links hidden, most known
    assert flags.count(True) < flags.count(False)
