"""World export and import: the committed JSON Schema, the round trip, refusals, Markdown."""

from __future__ import annotations

import copy
import json
import re
import uuid
from typing import Any

import pytest

from tests.support.worlds import generate_sample_world
from worldgen.local.database import migrated_local_database
from worldgen.phases import PHASES, WORLD_TABLES
from worldgen.tools.cli import main
from worldgen.tools.export import world
from worldgen.tools.export.markdown import markdown_vault

UUID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def campaign_id(settings_env: str, conn: Any) -> uuid.UUID:
    migrated_local_database.cache_clear()  # the CLI's database is this test's
    return generate_sample_world(conn)


def without_export_time(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != "exported_at"}


def test_the_committed_export_schema_is_the_one_the_catalog_gives(conn):
    assert world.build_schema(world.catalog_specs(conn)) == world.committed_schema(), (
        "the world export schema is stale: run `make export-schema`"
    )


def test_an_export_has_every_row_by_key_and_no_uuid(conn, campaign_id):
    document = world.export_world(conn, campaign_id)

    assert world.document_problems(document) == []
    text = world.dumps(document)
    assert not UUID_PATTERN.search(text)
    for table in WORLD_TABLES:
        count = conn.execute(f"SELECT count(*) AS n FROM {table} WHERE campaign_id = %s", (campaign_id,)).fetchone()
        assert len(document["world"][table]) == count["n"], table
    entity = document["world"]["entities"][0]
    assert "race_key" in entity and "race_id" not in entity
    (generation,) = document["generations"]
    assert generation["model_provider"] == "procedural"
    assert [run["phase"] for run in generation["phase_runs"]] == [p.id for p in PHASES]
    assert len(generation["model_calls"]) >= len(PHASES)


def test_export_import_export_gives_the_same_file_apart_from_ids_and_timestamps(conn, campaign_id):
    first = world.export_world(conn, campaign_id)

    imported = world.import_world(conn, json.loads(world.dumps(first)))

    assert imported != campaign_id
    again = world.export_world(conn, imported)
    assert without_export_time(again) == without_export_time(first)
    old_ids = {r["id"] for r in conn.execute("SELECT id FROM entities WHERE campaign_id = %s", (campaign_id,))}
    new_ids = {r["id"] for r in conn.execute("SELECT id FROM entities WHERE campaign_id = %s", (imported,))}
    assert new_ids and not old_ids & new_ids


def test_import_refuses_a_bad_file_listing_every_problem_and_writes_nothing(conn, campaign_id):
    document = world.export_world(conn, campaign_id)
    broken = copy.deepcopy(document)
    del broken["campaign"]["name"]
    broken["world"]["entities"][0]["alignment"] = "sort-of-good"
    broken["world"]["entities"][1]["colour"] = "blue"
    campaigns_before = conn.execute("SELECT count(*) AS n FROM campaigns").fetchone()["n"]

    with pytest.raises(world.ImportRefused) as refused:
        world.import_world(conn, broken)

    problems = "\n".join(refused.value.problems)
    assert len(refused.value.problems) == 3, problems
    assert "'name' is a required property" in problems
    assert "sort-of-good" in problems and "colour" in problems
    assert conn.execute("SELECT count(*) AS n FROM campaigns").fetchone()["n"] == campaigns_before


def test_import_refuses_a_reference_to_a_missing_key(conn, campaign_id):
    document = world.export_world(conn, campaign_id)
    document["world"]["entities"][0]["race_key"] = "no-such-race"

    with pytest.raises(world.ImportRefused) as refused:
        world.import_world(conn, document)

    assert refused.value.problems == [
        f"world/entities[key={document['world']['entities'][0]['key']}].race_key: no races row has key 'no-such-race'"
    ]


def test_the_cli_exports_and_imports_with_one_line_errors(conn, campaign_id, tmp_path, capsys):
    path = tmp_path / "world.json"

    assert main(["export", str(campaign_id), "--format", "json", "-o", str(path)]) == 0
    assert main(["import", str(path)]) == 0
    assert "imported campaign" in capsys.readouterr().out
    assert main(["export", "no-such-campaign"]) == 2
    assert capsys.readouterr().err == (
        "error: cannot export: no campaign is named 'no-such-campaign': `worldgen campaigns` lists them\n"
    )
    path.write_text("{not json")
    assert main(["import", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"cannot read {path}: ")


def test_the_markdown_vault_has_a_note_per_row_and_a_wiki_link_per_reference(conn, campaign_id):
    document = world.export_world(conn, campaign_id)
    notes = markdown_vault(document, world.committed_schema())

    rows = len(document["player_characters"]) + sum(len(r) for r in document["world"].values())
    row_notes = [n for n in notes if "/" in n]
    assert len(row_notes) == rows
    relationship = document["world"]["entity_relationships"][0]
    note = notes[f"entity_relationships/{relationship['key']}.md"]
    assert f"[[entities/{relationship['entity_key']}|" in note
    assert f"[[entities/{relationship['related_entity_key']}|" in note
    npc = next(e for e in document["world"]["entities"] if e["player_character_key"])
    pc_note = notes[f"player_characters/{npc['player_character_key']}.md"]
    assert f"[[entities/{npc['key']}|{npc['name']}]]" in pc_note
    links = re.findall(r"\[\[([^|\]]+)", "".join(notes.values()))
    assert all(f"{target}.md" in notes for target in links), "every wiki-link resolves to a note"
