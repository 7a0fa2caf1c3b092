"""3C sees what it ties together (issue 24): each part of a phase with part contexts is shown, whole,
the rows its tables refer to, and only those; the rows left out fall against one shared context."""

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


def test_each_3c_part_sees_whole_the_rows_its_tables_refer_to(settings_env: str, conn: Any) -> None:
    campaign = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
    generation = state.create_generation(conn, campaign, provider="procedural")
    for phase_id in ("1A", "1B", "1C", "2A", "2B", "2C", "3A", "3B"):
        run_phase(conn, generation, phase_id)
    phase, specs = get_phase("3C"), table_specs(conn)
    shared = phase_context(conn, campaign, phase, specs)  # one context for every part, as before
    conn.commit()
    model = Recording()

    assert run_phase(conn, generation, "3C", model).status == "succeeded"

    parts = [r for r in model.requests if r.tables]
    assert sorted(r.tables for r in parts) == sorted(phase.table_groups)
    for request in parts:
        wanted = referenced_tables(dataclasses.replace(phase, tables=request.tables), specs) - {"player_characters"}
        shown = {t for t, rows in request.context.rows.items() if rows}
        assert shown == {t for t in wanted if request.context.keys[t]}, request.tables  # those tables, no other
        for table in wanted:  # whole: every row of them
            assert sorted(r["key"] for r in request.context.rows[table]) == request.context.keys[table]
        assert sum(request.context.omitted.values()) == 0
        assert request.context.render() in str(request.shared_prompt)  # what the part is sent
        assert request.context.player_characters  # and the party
    assert sum(shared.omitted.values()) > 0  # the shared context left rows out; the parts' none
