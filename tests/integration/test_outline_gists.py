"""Outlines that say what each row is (issue 24): the outline gives every row a gist, the PC it serves
and its role; each part is told those of its rows (its share of the quotas) and writes them so."""

from __future__ import annotations

import threading
from typing import Any

from worldgen import state
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file
from worldgen.model.base import ModelRequest, ModelResponse
from worldgen.model.procedural import ProceduralModel
from worldgen.outline import GISTS_MARKER
from worldgen.pipeline import run_phase


class Recording:
    provider = "procedural"

    def __init__(self) -> None:
        self.inner = ProceduralModel()
        self.calls: list[tuple[ModelRequest, ModelResponse]] = []
        self.lock = threading.Lock()

    def call(self, request: ModelRequest) -> ModelResponse:
        response = self.inner.call(request)
        with self.lock:
            self.calls.append((request, response))
        return response


def test_each_part_is_dealt_its_rows_pcs_and_roles_and_writes_them_so(settings_env: str, conn: Any) -> None:
    campaign = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
    generation = state.create_generation(conn, campaign, provider="procedural")
    for phase_id in ("1A", "1B", "1C"):
        run_phase(conn, generation, phase_id)
    model = Recording()

    assert run_phase(conn, generation, "2A", model).status == "succeeded"

    (_, answered), *parts = model.calls
    assert answered.tool_input is not None
    outline = {r["key"]: r for r in answered.tool_input["entities"]}
    served = {k: r["player_character_key"] for k, r in outline.items() if r.get("player_character_key")}
    pcs = {r["key"] for r in conn.execute("SELECT key FROM player_characters WHERE campaign_id = %s", (campaign,))}
    assert set(served.values()) == pcs  # the outline deals every PC its NPCs
    assert all(r.get("role") for r in outline.values())  # and every NPC a role
    for request, _ in parts:
        message = str(request.messages[-1]["content"])
        share = message.split(GISTS_MARKER, 1)[1].split("\n", 1)[0]
        for key in request.assigned["entities"]:  # told exactly its share: gist, PC served, role
            row = outline[key]
            told = f"serves {row['player_character_key']} as {row['role']}" if key in served else f"as {row['role']}"
            assert f'"{key}": "{row["gist"]} [{told}]"' in share
    saved = {
        r["key"]: r["pc"]
        for r in conn.execute(
            "SELECT e.key, p.key AS pc FROM entities e LEFT JOIN player_characters p ON p.id = e.player_character_id"
            " WHERE e.campaign_id = %s",
            (campaign,),
        )
    }
    assert {k: v for k, v in saved.items() if v} == served  # the parts kept to the outline's deal
