"""Campaign files: a setting, a tone and the player characters, loaded into the database."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
from pydantic import BaseModel, Field

SAMPLE_CAMPAIGN = Path(__file__).with_name("sample_campaign.json")


class PlayerCharacterFile(BaseModel):
    name: str = Field(min_length=1)
    race: str
    character_class: str
    level: int = Field(default=1, ge=1, le=20)
    backstory: str = Field(min_length=10)
    goals: str | None = None
    player_name: str | None = None


class CampaignFile(BaseModel):
    name: str = Field(min_length=1)
    owner_id: str = "local-game-master"
    setting: str = Field(min_length=10)
    tone: str = Field(min_length=1)
    player_characters: list[PlayerCharacterFile] = Field(min_length=1)


def read_campaign_file(path: Path) -> CampaignFile:
    return CampaignFile.model_validate(json.loads(path.read_text()))


def insert_campaign(conn: psycopg.Connection[Any], campaign: CampaignFile) -> uuid.UUID:
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO campaigns (owner_id, name, setting, tone) VALUES (%s, %s, %s, %s) RETURNING id",
            (campaign.owner_id, campaign.name, campaign.setting, campaign.tone),
        ).fetchone()
        assert row is not None
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO player_characters (campaign_id, name, race, character_class, level, backstory, goals,"
                " player_name) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        row["id"],
                        pc.name,
                        pc.race,
                        pc.character_class,
                        pc.level,
                        pc.backstory,
                        pc.goals,
                        pc.player_name,
                    )
                    for pc in campaign.player_characters
                ],
            )
    return uuid.UUID(str(row["id"]))
