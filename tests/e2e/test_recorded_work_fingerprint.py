"""Recorded work belongs to the world it saw (issue 29): an outline and part answers recorded by a
failed attempt are reused only by an attempt that sees the same context; a row the game master
locks after the failure (its key in the recorded outline) no longer wedges every resume."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ScriptedModel, start_and_wait
from tests.e2e.test_data_safety import execute, generation_status, query
from worldgen.errors import InvalidModelOutput

pytestmark = pytest.mark.xdist_group("e2e")


def _regeneration_failed_in_2b_parts(make_runtime, settings_env, campaign_id):
    model = ScriptedModel()
    runtime = make_runtime(model)
    assert start_and_wait(runtime, campaign_id)["execution"]["status"] == "SUCCEEDED"
    model.failures["2B"] = [None, InvalidModelOutput("never valid")]  # the outline answers, a part fails
    status, body = runtime.action("regenerateFromPhase", {"campaign_id": str(campaign_id), "phase": "2B"}, role="admin")
    assert status == 200, body
    assert runtime.wait(body["execution_arn"])["status"] == "FAILED"
    parts = query(
        settings_env,
        "SELECT parts FROM phase_runs WHERE generation_id = %s AND phase = '2B'",
        body["generation_id"],
    )[0]["parts"]
    assert parts and parts["outline"]["locations"], parts
    return runtime, model, body["generation_id"], parts


def test_a_row_locked_after_the_failure_with_a_key_of_the_recorded_outline_does_not_wedge_the_resume(
    make_runtime, settings_env, campaign_id
):
    runtime, model, generation_id, parts = _regeneration_failed_in_2b_parts(make_runtime, settings_env, campaign_id)
    key = parts["outline"]["locations"][0]["key"]
    place = query(
        settings_env,
        "SELECT id::text FROM locations WHERE campaign_id = %s AND generation_id <> %s"
        " ORDER BY (key = %s) DESC, key LIMIT 1",
        str(campaign_id),
        generation_id,
        key,
    )[0]
    execute(settings_env, "UPDATE locations SET key = %s, locked = true WHERE id = %s", key, place["id"])
    calls_before = len(model.calls)

    status, body = runtime.action("resumeGeneration", {"generation_id": generation_id}, role="admin")

    assert status == 200, body
    assert runtime.wait(body["execution_arn"])["status"] == "SUCCEEDED"
    assert generation_status(settings_env, generation_id) == "succeeded"
    assert model.calls[calls_before:].count("2B") >= 2  # a new outline and its parts: nothing recorded reused
    assert query(settings_env, "SELECT locked FROM locations WHERE id = %s", place["id"]) == [{"locked": True}]


def test_an_attempt_that_sees_the_same_world_reuses_the_recorded_outline_and_answers(
    make_runtime, settings_env, campaign_id
):
    runtime, model, generation_id, parts = _regeneration_failed_in_2b_parts(make_runtime, settings_env, campaign_id)
    assert parts.get("fingerprint")
    calls_before = len(model.calls)

    status, body = runtime.action("resumeGeneration", {"generation_id": generation_id}, role="admin")

    assert status == 200, body
    assert runtime.wait(body["execution_arn"])["status"] == "SUCCEEDED"
    # no outline call, and only the parts the failed attempt did not record
    assert model.calls[calls_before:].count("2B") == parts["total"] - len(parts.get("answers") or {})
