"""Partial save reports every row it removes (issue 29): an outline row no part ever wrote is a
dropped row, with its reason, not a row gone without a word."""

from __future__ import annotations

import threading

import pytest

from tests.e2e.conftest import start_and_wait
from tests.e2e.test_data_safety import generation_status, query, world
from worldgen.model.base import ModelRequest, ModelResponse
from worldgen.model.procedural import ProceduralModel

pytestmark = pytest.mark.xdist_group("e2e")


class OneBuildingNeverWritten:
    """The procedural model, except that one 2B part given buildings never writes its last one."""

    provider = "procedural"

    def __init__(self) -> None:
        self.inner = ProceduralModel()
        self.left_out: set[str] = set()
        self.lock = threading.Lock()

    def call(self, request: ModelRequest) -> ModelResponse:
        response = self.inner.call(request)
        keys = request.assigned.get("buildings") or []
        if request.phase.id != "2B" or not keys or not response.tool_input:
            return response
        with self.lock:
            if not self.left_out:
                self.left_out.add(keys[-1])
        if keys[-1] in self.left_out:  # its repairs leave it out too
            response.tool_input["buildings"] = [r for r in response.tool_input["buildings"] if r["key"] != keys[-1]]
        return response


def test_an_outline_row_no_part_wrote_is_reported_as_a_dropped_row_with_its_reason(
    make_runtime, settings_env, campaign_id
):
    model = OneBuildingNeverWritten()
    runtime = make_runtime(model)

    started = start_and_wait(runtime, campaign_id)

    assert started["execution"]["status"] == "SUCCEEDED"
    assert generation_status(settings_env, started["generation_id"]) == "succeeded"
    assert model.left_out
    run = query(
        settings_env,
        "SELECT dropped_rows, result FROM phase_runs WHERE generation_id = %s AND phase = '2B'",
        started["generation_id"],
    )[0]
    assert [(d["table"], d["key"]) for d in run["dropped_rows"]] == [("buildings", k) for k in sorted(model.left_out)]
    assert all("in the outline, never written by part" in d["reason"] for d in run["dropped_rows"])
    assert run["result"]["rows_dropped"] == len(model.left_out)
    assert not model.left_out & {key for (_, key, _) in world(settings_env, campaign_id)["buildings"]}
