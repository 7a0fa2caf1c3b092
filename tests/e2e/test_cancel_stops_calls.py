"""A cancelled phase stops calling the model between rounds (issue 29): its repair rounds are
calls paid for nothing, since the phase can no longer commit."""

from __future__ import annotations

import dataclasses
import threading

import psycopg
import pytest

from tests.e2e.conftest import OWNER
from tests.e2e.test_data_safety import generation_status
from worldgen import state
from worldgen.model.base import ModelRequest, ModelResponse
from worldgen.model.procedural import ProceduralModel

pytestmark = pytest.mark.xdist_group("e2e")


class CancelledDuring2B:
    """The procedural model, except that 2B never calls its tool and the game master cancels the
    generation while 2B's first round is answering."""

    provider = "procedural"

    def __init__(self, url: str) -> None:
        self.inner, self.url = ProceduralModel(), url
        self.rounds_2b: list[int] = []
        self.lock = threading.Lock()

    def call(self, request: ModelRequest) -> ModelResponse:
        response = self.inner.call(request)
        if request.phase.id != "2B":
            return response
        with self.lock:
            first = not self.rounds_2b
            self.rounds_2b.append(request.round)
        if first:
            with psycopg.connect(self.url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
                running = conn.execute("SELECT id FROM generations WHERE status = 'running'").fetchone()
                assert running is not None
                assert state.cancel_generation(conn, running["id"]).moved
        return dataclasses.replace(response, tool_input=None, problem="the answer did not call the tool")


def test_a_phase_cancelled_during_a_round_makes_no_repair_calls(make_runtime, settings_env, campaign_id):
    model = CancelledDuring2B(settings_env)
    runtime = make_runtime(model)

    status, body = runtime.action("generateWorld", {"campaign_id": str(campaign_id)}, user_id=OWNER)
    assert status == 200, body
    runtime.wait(body["execution_arn"])

    assert generation_status(settings_env, body["generation_id"]) == "cancelled"
    assert model.rounds_2b and set(model.rounds_2b) == {1}  # the round in flight, and no repair round
