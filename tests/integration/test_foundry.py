"""The world as a Foundry VTT module, built and read back with Foundry's official CLI (issue 25)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.foundry import needs_foundry_cli
from tests.support.worlds import generate_sample_world
from worldgen.local.database import migrated_local_database
from worldgen.phases import RELATIONSHIP_TABLES, WORLD_TABLES
from worldgen.tools.cli import main
from worldgen.tools.export.commands import FOUNDRY_CLI_DIR
from worldgen.tools.export.foundry import NONE, PACK_NAME, run_pack_cli

UUID_LINK = re.compile(r"@UUID\[([^\]]+)\]\{([^}]*)\}")
GM_SENTENCE = "The ferryman Tobin keeps a drowned child's bell and rings it at the wrong tide."


@pytest.fixture
def campaign_id(settings_env: str, conn: Any) -> uuid.UUID:
    migrated_local_database.cache_clear()  # the CLI's database is this test's
    return generate_sample_world(conn)


def export_module(campaign_id: uuid.UUID, folder: Path, audience: str = "gm") -> dict[str, Any]:
    """Export, then unpack the pack with the CLI's extractPack: module.json and every document by id."""
    assert main(["export", str(campaign_id), "--format", "foundry", "--audience", audience, "-o", str(folder)]) == 0
    extracted = folder.parent / f"{folder.name}-extracted"
    run_pack_cli(FOUNDRY_CLI_DIR, "extract", folder / "packs" / PACK_NAME, extracted)
    documents = [json.loads(p.read_text()) for p in sorted(extracted.glob("*.json"))]
    return {
        "manifest": json.loads((folder / "module.json").read_text()),
        "entries": {d["_id"]: d for d in documents if d["_key"].startswith("!journal!")},
        "folders": {d["_id"]: d for d in documents if d["_key"].startswith("!folders!")},
    }


@needs_foundry_cli
def test_the_module_has_an_entry_per_world_row_linked_by_uuid_with_gm_pages_hidden_and_stable_ids(
    conn, campaign_id, tmp_path
):
    npc = conn.execute(
        "SELECT key FROM entities WHERE campaign_id = %s ORDER BY key LIMIT 1", (campaign_id,)
    ).fetchone()
    conn.execute(
        "UPDATE entities SET gm_notes = %s WHERE campaign_id = %s AND key = %s", (GM_SENTENCE, campaign_id, npc["key"])
    )
    first = export_module(campaign_id, tmp_path / "first")
    again = export_module(campaign_id, tmp_path / "again")

    manifest = first["manifest"]
    module_id = manifest["id"]
    assert module_id.startswith("worldgen-") and manifest["compatibility"]["verified"] == "14"
    assert manifest["packs"] == [
        {
            "name": PACK_NAME,
            "label": manifest["packs"][0]["label"],
            "path": f"packs/{PACK_NAME}",
            "type": "JournalEntry",
        }
    ]
    entries = first["entries"]
    rows = {
        (table, r["key"])
        for table in WORLD_TABLES
        if table not in RELATIONSHIP_TABLES
        for r in conn.execute(f"SELECT key FROM {table} WHERE campaign_id = %s", (campaign_id,)).fetchall()
    }
    by_row = {(e["flags"]["worldgen"]["table"], e["flags"]["worldgen"]["key"]): e for e in entries.values()}
    assert len(entries) == len(rows) and set(by_row) == rows  # one JournalEntry per row, none for a link
    assert {f["name"] for f in first["folders"].values()} >= {"NPCs", "Places", "Factions", "Quests", "Items"}
    assert all(e["folder"] in first["folders"] for e in entries.values())

    links = 0
    for entry in entries.values():
        for page in entry["pages"]:
            for target, label in UUID_LINK.findall(page["text"]["content"]):
                links += 1
                prefix, _, target_id = target.rpartition(".")
                assert prefix == f"Compendium.{module_id}.{PACK_NAME}.JournalEntry", target
                assert entries[target_id]["name"].replace("]", ")").replace("}", ")") == label
    assert links > len(entries)  # references and relationship lines both ways

    planted = by_row[("entities", npc["key"])]
    player_page, gm_page = planted["pages"]
    assert player_page["ownership"] == {"default": -1} and gm_page["ownership"] == {"default": NONE}
    assert GM_SENTENCE in gm_page["text"]["content"] and GM_SENTENCE not in player_page["text"]["content"]
    for entry in entries.values():  # players read the first page only; every other page is the GM's
        assert all(page["ownership"]["default"] == NONE for page in entry["pages"][1:])

    assert again["entries"] == entries and again["folders"] == first["folders"]  # a re-export: same ids

    players = export_module(campaign_id, tmp_path / "players", audience="players")
    assert players["manifest"]["id"] == f"{module_id}-players"
    assert all(len(e["pages"]) == 1 for e in players["entries"].values())
    assert GM_SENTENCE not in json.dumps(players)


def test_without_node_the_foundry_export_fails_in_one_line(campaign_id, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "no-node-here"))
    capsys.readouterr()

    assert main(["export", str(campaign_id), "--format", "foundry", "-o", str(tmp_path / "module")]) == 2

    err = capsys.readouterr().err
    assert err.startswith("error: cannot export to Foundry: Node.js is not installed") and err.count("\n") == 1
    assert not (tmp_path / "module").exists()
    assert main(["export", str(campaign_id), "--format", "foundry"]) == 2
    assert capsys.readouterr().err == "error: cannot export: the foundry format writes a module folder: give -o DIR\n"
