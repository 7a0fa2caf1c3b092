"""Nothing paid is lost (issue 29): each valid part answer is recorded as it arrives, not when the
whole round returns, so a process killed while one part is still answering keeps the others."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.e2e.conftest import OWNER
from tests.e2e.test_data_safety import query
from worldgen.model.base import ModelRequest, ModelResponse
from worldgen.model.procedural import ProceduralModel

pytestmark = pytest.mark.xdist_group("e2e")


class OnePartOf3CHangs:
    """The procedural model, except that 3C's first part waits until the test lets it answer."""

    provider = "procedural"

    def __init__(self) -> None:
        self.inner = ProceduralModel()
        self.release = threading.Event()
        self.hung: list[str] = []
        self.lock = threading.Lock()

    def call(self, request: ModelRequest) -> ModelResponse:
        if request.phase.id == "3C":
            with self.lock:
                first = not self.hung
                if first:
                    self.hung.append(",".join(request.tables or ()))
            if first:
                self.release.wait(120)
        return self.inner.call(request)


def test_the_answered_parts_are_recorded_while_another_part_is_still_in_flight(make_runtime, settings_env, campaign_id):
    model = OnePartOf3CHangs()
    runtime = make_runtime(model)
    status, body = runtime.action("generateWorld", {"campaign_id": str(campaign_id)}, user_id=OWNER)
    assert status == 200, body

    recorded: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and not recorded:
            rows = query(
                settings_env,
                "SELECT parts FROM phase_runs WHERE generation_id = %s AND phase = '3C' AND status = 'running'",
                body["generation_id"],
            )
            parts = rows[0]["parts"] if rows else None
            # the other parts answer one by one (and, bounded by the output-token budget, not all at
            # once): wait until every part but the hung one is recorded
            if parts and parts.get("answers") and len(parts["answers"]) == parts.get("total", 0) - 1:
                recorded = parts
            time.sleep(0.2)
    finally:
        model.release.set()  # the hung part answers: the phase and the generation finish
    assert runtime.wait(body["execution_arn"])["status"] == "SUCCEEDED"

    assert recorded, "no part answer was recorded while a part of the round was still answering"
    assert model.hung and len(recorded["answers"]) == recorded["total"] - 1
