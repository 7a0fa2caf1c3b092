"""The parts of a phase in flight at once reserve at most the model's output tokens per minute
(the API reserves each request's max_tokens when it starts)."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from worldgen import state
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file
from worldgen.model.base import ModelRequest, ModelResponse
from worldgen.model.procedural import ProceduralModel
from worldgen.phases import get_phase
from worldgen.pipeline import run_phase
from worldgen.settings import get_settings


class Overlapping:
    """The procedural model, counting the calls that overlap (each holds the line a moment)."""

    provider = "procedural"

    def __init__(self) -> None:
        self.inner = ProceduralModel()
        self.running = self.most = 0
        self.lock = threading.Lock()

    def call(self, request: ModelRequest) -> ModelResponse:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.05)
            return self.inner.call(request)
        finally:
            with self.lock:
                self.running -= 1


@pytest.mark.parametrize(("parts_budgeted", "most"), [(1, 1), (2, 2)])
def test_parts_in_flight_reserve_at_most_the_output_tokens_per_minute(
    settings_env: str, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch, parts_budgeted: int, most: int
) -> None:
    # A budget of one or two of 1A's parts' max_tokens (the procedural model's tokens count 1:1).
    budget = get_phase("1A").max_tokens * parts_budgeted
    monkeypatch.setenv("WORLDGEN_OUTPUT_TOKENS_PER_MINUTE", str(budget))
    get_settings.cache_clear()
    campaign_id = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
    generation_id = state.create_generation(conn, campaign_id, provider="procedural", phases=["1A"])
    model = Overlapping()

    outcome = run_phase(conn, generation_id, "1A", model=model)

    assert outcome.status == "succeeded" and len(get_phase("1A").table_groups) > most  # more parts than may fly
    assert model.most <= most
