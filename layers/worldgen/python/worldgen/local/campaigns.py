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
MIN_SETTING = 10
MAX_SETTING = 2500
MIN_BACKSTORY = 10
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
Setting = Annotated[str, Field(min_length=MIN_SETTING, max_length=MAX_SETTING), NoNul]
Backstory = Annotated[str, Field(min_length=MIN_BACKSTORY, max_length=MAX_BACKSTORY), NoNul]
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
        data = json.loads(without_comments(text))
    except json.JSONDecodeError as exc:
        raise CampaignFileError(path, [f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]) from exc
    try:
        return CampaignFile.model_validate(data)
    except ValidationError as exc:
        raise CampaignFileError(path, [_problem_line(error) for error in exc.errors()]) from exc


def without_comments(text: str) -> str:
    """The JSON of a campaign file whose lines starting with ``//`` are comments (the template's);
    each becomes an empty line, so a JSON error's line number is still the file's."""
    return "\n".join("" if line.lstrip().startswith("//") else line for line in text.split("\n"))


def campaign_template() -> str:
    """A campaign file to fill in, each field explained in a comment with its limit."""
    return f"""// A worldgen campaign. Lines starting with // are comments; the rest is JSON.
// Generate its world with: worldgen generate --campaign THIS_FILE
{{
  // The campaign's name (1-{MAX_SHORT_TEXT} characters): how `worldgen campaigns` lists it.
  "name": "The Frozen Marches",
  // The world in a paragraph ({MIN_SETTING}-{MAX_SETTING} characters): its places, powers and troubles.
  // Names and words from here are what the world is made of.
  "setting": "A frozen northern frontier: reindeer clans roam the tundra, a dead king's fortress guards the pass.",
  // The tone in a few words (1-{MAX_SHORT_TEXT} characters).
  "tone": "Bleak survival with warm hearths and old loyalties",
  // 1 to {MAX_PLAYER_CHARACTERS} player characters; distinct names.
  "player_characters": [
    {{
      // Name (1-{MAX_SHORT_TEXT}); race and class (1-{MAX_LABEL}); level 1-20 (default 1).
      "name": "Ada Frostborn",
      "race": "Human",
      "character_class": "Ranger",
      "level": 3,
      // Backstory ({MIN_BACKSTORY}-{MAX_BACKSTORY} characters): the people, places and debts here become NPCs,
      // locations and quests.
      "backstory": "Raised by reindeer herders after her family's sledge was found empty on the ice.",
      // Optional: goals (up to {MAX_GOALS} characters) and the player's name (up to {MAX_LABEL}).
      "goals": "Learn what took her family on the ice.",
      "player_name": "Sam"
    }}
  ]
}}
"""


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


# -- campaigns and generations as a game master names them ------------------------------------------


class NotFound(ValueError):
    """A campaign or generation the command line named that is not there (or not only one): one line."""


def _as_uuid(reference: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(reference)
    except ValueError:
        return None


def find_campaign(conn: psycopg.Connection[Any], reference: str, *, generations: bool = True) -> uuid.UUID:
    """A campaign by its id, its unique name, or (``generations``) the id of one of its generations."""
    reference = reference.strip()
    as_id = _as_uuid(reference)
    if as_id is not None:
        if conn.execute("SELECT 1 FROM campaigns WHERE id = %s", (as_id,)).fetchone():
            return as_id
        row = conn.execute("SELECT campaign_id FROM generations WHERE id = %s", (as_id,)).fetchone()
        if row is not None and generations:
            return uuid.UUID(str(row["campaign_id"]))
        raise NotFound(f"no campaign or generation has the id {as_id}: `worldgen campaigns` lists them")
    rows = conn.execute(
        "SELECT id, created_at FROM campaigns WHERE lower(name) = lower(%s) ORDER BY created_at", (reference,)
    ).fetchall()
    if len(rows) == 1:
        return uuid.UUID(str(rows[0]["id"]))
    if not rows:
        raise NotFound(f"no campaign is named {reference!r}: `worldgen campaigns` lists them")
    ids = ", ".join(f"{row['id']} (made {row['created_at']:%Y-%m-%d %H:%M})" for row in rows)
    raise NotFound(f"{len(rows)} campaigns are named {reference!r}: give one of their ids: {ids}")


def find_generation(conn: psycopg.Connection[Any], reference: str | None) -> uuid.UUID:
    """A generation by its id, or a campaign's latest generation (by the campaign's id or name);
    ``None``: the latest generation of all."""
    if reference is None:
        row = conn.execute("SELECT id FROM generations ORDER BY started_at DESC LIMIT 1").fetchone()
        if row is None:
            raise NotFound("no generations yet: run `worldgen demo`")
        return uuid.UUID(str(row["id"]))
    as_id = _as_uuid(reference.strip())
    if as_id is not None and conn.execute("SELECT 1 FROM generations WHERE id = %s", (as_id,)).fetchone():
        return as_id
    campaign_id = find_campaign(conn, reference, generations=False)
    row = conn.execute(
        "SELECT id FROM generations WHERE campaign_id = %s ORDER BY started_at DESC LIMIT 1", (campaign_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"campaign {campaign_id} has no generation yet")
    return uuid.UUID(str(row["id"]))


def campaign_rows(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every campaign with its PCs, its latest generation (status, cost) and its world's rows, oldest first."""
    rows = conn.execute(
        "SELECT c.id, c.name, c.created_at,"
        " (SELECT count(*) FROM player_characters p WHERE p.campaign_id = c.id) AS pcs,"
        " g.id AS generation_id, g.status, g.profile, g.model_provider,"
        " (SELECT coalesce(sum(m.cost_usd), 0) FROM model_calls m WHERE m.generation_id = g.id) AS cost_usd"
        " FROM campaigns c LEFT JOIN LATERAL (SELECT * FROM generations x WHERE x.campaign_id = c.id"
        "   ORDER BY x.started_at DESC LIMIT 1) g ON true"
        " ORDER BY c.created_at, c.id"
    ).fetchall()
    return [{**row, "rows": world_rows(conn, row["id"])} for row in rows]


class RemoveRefused(ValueError):
    """A campaign that cannot be removed now (its world is being generated)."""


def remove_campaign(conn: psycopg.Connection[Any], campaign_id: uuid.UUID) -> int:
    """Delete the campaign and, by its foreign keys' ON DELETE CASCADE, its PCs, generations and world.
    Returns the world rows removed. Refused while one of its generations is pending or running."""
    with conn.transaction():
        campaign = conn.execute("SELECT id FROM campaigns WHERE id = %s FOR UPDATE", (campaign_id,)).fetchone()
        if campaign is None:
            raise NotFound(f"no campaign has the id {campaign_id}")
        active = conn.execute(
            "SELECT id FROM generations WHERE campaign_id = %s AND status IN ('pending', 'running')", (campaign_id,)
        ).fetchone()
        if active is not None:
            raise RemoveRefused(
                f"campaign {campaign_id} is being generated (generation {active['id']}): "
                f"`worldgen cancel {active['id']}` first"
            )
        rows = world_rows(conn, campaign_id)
        conn.execute("DELETE FROM campaigns WHERE id = %s", (campaign_id,))
    return rows


def world_rows(conn: psycopg.Connection[Any], campaign_id: uuid.UUID | str) -> int:
    """The rows of the campaign's world now, in every world table."""
    from psycopg import sql

    from worldgen.phases import WORLD_TABLES

    counts = sql.SQL(" + ").join(
        sql.SQL("(SELECT count(*) FROM {} WHERE campaign_id = %(c)s)").format(sql.Identifier(t)) for t in WORLD_TABLES
    )
    row = conn.execute(sql.SQL("SELECT {} AS n").format(counts), {"c": str(campaign_id)}).fetchone()
    return int(row["n"]) if row else 0


def same_campaign(conn: psycopg.Connection[Any], campaign: CampaignFile) -> uuid.UUID | None:
    """The stored campaign with this file's name, owner, setting, tone and PCs, if there is one
    (the demo generates its sample campaign again instead of adding another copy)."""
    rows = conn.execute(
        "SELECT id FROM campaigns WHERE name = %s AND owner_id = %s AND setting = %s AND tone = %s"
        " ORDER BY created_at DESC",
        (campaign.name, campaign.owner_id, campaign.setting, campaign.tone),
    ).fetchall()
    wanted = sorted(player_character_key(pc.name, n) for n, pc in enumerate(campaign.player_characters, start=1))
    for row in rows:
        keys = conn.execute("SELECT key FROM player_characters WHERE campaign_id = %s", (row["id"],)).fetchall()
        if sorted(k["key"] for k in keys) == wanted:
            return uuid.UUID(str(row["id"]))
    return None
