"""3C sees what it ties together (issue 24) in one context all its parts share (issue 22): every
row of the tables its tables refer to, in summary, and no other table; one cached prefix."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from worldgen import state
from worldgen.db.context import phase_context, referenced_tables
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file
from worldgen.model.base import ModelRequest, ModelResponse
from worldgen.model.procedural import ProceduralModel
from worldgen.phases import get_phase
from worldgen.pipeline import run_phase, table_specs


class Recording:
    provider = "procedural"

    def __init__(self) -> None:
        self.requests: list[ModelRequest] = []
        self.inner = ProceduralModel()
        self.lock = threading.Lock()

    def call(self, request: ModelRequest) -> ModelResponse:
        with self.lock:
            self.requests.append(request)
        return self.inner.call(request)


def test_every_3c_part_shares_one_context_of_every_row_its_tables_refer_to(settings_env: str, conn: Any) -> None:
    campaign = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
    generation = state.create_generation(conn, campaign, provider="procedural")
    for phase_id in ("1A", "1B", "1C", "2A", "2B", "2C", "3A", "3B"):
        run_phase(conn, generation, phase_id)
    phase, specs = get_phase("3C"), table_specs(conn)
    whole_world = phase_context(conn, campaign, dataclasses.replace(phase, shows_referenced_only=False), specs)
    conn.commit()
    model = Recording()

    assert run_phase(conn, generation, "3C", model).status == "succeeded"

    parts = [r for r in model.requests if r.tables]
    assert sorted(r.tables for r in parts) == sorted(phase.table_groups)
    assert len({r.shared_prompt for r in parts}) == 1  # one prefix: the primer writes it, the parts read it
    context = parts[0].context
    wanted = referenced_tables(phase, specs) - {"player_characters"}
    shown = {t for t, rows in context.rows.items() if rows}
    assert shown == {t for t in wanted if context.keys[t]}  # those tables, no other
    for table in wanted:  # every row of them
        assert sorted(r["key"] for r in context.rows[table]) == context.keys[table]
    assert sum(context.omitted.values()) == 0
    assert context.render() in str(parts[0].shared_prompt)  # what the parts are sent
    assert context.player_characters  # and the party
    assert len(context.render()) < len(whole_world.render())  # less than the whole world would tell


class StrayOnce(Recording):
    """The procedural model, but the first entity_locations part of round 1 writes one row for an NPC
    dealt to the other part."""

    def __init__(self) -> None:
        super().__init__()
        self.strayed: list[str] = []

    def call(self, request: ModelRequest) -> ModelResponse:
        response = super().call(request)
        anchored = request.anchors.get("entity_locations")
        with self.lock:
            if anchored and request.round == 1 and not self.strayed:
                others = [k for k in request.context.keys["entities"] if k not in anchored[1]]
                row = (response.tool_input or {})["entity_locations"][0]
                row["entity_key"] = others[0]
                self.strayed.append(others[0])
        return response


def test_3cs_longest_table_is_dealt_between_parts_by_npc_and_a_stray_row_is_sent_back(
    settings_env: str, conn: Any
) -> None:
    campaign = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
    generation = state.create_generation(conn, campaign, provider="procedural")
    for phase_id in ("1A", "1B", "1C", "2A", "2B", "2C", "3A", "3B"):
        run_phase(conn, generation, phase_id)
    model = StrayOnce()

    assert run_phase(conn, generation, "3C", model).status == "succeeded"

    first = [r for r in model.requests if "entity_locations" in r.anchors and r.round == 1]
    holders = len(get_phase("3C").parts_writing("entity_locations"))
    assert len(first) == holders > 1  # entity_locations in several parts
    dealt = [set(r.anchors["entity_locations"][1]) for r in first]
    assert all(r.anchors["entity_locations"][0] == "entity_key" for r in first)
    assert sum(map(len, dealt)) == len(set().union(*dealt)) == len(first[0].context.keys["entities"])  # disjoint, all
    for request in first:  # each part is told its NPCs and its share of the rows
        content = str(request.messages[0]["content"])
        assert ", ".join(request.anchors["entity_locations"][1]) in content
        assert "Write about " in content and " entity_locations rows, only for these entities" in content
    repaired = [r for r in model.requests if r.round == 2]
    assert len(repaired) == 1 and repaired[0].anchors  # only the part that strayed is asked again
    assert "is written by another call" in str(repaired[0].messages[-1]["content"])
    saved = conn.execute(
        "SELECT e.key FROM entity_locations l JOIN entities e ON e.id = l.entity_id WHERE l.generation_id = %s",
        (generation,),
    ).fetchall()
    assert len(saved) == len({r["key"] if isinstance(r, dict) else r[0] for r in saved})  # one row per NPC
