"""The quick profile (issue 12, item 5): a lean world in three phases through its own state machine,
chosen per generation, writing the same tables and passing the same world checks as the full one."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.e2e.conftest import OWNER, ScriptedModel
from worldgen.audit import audit_world
from worldgen.errors import InvalidModelOutput
from worldgen.phases import PROFILES, WORLD_TABLES, row_target

pytestmark = pytest.mark.xdist_group("e2e")


def query(url: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(sql, params).fetchall()


def generate(runtime: Any, campaign_id: Any, **extra: str) -> tuple[dict[str, Any], dict[str, Any]]:
    status, body = runtime.action("generateWorld", {"campaign_id": str(campaign_id), **extra}, user_id=OWNER)
    assert status == 200, body
    return body, runtime.wait(body["execution_arn"], timeout=120)


def test_a_quick_world_runs_its_three_phases_on_its_own_machine_and_passes_the_world_checks(
    make_runtime, settings_env, campaign_id
):
    runtime = make_runtime()  # the real phase handlers, the procedural model, the committed quick ASL
    body, execution = generate(runtime, campaign_id, profile="quick")

    assert execution["status"] == "SUCCEEDED"
    assert execution["stateMachineArn"] == runtime.state_machine_arns["quick"] != runtime.state_machine_arn
    (generation,) = query(
        settings_env, "SELECT profile, phases, status FROM generations WHERE id = %s", body["generation_id"]
    )
    assert generation == {"profile": "quick", "phases": ["Q1", "Q2", "Q3"], "status": "succeeded"}
    runs = query(settings_env, "SELECT phase, status FROM phase_runs WHERE generation_id = %s", body["generation_id"])
    assert sorted((r["phase"], r["status"]) for r in runs) == [(p, "succeeded") for p in ("Q1", "Q2", "Q3")]
    for table in WORLD_TABLES:  # the same tables as the full profile, every one filled
        (count,) = query(settings_env, f"SELECT count(*) AS n FROM {table} WHERE campaign_id = %s", str(campaign_id))
        assert count["n"] > 0, table
    (total,) = query(settings_env, "SELECT total_rows FROM generations WHERE id = %s", body["generation_id"])
    lean = sum(row_target(t, 4, 80, "quick") for t in WORLD_TABLES)
    assert total["total_rows"] <= lean < 100  # a lean world: about its profile's row targets
    with psycopg.connect(settings_env, row_factory=psycopg.rows.dict_row) as conn:
        audit = audit_world(conn, body["generation_id"])
    assert audit.pcs_fully_linked == len(audit.pc_links) == 4  # every PC: an NPC, a place and a quest
    assert audit.orphans == []
    assert audit.dropped_rows == []


def test_the_default_profile_setting_chooses_the_quick_machine_when_the_request_names_none(
    make_runtime, settings_env, campaign_id, monkeypatch
):
    monkeypatch.setenv("WORLDGEN_DEFAULT_PROFILE", "quick")
    runtime = make_runtime()
    body, execution = generate(runtime, campaign_id)

    assert execution["status"] == "SUCCEEDED"
    assert execution["stateMachineArn"] == runtime.state_machine_arns["quick"]
    (generation,) = query(settings_env, "SELECT profile FROM generations WHERE id = %s", body["generation_id"])
    assert generation["profile"] == "quick"


def test_an_unknown_profile_is_refused_in_hasuras_error_shape_and_starts_nothing(
    make_runtime, settings_env, campaign_id
):
    runtime = make_runtime()
    status, body = runtime.action("generateWorld", {"campaign_id": str(campaign_id), "profile": "slow"}, user_id=OWNER)

    assert status == 400
    assert body == {
        "message": "unknown profile 'slow'; valid profiles: full, quick",
        "extensions": {"code": "unknown-profile"},
    }
    assert query(settings_env, "SELECT id FROM generations WHERE campaign_id = %s", str(campaign_id)) == []


def test_a_failed_quick_generation_resumes_and_regenerates_on_the_quick_machine(
    make_runtime, settings_env, campaign_id
):
    model = ScriptedModel({"Q2": [InvalidModelOutput("injected")]})  # a permanent error: the execution fails
    runtime = make_runtime(model)
    body, execution = generate(runtime, campaign_id, profile="quick")
    assert execution["status"] == "FAILED"
    model.failures.clear()

    status, resumed = runtime.action("resumeGeneration", {"generation_id": body["generation_id"]}, role="admin")
    assert status == 200, resumed
    execution = runtime.wait(resumed["execution_arn"])
    assert execution["status"] == "SUCCEEDED"
    assert execution["stateMachineArn"] == runtime.state_machine_arns["quick"]

    request = {"campaign_id": str(campaign_id), "phase": "q2"}
    status, again = runtime.action("regenerateFromPhase", request, role="admin")
    assert status == 200, again
    execution = runtime.wait(again["execution_arn"])
    assert execution["status"] == "SUCCEEDED"
    assert execution["stateMachineArn"] == runtime.state_machine_arns["quick"]
    (generation,) = query(settings_env, "SELECT profile, phases FROM generations WHERE id = %s", again["generation_id"])
    assert generation == {"profile": "quick", "phases": ["Q2", "Q3"]}


def test_both_profiles_write_exactly_the_same_tables():
    assert sorted(t for p in PROFILES["quick"] for t in p.tables) == sorted(WORLD_TABLES)
    assert sorted(t for p in PROFILES["full"] for t in p.tables) == sorted(WORLD_TABLES)


def test_regenerating_a_full_world_from_a_quick_phase_is_refused_before_anything_starts(
    make_runtime, settings_env, campaign_id
):
    runtime = make_runtime()
    body, execution = generate(runtime, campaign_id)  # the full profile
    assert execution["status"] == "SUCCEEDED"

    status, answer = runtime.action(
        "regenerateFromPhase", {"campaign_id": str(campaign_id), "phase": "Q3"}, role="admin"
    )

    assert status == 409
    assert answer["extensions"]["code"] == "phase-dependency-missing"
    assert "phases Q1, Q2 never succeeded" in answer["message"]
    generations = query(settings_env, "SELECT id FROM generations WHERE campaign_id = %s", str(campaign_id))
    assert [str(g["id"]) for g in generations] == [body["generation_id"]]


def test_the_campaign_counts_the_phases_of_its_latest_generations_profile(make_runtime, settings_env, campaign_id):
    runtime = make_runtime()
    generate(runtime, campaign_id, profile="quick")
    (campaign,) = query(settings_env, "SELECT total_phases FROM campaigns WHERE id = %s", str(campaign_id))
    assert campaign["total_phases"] == 3
    generate(runtime, campaign_id, profile="full")
    (campaign,) = query(settings_env, "SELECT total_phases FROM campaigns WHERE id = %s", str(campaign_id))
    assert campaign["total_phases"] == 9
