"""phase_context: what a phase is told of the world so far, within its token budget."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.shared import one_row
from worldgen.db.context import PhaseContext, phase_context, row_line, table_heading
from worldgen.db.save import save_phase_rows
from worldgen.model.procedural import ProceduralModel
from worldgen.phases import PHASES, ancestors, get_phase
from worldgen.pipeline import model_request, table_specs
from worldgen.schema.spec import TableSpec

Conn = psycopg.Connection[dict[str, Any]]
SMALL_BUDGET = 400  # tokens: the campaign and both PCs fit, most of the world does not
EARLIER_THAN_2B = [t for p in PHASES if p.id in ancestors("2B") for t in p.tables]


@pytest.fixture
def specs(conn: Conn) -> dict[str, TableSpec]:
    return table_specs(conn)


@pytest.fixture
def campaign_id(conn: Conn, specs: dict[str, TableSpec]) -> uuid.UUID:
    """A campaign with two PCs whose world is generated (procedurally) through phase 2A."""
    campaign = one_row(
        conn.execute(
            "INSERT INTO campaigns (owner_id, name, setting, tone) VALUES (%s, %s, %s, %s) RETURNING id",
            ("user-1", "The Ashen Crown", "A low-magic archipelago ruled by rival merchant princes.", "grim"),
        )
    )["id"]
    conn.execute(
        "INSERT INTO player_characters (campaign_id, name, race, character_class, backstory)"
        " VALUES (%s, 'Lyra Ashdown', 'half-elf', 'ranger', 'Lost her brother to the Gray Guild.'),"
        " (%s, 'Brother Tam', 'human', 'cleric', 'Fled the drowned abbey with a stolen relic.')",
        (campaign, campaign),
    )
    generation = one_row(conn.execute("INSERT INTO generations (campaign_id) VALUES (%s) RETURNING id", (campaign,)))[
        "id"
    ]
    for phase_id in ("1A", "1B", "1C", "2A"):
        phase = get_phase(phase_id)
        context = phase_context(conn, campaign, phase, specs)
        request = model_request(phase, context, specs)
        tool_input = ProceduralModel(seed=5).call(request).tool_input
        assert tool_input is not None
        save_phase_rows(conn, campaign, generation, phase, tool_input, specs)
    return uuid.UUID(str(campaign))


def keys_in_database(conn: Conn, table: str) -> list[str]:
    rows = conn.execute(sql.SQL("SELECT key FROM {} ORDER BY key").format(sql.Identifier(table))).fetchall()
    return [r["key"] for r in rows]


def kept_keys(context: PhaseContext, table: str) -> set[str]:
    return {row["key"] for row in context.rows[table]}


def test_keys_of_every_earlier_table_are_complete_even_when_the_budget_cuts_rows(
    conn: Conn, campaign_id: uuid.UUID, specs: dict[str, TableSpec]
) -> None:
    context = phase_context(conn, campaign_id, get_phase("2B"), specs, token_budget=SMALL_BUDGET)

    assert sum(context.omitted.values()) > 0, "the budget must cut rows for this test to mean anything"
    assert set(context.keys) == {*EARLIER_THAN_2B, "player_characters"}
    for table in EARLIER_THAN_2B:
        assert context.keys[table] == keys_in_database(conn, table), table
        assert keys_in_database(conn, table), f"{table} has rows"
    assert context.keys["player_characters"] == ["brother-tam", "lyra-ashdown"]


def test_rows_of_later_or_unrelated_phases_are_not_in_the_context(
    conn: Conn, campaign_id: uuid.UUID, specs: dict[str, TableSpec]
) -> None:
    context = phase_context(conn, campaign_id, get_phase("1B"), specs)
    assert set(context.rows) == set(get_phase("1A").tables)
    assert "entities" not in context.keys


def test_a_phase_that_uses_player_characters_gets_them(
    conn: Conn, campaign_id: uuid.UUID, specs: dict[str, TableSpec]
) -> None:
    context = phase_context(conn, campaign_id, get_phase("2B"), specs, token_budget=SMALL_BUDGET)

    assert [pc["name"] for pc in context.player_characters] == ["Brother Tam", "Lyra Ashdown"]
    assert "Lyra Ashdown" in context.render()
    assert "Lost her brother to the Gray Guild." in context.render()


def test_the_first_phases_see_the_party_so_backstories_have_somewhere_to_land(
    conn: Conn, campaign_id: uuid.UUID, specs: dict[str, TableSpec]
) -> None:
    for phase_id in ("1A", "1B", "1C"):
        context = phase_context(conn, campaign_id, get_phase(phase_id), specs)
        assert [pc["name"] for pc in context.player_characters] == ["Brother Tam", "Lyra Ashdown"], phase_id
        assert "Lost her brother to the Gray Guild." in context.render(), phase_id


def test_a_generous_budget_keeps_every_row(conn: Conn, campaign_id: uuid.UUID, specs: dict[str, TableSpec]) -> None:
    context = phase_context(conn, campaign_id, get_phase("2B"), specs, token_budget=1_000_000)
    assert context.omitted == {}
    for table in EARLIER_THAN_2B:
        assert sorted(kept_keys(context, table)) == context.keys[table]
    assert "left out" not in context.render()


@pytest.mark.parametrize("budget", [SMALL_BUDGET, 1000, 3000])
def test_the_rendered_context_stays_within_the_token_budget(
    conn: Conn, campaign_id: uuid.UUID, specs: dict[str, TableSpec], budget: int
) -> None:
    context = phase_context(conn, campaign_id, get_phase("2B"), specs, token_budget=budget)
    assert sum(context.omitted.values()) > 0
    assert context.estimated_tokens <= budget


def test_pc_connected_rows_are_kept_before_the_others(
    conn: Conn, campaign_id: uuid.UUID, specs: dict[str, TableSpec]
) -> None:
    # Only the entity whose key sorts last keeps its player character: order alone would cut it.
    entity_keys = keys_in_database(conn, "entities")
    assert len(entity_keys) >= 2
    last = entity_keys[-1]
    conn.execute("UPDATE entities SET player_character_id = NULL WHERE key <> %s", (last,))

    context = phase_context(conn, campaign_id, get_phase("2B"), specs, token_budget=SMALL_BUDGET)

    assert last in kept_keys(context, "entities")
    assert context.rows["entities"][0]["player_character_key"] in ("lyra-ashdown", "brother-tam")
    assert sum(context.omitted.values()) > 0
    assert context.omitted.get("entities", 0) + len(context.rows["entities"]) == len(entity_keys)


def test_render_states_what_it_left_out(conn: Conn, campaign_id: uuid.UUID, specs: dict[str, TableSpec]) -> None:
    context = phase_context(conn, campaign_id, get_phase("2B"), specs, token_budget=SMALL_BUDGET)
    text = context.render()

    assert context.omitted
    for table, count in context.omitted.items():
        assert f"{table} {count}" in text.split("Rows left out for length (their keys are still valid references): ")[1]
        assert len(context.rows[table]) + count == len(context.keys[table])


def test_the_tables_a_phase_references_come_first_and_whole(
    conn: Conn, campaign_id: uuid.UUID, specs: dict[str, TableSpec]
) -> None:
    phase = get_phase("2B")  # references geography_regions, entities, factions (and the PCs)
    referenced: set[str] = {c.references for t in phase.tables for c in specs[t].foreign_keys if c.references} - {
        "player_characters",
        *phase.tables,
    }

    # Enough for the referenced tables of this world (its cast is 2A's target, 6 + 3 per PC), not for all.
    context = phase_context(conn, campaign_id, phase, specs, token_budget=4500)

    assert sum(context.omitted.values()) > 0, "the budget must cut rows for this test to mean anything"
    for table in referenced:
        assert context.omitted.get(table, 0) == 0, table
        assert sorted(kept_keys(context, table)) == context.keys[table], table
    assert any(context.omitted.get(t) for t in EARLIER_THAN_2B if t not in referenced)


def test_a_pc_connected_row_keeps_its_whole_description(
    conn: Conn, campaign_id: uuid.UUID, specs: dict[str, TableSpec]
) -> None:
    long_text = "A tide-priest who " + "remembers every drowned name " * 20 + "and the last one is Lyra's."
    conn.execute(
        "UPDATE entities SET description = %s WHERE key = (SELECT min(key) FROM entities"
        " WHERE player_character_id IS NOT NULL)",
        (long_text,),
    )
    conn.execute("UPDATE entities SET description = %s WHERE player_character_id IS NULL", (long_text,))

    text = phase_context(conn, campaign_id, get_phase("2B"), specs, token_budget=1_000_000).render()

    assert text.count(long_text) == 1  # the PC's NPC whole; the others summarised


ROLE_COLUMNS = {"locations": "ruler_entity_id", "dungeons": "boss_entity_id", "buildings": "owner_entity_id"}


@pytest.mark.parametrize("budget", [None, 1500])
def test_an_npc_in_the_context_counts_every_role_it_holds_even_in_rows_left_out(
    conn: Conn, campaign_id: uuid.UUID, specs: dict[str, TableSpec], budget: int | None
) -> None:
    generation = one_row(conn.execute("SELECT id FROM generations WHERE campaign_id = %s", (campaign_id,)))["id"]
    phase = get_phase("2B")
    request = model_request(phase, phase_context(conn, campaign_id, phase, specs), specs)
    save_phase_rows(conn, campaign_id, generation, phase, ProceduralModel(seed=5).call(request).tool_input or {}, specs)
    held: dict[str, int] = {}
    for table, column in ROLE_COLUMNS.items():
        for row in conn.execute(
            f"SELECT e.key FROM {table} t JOIN entities e ON e.id = t.{column} WHERE t.campaign_id = %s", (campaign_id,)
        ):
            held[row["key"]] = held.get(row["key"], 0) + 1

    context = phase_context(conn, campaign_id, get_phase("3B"), specs, token_budget=budget)

    shown = {row["key"]: row.get("roles", 0) for row in context.rows["entities"]}
    assert shown and any(shown.values())
    assert shown == {key: held.get(key, 0) for key in shown}
    if budget is not None:  # the cut leaves out role rows, not the counts
        assert any(context.omitted.get(t) for t in ROLE_COLUMNS), context.omitted


def test_a_rows_line_and_its_tables_header_are_the_same_whichever_other_rows_fit(
    conn: Conn, campaign_id: uuid.UUID, specs: dict[str, TableSpec]
) -> None:
    cut = phase_context(conn, campaign_id, get_phase("2B"), specs, token_budget=SMALL_BUDGET)
    whole = phase_context(conn, campaign_id, get_phase("2B"), specs, token_budget=1_000_000)
    cut_lines, whole_text = cut.render().split("\n"), whole.render()

    assert sum(cut.omitted.values()) > 0
    shown = [(t, rows) for t, rows in cut.rows.items() if rows]
    assert shown
    for table, rows in shown:
        heading = table_heading(table, cut.columns[table])
        assert cut.columns[table] == whole.columns[table] and heading in whole_text
        lines = [row_line(row, cut.columns[table]) for row in rows]
        start = cut_lines.index(f"## {table}")
        assert cut_lines[start + 2 : start + 2 + len(rows)] == lines  # one line per row, under its header
        assert all(line in whole_text.split("\n") for line in lines)
