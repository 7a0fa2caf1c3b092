"""World quality end to end (issue 11): partial success instead of a lost world, and a permanent
failure that keeps the phases that succeeded."""

from __future__ import annotations

import threading

import pytest

from tests.e2e.conftest import ScriptedModel, start_and_wait
from tests.e2e.test_data_safety import generation_status, query, world
from worldgen.errors import InvalidModelOutput
from worldgen.model.base import ModelRequest, ModelResponse
from worldgen.model.procedural import ProceduralModel
from worldgen.phases import get_phase

pytestmark = pytest.mark.xdist_group("e2e")


class TwoBadEdgesIn3C:
    """The procedural model, except that every 3C answer (repairs included) carries two invalid edges."""

    provider = "procedural"

    def __init__(self) -> None:
        self.inner = ProceduralModel()
        self.rounds_3c = 0
        self.lock = threading.Lock()
        self.planted_in: tuple[str, ...] | None = None  # the anchors of the one part given the bad edges

    def call(self, request: ModelRequest) -> ModelResponse:
        response = self.inner.call(request)
        # 3C runs in parts, entity_relationships dealt between several by NPC: the bad edges go into
        # the first of them to be called, and into its repair rounds (the same anchors).
        if request.phase.id == "3C" and response.tool_input and "entity_relationships" in response.tool_input:
            anchors = request.anchors.get("entity_relationships", ("", ()))[1]
            with self.lock:
                self.planted_in = anchors if self.planted_in is None else self.planted_in
                if anchors != self.planted_in:
                    return response
                self.rounds_3c += 1
            npc = response.tool_input["entity_relationships"][0]["entity_key"]
            response.tool_input["entity_relationships"] += [
                {"key": "mirror-grudge", "description": "Hates himself.", "entity_key": npc,
                 "related_entity_key": npc, "relationship_type": "rival"},
                {"key": "ghost-ally", "description": "An ally nobody wrote.", "entity_key": npc,
                 "related_entity_key": "nobody-at-all", "relationship_type": "ally"},
            ]  # fmt: skip
        return response


def test_a_model_that_never_fixes_two_bad_edges_in_3c_still_yields_a_succeeded_world_reporting_them(
    make_runtime, settings_env, campaign_id
):
    model = TwoBadEdgesIn3C()
    runtime = make_runtime(model)

    started = start_and_wait(runtime, campaign_id)

    assert started["execution"]["status"] == "SUCCEEDED"
    assert model.rounds_3c == 3  # the first answer and both repair rounds
    assert generation_status(settings_env, started["generation_id"]) == "succeeded"
    run = query(
        settings_env,
        "SELECT dropped_rows, rows_total, result FROM phase_runs WHERE generation_id = %s AND phase = '3C'",
        started["generation_id"],
    )[0]
    assert sorted((d["table"], d["key"]) for d in run["dropped_rows"]) == [
        ("entity_relationships", "ghost-ally"),
        ("entity_relationships", "mirror-grudge"),
    ]
    assert all(d["reason"].startswith("entity_relationships[key=") for d in run["dropped_rows"])
    assert run["result"]["rows_dropped"] == 2
    saved = {key for (_, key, _) in world(settings_env, campaign_id)["entity_relationships"]}
    assert saved and not saved & {"mirror-grudge", "ghost-ally"}


def test_too_many_bad_rows_still_fail_the_phase(make_runtime, settings_env, campaign_id, monkeypatch):
    monkeypatch.setenv("WORLDGEN_PARTIAL_SUCCESS_MAX_SHARE", "0")
    from worldgen.settings import get_settings

    get_settings.cache_clear()
    runtime = make_runtime(TwoBadEdgesIn3C())

    started = start_and_wait(runtime, campaign_id)

    assert started["execution"]["status"] == "FAILED"
    run = query(
        settings_env, "SELECT status, error_type FROM phase_runs WHERE generation_id = %s AND phase = '3C'",
        started["generation_id"],
    )[0]  # fmt: skip
    assert (run["status"], run["error_type"]) == ("failed", "InvalidModelOutput")


def test_a_world_failing_permanently_at_3a_keeps_1a_to_2c_and_finishes_with_resume(
    make_runtime, settings_env, campaign_id
):
    model = ScriptedModel({"3A": [InvalidModelOutput("never valid")]})
    runtime = make_runtime(model)

    failed = start_and_wait(runtime, campaign_id)

    assert failed["execution"]["status"] == "FAILED"
    generation = failed["generation_id"]
    assert generation_status(settings_env, generation) == "failed"
    kept = world(settings_env, campaign_id)
    for phase_id in ("1A", "1B", "1C", "2A", "2B", "2C"):
        assert any(kept[t] for t in get_phase(phase_id).tables), phase_id
    assert not any(kept[t] for t in get_phase("3A").tables)
    runs = {
        r["phase"]: r["status"]
        for r in query(settings_env, "SELECT phase, status FROM phase_runs WHERE generation_id = %s", generation)
    }
    assert runs["3A"] == "failed" and runs["2C"] == "succeeded" and runs["3B"] == "succeeded"  # 3B ran in parallel

    calls_before = len(model.calls)
    status, body = runtime.action("resumeGeneration", {"generation_id": generation}, role="admin")

    assert status == 200, body
    assert runtime.wait(body["execution_arn"])["status"] == "SUCCEEDED"
    assert generation_status(settings_env, generation) == "succeeded"
    parts_3c = len(get_phase("3C").table_groups)
    again = ["3A"] * get_phase("3A").planned_calls + ["3C"] * parts_3c
    assert sorted(model.calls[calls_before:]) == again  # what succeeded is not paid again
    assert world(settings_env, campaign_id)["entities"] == kept["entities"]  # 2A's rows were never rewritten


def test_discarding_a_failed_generation_removes_every_row_it_wrote_and_nothing_else(
    make_runtime, settings_env, campaign_id
):
    runtime = make_runtime(ScriptedModel({"3A": [InvalidModelOutput("never valid")]}))
    failed = start_and_wait(runtime, campaign_id)
    assert failed["execution"]["status"] == "FAILED"
    assert any(world(settings_env, campaign_id)[t] for t in get_phase("2C").tables)

    status, body = runtime.action("discardGeneration", {"generation_id": failed["generation_id"]}, role="admin")

    assert status == 200, body
    assert body["status"] == "discarded" == generation_status(settings_env, failed["generation_id"])
    assert not any(world(settings_env, campaign_id).values())
    again = runtime.action("discardGeneration", {"generation_id": failed["generation_id"]}, role="admin")
    assert again[0] == 409
