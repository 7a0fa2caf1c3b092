"""worldgen audit on crafted worlds: one orphan, a PC with two links, an overloaded NPC, dropped rows."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.shared import one_row
from worldgen.audit import audit_world
from worldgen.db.catalog import foreign_key_edges
from worldgen.errors import CampaignNotFound
from worldgen.phases import RELATIONSHIP_TABLES
from worldgen.roles import ROLE_LIMIT, ROLE_TABLES

Conn = psycopg.Connection[dict[str, Any]]


def insert(conn: Conn, table: str, **values: Any) -> Any:
    columns = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    return one_row(
        conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks}) RETURNING id", list(values.values()))
    )["id"]


@pytest.fixture
def world(conn: Conn) -> dict[str, Any]:
    campaign = insert(conn, "campaigns", owner_id="u", name="Crafted", setting="An island.", tone="grim")
    generation = insert(conn, "generations", campaign_id=campaign, phases=["2A", "2B"])
    pc = {"campaign_id": campaign, "race": "elf", "character_class": "ranger", "backstory": "Lost."}
    lyra = insert(conn, "player_characters", **pc, name="Lyra Ashdown")
    insert(conn, "player_characters", **pc, name="Brother Tam")
    common = {"campaign_id": campaign, "generation_id": generation}
    insert(conn, "entities", **common, key="old-mara", name="Old Mara", description="Lyra's aunt.",
           player_character_id=lyra)  # fmt: skip
    boss = insert(conn, "entities", **common, key="the-boss", name="The Boss", description="Runs everything.")
    insert(conn, "locations", **common, key="port-vell", name="Port Vell", description="Lyra's home port.",
           kind="city", player_character_id=lyra, ruler_entity_id=boss)  # fmt: skip
    for n in range(ROLE_LIMIT):
        insert(conn, "locations", **common, key=f"town-{n}", name=f"Town {n}", description="A town.", kind="town",
               ruler_entity_id=boss)  # fmt: skip
    insert(conn, "locations", **common, key="lonely-peak", name="Lonely Peak", description="Nobody goes.", kind="site")
    dropped = [{"table": "locations", "key": "atlantis", "reason": "locations[key=atlantis]: bad"}]
    insert(conn, "phase_runs", generation_id=generation, campaign_id=campaign, phase="2B", status="succeeded",
           dropped_rows=Jsonb(dropped))  # fmt: skip
    conn.commit()
    return {"generation": generation}


def test_the_audit_finds_the_one_orphan(conn: Conn, world: dict[str, Any]) -> None:
    assert audit_world(conn, world["generation"]).orphans == [("locations", "lonely-peak")]


def test_the_audit_counts_a_pcs_two_links_by_kind_and_a_pc_with_none(conn: Conn, world: dict[str, Any]) -> None:
    report = audit_world(conn, world["generation"])

    assert report.pc_links == {"lyra-ashdown": {"npc": 1, "place": 1}, "brother-tam": {}}
    assert report.pcs_fully_linked == 0  # neither has a quest
    assert "lyra-ashdown: npc 1, place 1, item 0, quest 0, faction 0  (missing: quest)" in report.render()


def test_the_audit_flags_the_npc_with_more_roles_than_the_limit(conn: Conn, world: dict[str, Any]) -> None:
    report = audit_world(conn, world["generation"])

    assert report.npc_roles == {"the-boss": ROLE_LIMIT + 1}
    assert report.overloaded_npcs == {"the-boss": ROLE_LIMIT + 1}


def test_the_audit_reports_the_rows_partial_success_dropped(conn: Conn, world: dict[str, Any]) -> None:
    report = audit_world(conn, world["generation"])

    assert [(d["phase"], d["key"]) for d in report.dropped_rows] == [("2B", "atlantis")]
    assert "2B locations/atlantis: locations[key=atlantis]: bad" in report.render()


def test_auditing_an_unknown_generation_is_a_clear_error(conn: Conn) -> None:
    with pytest.raises(CampaignNotFound, match="does not exist"):
        audit_world(conn, "00000000-0000-0000-0000-000000000000")


def test_the_declared_role_tables_are_the_catalogs_references_to_npcs(conn: Conn) -> None:
    from_catalog = {t for t, _, ref in foreign_key_edges(conn) if ref == "entities" and t not in RELATIONSHIP_TABLES}

    assert from_catalog == ROLE_TABLES
