"""A player character's key: transliterated, numbered when the name has no Latin letter, never empty."""

from __future__ import annotations

from typing import Any

import psycopg

from worldgen.local.campaigns import CampaignFile, insert_campaign


def _campaign(names: list[str]) -> CampaignFile:
    return CampaignFile.model_validate(
        {
            "name": "Keys",
            "setting": "A port city on a cold sea.",
            "tone": "grim",
            "player_characters": [
                {"name": n, "race": "human", "character_class": "fighter", "backstory": "A long enough past."}
                for n in names
            ],
        }
    )


def test_worldgen_stores_transliterated_and_numbered_keys(conn: psycopg.Connection[dict[str, Any]]) -> None:
    campaign_id = insert_campaign(conn, _campaign(["Élodie d'Aubigné", "Ярослав", "Lyra"]))

    rows = conn.execute(
        "SELECT name, key FROM player_characters WHERE campaign_id = %s ORDER BY created_at, key", (campaign_id,)
    ).fetchall()

    assert {r["name"]: r["key"] for r in rows} == {
        "Élodie d'Aubigné": "elodie-d-aubigne",
        "Ярослав": "pc-2",
        "Lyra": "lyra",
    }


def test_an_insert_without_a_key_gets_one_from_the_database_as_hasura_sends_it(
    conn: psycopg.Connection[dict[str, Any]],
) -> None:
    campaign_id = insert_campaign(conn, _campaign(["Lyra"]))
    for name in ("Zoë Brightwater", "Ярослав"):
        conn.execute(
            "INSERT INTO player_characters (campaign_id, name, race, character_class, backstory)"
            " VALUES (%s, %s, 'elf', 'bard', 'Sings.')",
            (campaign_id, name),
        )

    keys = {
        r["name"]: r["key"]
        for r in conn.execute("SELECT name, key FROM player_characters WHERE campaign_id = %s", (campaign_id,))
    }

    assert keys["Zoë Brightwater"] == "zoe-brightwater"
    assert keys["Ярослав"] == "pc-3"
