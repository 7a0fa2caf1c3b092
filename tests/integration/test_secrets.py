"""Secrets apart from what players read (issue 25): the model is asked for them, the offline one writes them."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from tests.support.foundry import needs_foundry_cli
from tests.support.worlds import generate_sample_world
from worldgen.contracts import GM_NOTES_COLUMN, SECRET_LINK_COLUMN
from worldgen.local.database import migrated_local_database
from worldgen.phases import get_phase
from worldgen.schema.tools import load_tool
from worldgen.tools.export.commands import FOUNDRY_CLI_DIR
from worldgen.tools.export.foundry import PACK_NAME, run_pack_cli

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


# ---------------------------------------------------------------- exports by audience

GM_SENTENCE = "The lamplighter Osk secretly poisons the harbour wells on every new moon."
SECRET_LINK_KEY = "planted-secret-membership"
SECRET_LINK_TEXT = "Sworn in a cellar under the fish market"
FORMATS = ("json", "markdown", "html")
FOUNDRY = pytest.param("foundry", marks=needs_foundry_cli)


def plant_secrets(conn: Any, campaign_id: uuid.UUID) -> dict[str, str]:
    """An NPC's gm_notes with a sentence of its own, and a faction membership of another NPC made secret."""
    npc = conn.execute(
        "SELECT key FROM entities WHERE campaign_id = %s ORDER BY key LIMIT 1", (campaign_id,)
    ).fetchone()["key"]
    conn.execute(
        "UPDATE entities SET gm_notes = %s WHERE campaign_id = %s AND key = %s",
        (f"{GM_SENTENCE} Reveal it late.", campaign_id, npc),
    )
    link = conn.execute(
        "SELECT ef.key, e.key AS npc FROM entity_factions ef JOIN entities e ON e.id = ef.entity_id"
        " JOIN factions f ON f.id = ef.faction_id"
        # a membership the NPC's public text does not give away (that one the leak check refuses)
        " WHERE ef.campaign_id = %s AND position(lower(f.name) IN lower(e.description)) = 0"
        " ORDER BY ef.key LIMIT 1",
        (campaign_id,),
    ).fetchone()
    conn.execute(
        "UPDATE entity_factions SET key = %s, description = %s, is_secret = true WHERE campaign_id = %s AND key = %s",
        (SECRET_LINK_KEY, f"{SECRET_LINK_TEXT}.", campaign_id, link["key"]),
    )
    return {"npc": npc, "member": link["npc"]}


def exported_text(tmp_path: Any, campaign_id: uuid.UUID, fmt: str, audience: str) -> str:
    """Everything an export wrote, as one text: a file, or every file name and file of a folder."""
    from worldgen.tools.cli import main

    target = tmp_path / f"{fmt}-{audience}"
    assert main(["export", str(campaign_id), "--format", fmt, "--audience", audience, "-o", str(target)]) == 0
    if target.is_file():
        return target.read_text()
    if fmt == "foundry":  # the pack is LevelDB (compressed): read it back as Foundry's CLI extracts it
        run_pack_cli(FOUNDRY_CLI_DIR, "extract", target / "packs" / PACK_NAME, tmp_path / f"extracted-{audience}")
        files = [target / "module.json", *sorted((tmp_path / f"extracted-{audience}").glob("*.json"))]
        return "\n".join(p.read_text() for p in files)
    return "\n".join(f"{p.relative_to(target)}\n{p.read_text()}" for p in sorted(target.rglob("*")) if p.is_file())


@pytest.mark.parametrize("fmt", [*FORMATS, FOUNDRY])
def test_a_planted_secret_is_in_every_gm_export_and_in_no_players_export(conn, campaign_id, tmp_path, fmt):
    plant_secrets(conn, campaign_id)

    gm = exported_text(tmp_path, campaign_id, fmt, "gm")
    players = exported_text(tmp_path, campaign_id, fmt, "players")

    assert GM_SENTENCE in gm and SECRET_LINK_TEXT in gm
    if fmt != "foundry":  # a Foundry module makes a link a line on its rows' pages, not an entry of its own
        assert SECRET_LINK_KEY in gm
    assert GM_SENTENCE not in players
    assert SECRET_LINK_KEY not in players and SECRET_LINK_TEXT not in players
    # Nothing says what was left out: no GM notes field, callout or secret flag at all.
    for word in ("gm_notes", "GM notes", "is_secret", "secret link"):
        assert word not in players, word


def test_a_players_export_whose_public_text_repeats_a_gm_sentence_is_refused_naming_the_row(
    conn, campaign_id, tmp_path, capsys
):
    from worldgen.tools.cli import main

    planted = plant_secrets(conn, campaign_id)
    conn.execute(
        "UPDATE entities SET description = description || ' ' || %s WHERE campaign_id = %s AND key = %s",
        (GM_SENTENCE.upper(), campaign_id, planted["npc"]),  # compared without case
    )
    capsys.readouterr()

    for fmt in (*FORMATS, "foundry"):  # refused before anything is built: no Node needed
        target = tmp_path / f"refused-{fmt}"
        assert main(["export", str(campaign_id), "--format", fmt, "--audience", "players", "-o", str(target)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err  # one line
        assert err.startswith(f"error: cannot export for players: entities[key={planted['npc']}].description repeats")
        assert "gm_notes" in err
        assert not target.exists()
    # The game master's own export is not refused: it is meant to hold everything.
    assert main(["export", str(campaign_id), "--audience", "gm", "-o", str(tmp_path / "gm.json")]) == 0


def test_import_keeps_gm_notes_and_secret_links_and_a_players_file_imports_without_them(conn, campaign_id, tmp_path):
    from worldgen.tools.export import world
    from worldgen.tools.export.audience import for_audience

    planted = plant_secrets(conn, campaign_id)
    document = world.export_world(conn, campaign_id)

    copy_id = world.import_world(conn, json.loads(world.dumps(for_audience(document, world.committed_schema(), "gm"))))
    notes = conn.execute(
        "SELECT gm_notes FROM entities WHERE campaign_id = %s AND key = %s", (copy_id, planted["npc"])
    ).fetchone()["gm_notes"]
    secret = conn.execute(
        "SELECT is_secret FROM entity_factions WHERE campaign_id = %s AND key = %s", (copy_id, SECRET_LINK_KEY)
    ).fetchone()
    assert GM_SENTENCE in notes and secret["is_secret"] is True

    players = for_audience(document, world.committed_schema(), "players")
    assert world.document_problems(players) == []
    players_id = world.import_world(conn, json.loads(world.dumps(players)))
    assert (
        conn.execute(
            "SELECT count(*) AS n FROM entities WHERE campaign_id = %s AND gm_notes <> ''", (players_id,)
        ).fetchone()["n"]
        == 0
    )
    assert (
        conn.execute(
            "SELECT count(*) AS n FROM entity_factions WHERE campaign_id = %s AND key = %s",
            (players_id, SECRET_LINK_KEY),
        ).fetchone()["n"]
        == 0
    )


def test_vault_notes_open_with_obsidian_properties_and_keep_gm_notes_in_a_callout_players_never_get(conn, campaign_id):
    import yaml

    from worldgen.tools.export import world
    from worldgen.tools.export.audience import for_audience
    from worldgen.tools.export.markdown import markdown_vault

    planted = plant_secrets(conn, campaign_id)
    document = world.export_world(conn, campaign_id)
    schema = world.committed_schema()
    gm = markdown_vault(for_audience(document, schema, "gm"), schema)
    players = markdown_vault(for_audience(document, schema, "players"), schema)

    note = gm[f"entities/{planted['npc']}.md"]
    assert note.startswith("---\n")
    properties = yaml.safe_load(note.split("---\n")[1])
    row = next(r for r in document["world"]["entities"] if r["key"] == planted["npc"])
    assert properties["kind"] == "entities" and properties["key"] == planted["npc"]
    assert properties["tags"] == ["worldgen/entities"] and properties["aliases"] == [row["name"]]
    pc_names = {pc["name"] for pc in document["player_characters"]}
    assert properties["pcs"] and set(properties["pcs"]) <= pc_names
    assert f"> [!secret]- GM notes\n> {GM_SENTENCE}" in note
    assert yaml.safe_load(gm[f"entity_factions/{SECRET_LINK_KEY}.md"].split("---\n")[1])["secret"] is True

    public = players[f"entities/{planted['npc']}.md"]
    assert yaml.safe_load(public.split("---\n")[1])["key"] == planted["npc"]
    assert "[!secret]" not in public and f"entity_factions/{SECRET_LINK_KEY}.md" not in players
