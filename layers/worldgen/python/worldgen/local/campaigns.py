"""Campaign files: a setting, a tone and the player characters, loaded into the database."""

from __future__ import annotations

import json
import re
import unicodedata
import uuid
from pathlib import Path
from typing import Annotated, Any

import psycopg
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

SAMPLE_CAMPAIGN = Path(__file__).with_name("sample_campaign.json")

# Limits that keep the campaign's own text (setting, tone, every PC) within about half of a phase's
# context budget (12,000 tokens), so the world generated so far still has room in every prompt;
# tests/unit/test_campaign_file.py checks the worst case against the registry.
MAX_PLAYER_CHARACTERS = 8
MAX_SHORT_TEXT = 200  # campaign name, tone, PC name
MAX_LABEL = 100  # race, class, player name
MAX_SETTING = 2500
MAX_BACKSTORY = 1400
MAX_GOALS = 500
MAX_FILE_BYTES = 1_000_000


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("contains the NUL character (\\u0000), which PostgreSQL cannot store")
    return text


NoNul = AfterValidator(_no_nul)
ShortText = Annotated[str, Field(min_length=1, max_length=MAX_SHORT_TEXT), NoNul]
Label = Annotated[str, Field(min_length=1, max_length=MAX_LABEL), NoNul]
OptionalLabel = Annotated[str, Field(max_length=MAX_LABEL), NoNul]
Setting = Annotated[str, Field(min_length=10, max_length=MAX_SETTING), NoNul]
Backstory = Annotated[str, Field(min_length=10, max_length=MAX_BACKSTORY), NoNul]
Goals = Annotated[str, Field(max_length=MAX_GOALS), NoNul]


def player_character_key(name: str, number: int = 1) -> str:
    """A PC's key: the name slugged with its accents transliterated (Unicode NFKD, as the
    ``player_characters_default_key`` trigger does), else ``pc-<number>`` for a name with no Latin
    letter or digit (``Ярослав``)."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-") or f"pc-{number}"


class PlayerCharacterFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: ShortText
    race: Label
    character_class: Label
    level: int = Field(default=1, ge=1, le=20)
    backstory: Backstory
    goals: Goals | None = None
    player_name: OptionalLabel | None = None


class CampaignFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: ShortText
    owner_id: Label = "local-game-master"
    setting: Setting
    tone: ShortText
    player_characters: list[PlayerCharacterFile] = Field(min_length=1, max_length=MAX_PLAYER_CHARACTERS)

    @model_validator(mode="after")
    def _keys_are_distinct(self) -> CampaignFile:
        seen: dict[str, str] = {}
        problems = []
        for number, pc in enumerate(self.player_characters, start=1):
            key = player_character_key(pc.name, number)
            if key in seen:
                same = "the same name" if seen[key] == pc.name else f"the same key {key!r} as {seen[key]!r}"
                problems.append(f"the name {pc.name!r} gives {same}; player characters need distinct names")
            else:
                seen[key] = pc.name
        if problems:
            raise ValueError("; ".join(problems))
        return self


class CampaignFileError(ValueError):
    """A campaign file that cannot be used; ``problems`` are one line each, for a person."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        super().__init__(f"{path}: " + "; ".join(problems))
        self.path, self.problems = path, problems


def read_campaign_file(path: Path) -> CampaignFile:
    """The campaign in ``path``, or CampaignFileError listing every problem (line and column for JSON)."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise CampaignFileError(path, [f"the file is over {MAX_FILE_BYTES} bytes"])
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CampaignFileError(path, [f"not UTF-8 text (byte {exc.start})"]) from exc
    except OSError as exc:
        raise CampaignFileError(path, [exc.strerror or str(exc)]) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CampaignFileError(path, [f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]) from exc
    try:
        return CampaignFile.model_validate(data)
    except ValidationError as exc:
        raise CampaignFileError(path, [_problem_line(error) for error in exc.errors()]) from exc


def _problem_line(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "the file"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}"


def insert_campaign(conn: psycopg.Connection[Any], campaign: CampaignFile) -> uuid.UUID:
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO campaigns (owner_id, name, setting, tone) VALUES (%s, %s, %s, %s) RETURNING id",
            (campaign.owner_id, campaign.name, campaign.setting, campaign.tone),
        ).fetchone()
        assert row is not None
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO player_characters (campaign_id, key, name, race, character_class, level, backstory,"
                " goals, player_name) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (
                        row["id"],
                        player_character_key(pc.name, number),
                        pc.name,
                        pc.race,
                        pc.character_class,
                        pc.level,
                        pc.backstory,
                        pc.goals,
                        pc.player_name,
                    )
                    for number, pc in enumerate(campaign.player_characters, start=1)
                ],
            )
    return uuid.UUID(str(row["id"]))
