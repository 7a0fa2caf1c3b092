"""Locked rows: what a game master edited and locked survives regenerating its phase."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any

import pytest

from tests.support.worlds import generate_sample_world
from worldgen.db.context import phase_context
from worldgen.db.save import existing_keys, external_tables
from worldgen.db.validation import validate_phase_input
from worldgen.phases import get_phase
from worldgen.pipeline import table_specs

EDITED = "Edited by the game master: now a retired smuggler who owes the party a favour."
LINK_TABLES = {  # the 3C tables with a NOT NULL reference to an NPC
    "entity_relationships": ("entity_id", "related_entity_id"),
    "entity_locations": ("entity_id",),
    "entity_factions": ("entity_id",),
    "entity_items": ("entity_id",),
    "entity_deities": ("entity_id",),
    "quest_hook_entities": ("entity_id",),
}


def regenerate(campaign_id: uuid.UUID, phase: str, database_url: str) -> None:
    """`worldgen regenerate CAMPAIGN PHASE` as the game master runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORLDGEN_", "ANTHROPIC_"))}
    env["WORLDGEN_DATABASE_URL"] = database_url
    command = [sys.executable, "-m", "worldgen.tools.cli", "regenerate", str(campaign_id), phase]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def campaign_id(settings_env: str, conn: Any) -> uuid.UUID:
    return generate_sample_world(conn)


def lock_npc(conn: Any, campaign_id: uuid.UUID, edit: str | None = None) -> dict[str, Any]:
    """What the game master does through Hasura: edit the text, set locked. The busiest NPC of a PC."""
    npc = conn.execute(
        """SELECT e.id, e.key FROM entities e
           WHERE e.campaign_id = %s AND e.player_character_id IS NOT NULL
           ORDER BY (SELECT count(*) FROM entity_relationships r WHERE e.id IN (r.entity_id, r.related_entity_id))
             DESC, e.key LIMIT 1""",
        (campaign_id,),
    ).fetchone()
    conn.execute(
        "UPDATE entities SET locked = true, description = coalesce(%s, description) WHERE id = %s", (edit, npc["id"])
    )
    return dict(npc)


def links_to(conn: Any, npc_id: uuid.UUID) -> set[tuple[str, uuid.UUID]]:
    found = set()
    for table, columns in LINK_TABLES.items():
        condition = " OR ".join(f"{c} = %(npc)s" for c in columns)
        for row in conn.execute(f"SELECT id FROM {table} WHERE {condition}", {"npc": npc_id}):
            found.add((table, row["id"]))
    return found


def test_an_edited_locked_npc_survives_regenerating_2a_and_the_model_is_told(conn, campaign_id, db_url):
    npc = lock_npc(conn, campaign_id, EDITED)
    others_before = {r["id"] for r in conn.execute("SELECT id FROM entities WHERE NOT locked")}

    context = phase_context(conn, campaign_id, get_phase("2A"), table_specs(conn))
    assert [row["key"] for row in context.kept["entities"]] == [npc["key"]]
    assert "do not recreate them" in context.render() and npc["key"] in context.render()

    regenerate(campaign_id, "2A", db_url)

    kept = conn.execute("SELECT id, description, locked FROM entities WHERE key = %s", (npc["key"],)).fetchone()
    assert (kept["id"], kept["description"], kept["locked"]) == (npc["id"], EDITED, True)
    others_after = {r["id"] for r in conn.execute("SELECT id FROM entities WHERE NOT locked")}
    assert others_after and not others_after & others_before, "the unlocked NPCs were regenerated"
    assert links_to(conn, npc["id"]), "the regenerated 3C refers to the kept NPC"


def test_3c_links_to_a_locked_npc_survive_regenerating_3c(conn, campaign_id, db_url):
    npc = lock_npc(conn, campaign_id)
    links = links_to(conn, npc["id"])
    assert links
    other_links = {r["id"] for r in conn.execute("SELECT id FROM entity_relationships")} - {i for _, i in links}

    regenerate(campaign_id, "3C", db_url)

    assert links <= links_to(conn, npc["id"])
    remaining = {r["id"] for r in conn.execute("SELECT id FROM entity_relationships")}
    assert not other_links & remaining, "links not tied to a locked row were regenerated"


def test_a_new_row_may_refer_to_a_kept_row_but_not_take_its_key(conn, campaign_id):
    npc = lock_npc(conn, campaign_id)
    phase = get_phase("2A")
    known = existing_keys(conn, campaign_id, external_tables(phase, table_specs(conn)))
    known["entities"] = {npc["key"]: npc["id"]}
    row = {"key": npc["key"], "name": "A Second Copy", "description": "The model recreating a locked NPC."}

    problems = validate_phase_input(phase, table_specs(conn), {"entities": [row]}, known)

    assert [str(p) for p in problems] == [
        f"entities[key={npc['key']}].key: key taken by a kept (locked) row: choose another"
    ]
