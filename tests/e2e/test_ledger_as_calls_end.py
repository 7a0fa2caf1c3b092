"""Nothing paid is lost (issue 29): each model call's ledger row is written when the call ends, on a
connection of its own, so a process killed mid-round leaves every call that ended in the ledger."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import OWNER
from tests.e2e.test_answers_recorded_as_they_arrive import OnePartOf3CHangs
from tests.e2e.test_data_safety import query

pytestmark = pytest.mark.xdist_group("e2e")


def test_the_calls_that_ended_are_in_the_ledger_while_another_part_of_the_round_is_in_flight(
    make_runtime, settings_env, campaign_id
):
    model = OnePartOf3CHangs()  # 3C's first part hangs: the process could be killed at this point
    runtime = make_runtime(model)
    status, body = runtime.action("generateWorld", {"campaign_id": str(campaign_id)}, user_id=OWNER)
    assert status == 200, body

    ledger: list[dict[str, object]] = []
    total = 0
    try:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and not ledger:
            runs = query(
                settings_env,
                "SELECT parts FROM phase_runs WHERE generation_id = %s AND phase = '3C' AND status = 'running'",
                body["generation_id"],
            )
            total = int(((runs[0]["parts"] or {}) if runs else {}).get("total") or 0)
            rows = query(
                settings_env,
                "SELECT part FROM model_calls WHERE generation_id = %s AND phase = '3C'",
                body["generation_id"],
            )
            if total and len(rows) == total - 1:  # every part but the hung one has ended
                ledger = rows
            time.sleep(0.2)
    finally:
        model.release.set()
    assert runtime.wait(body["execution_arn"])["status"] == "SUCCEEDED"

    assert ledger, "the ended calls of a round were not in the ledger while another call was in flight"
    assert len({row["part"] for row in ledger}) == total - 1  # one row per part that answered
    assert model.hung[0] not in {row["part"] for row in ledger}
    (calls,) = query(
        settings_env,
        "SELECT count(*) AS n FROM model_calls WHERE generation_id = %s AND phase = '3C'",
        body["generation_id"],
    )
    assert calls["n"] == total  # written once each: the save found them there
