"""A whole generation through moto executing the committed ASL, with the real handlers in-process."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.e2e.conftest import OWNER, ScriptedModel, fast_retry_definition, start_and_wait
from worldgen.errors import AttemptSuperseded, InvalidModelOutput, ModelOverloaded, ModelUnavailable
from worldgen.handlers.phase import make_phase_handler
from worldgen.phases import PHASES, WORLD_TABLES, get_phase

pytestmark = pytest.mark.xdist_group("e2e")


def query(url: str, text: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(text, params).fetchall()


def count(url: str, table: str, campaign_id: uuid.UUID) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE campaign_id = %s").format(sql.Identifier(table)),
            (str(campaign_id),),
        ).fetchone()
    assert row is not None
    return int(row[0])


def history_types(runtime: Any, execution_arn: str) -> list[str]:
    return [event["type"] for event in runtime.history(execution_arn)]


def test_full_generation_fills_every_world_table_with_a_connected_world(make_runtime, settings_env, campaign_id):
    runtime = make_runtime()
    started = start_and_wait(runtime, campaign_id)

    assert started["execution"]["status"] == "SUCCEEDED"
    empty = [t for t in WORLD_TABLES if count(settings_env, t, campaign_id) == 0]
    assert empty == []
    generation = query(settings_env, "SELECT * FROM generations WHERE id = %s", started["generation_id"])[0]
    assert generation["status"] == "succeeded"
    assert generation["total_rows"] == sum(count(settings_env, t, campaign_id) for t in WORLD_TABLES)
    calls = query(settings_env, "SELECT phase, provider FROM model_calls WHERE generation_id = %s", generation["id"])
    made = Counter(c["phase"] for c in calls)
    # a call per part that has rows to write (a table dealt to more parts than it has rows leaves some
    # empty), and no repair
    assert all(1 <= made[p.id] <= p.planned_calls for p in PHASES), made
    assert {c["provider"] for c in calls} == {"procedural"}

    # No reference crosses campaigns or points nowhere (the FKs guarantee existence; this checks scope).
    edges = query(
        settings_env,
        """
        SELECT c.relname AS tbl, a.attname AS col, r.relname AS ref
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class r ON r.oid = k.confrelid
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.conkey[1]
        WHERE k.contype = 'f' AND c.relnamespace = 'public'::regnamespace
        """,
    )
    world_edges = [e for e in edges if e["tbl"] in WORLD_TABLES and e["ref"] in (*WORLD_TABLES, "player_characters")]
    assert len(world_edges) > 60
    for edge in world_edges:
        crossing = query(
            settings_env,
            f'SELECT count(*) AS n FROM "{edge["tbl"]}" t JOIN "{edge["ref"]}" r ON r.id = t."{edge["col"]}"'
            " WHERE r.campaign_id <> t.campaign_id",
        )
        assert crossing[0]["n"] == 0, edge

    # Every PC has at least 3 connections: NPCs, places, items made for them, quests, pc_connections.
    pc_links = query(
        settings_env,
        """
        SELECT pc.name,
          (SELECT count(*) FROM entities e WHERE e.player_character_id = pc.id)
          + (SELECT count(*) FROM locations l WHERE l.player_character_id = pc.id)
          + (SELECT count(*) FROM items i WHERE i.made_for_player_character_id = pc.id)
          + (SELECT count(*) FROM quest_hooks q WHERE q.player_character_id = pc.id)
          + (SELECT count(*) FROM pc_connections c WHERE c.player_character_id = pc.id) AS links
        FROM player_characters pc WHERE pc.campaign_id = %s
        """,
        str(campaign_id),
    )
    assert len(pc_links) == 4
    assert all(row["links"] >= 3 for row in pc_links), pc_links
    # Every NPC is tied to at least one location or faction.
    untied = query(
        settings_env,
        """
        SELECT e.name FROM entities e WHERE e.campaign_id = %s AND e.faction_id IS NULL
          AND NOT EXISTS (SELECT 1 FROM entity_locations x WHERE x.entity_id = e.id)
          AND NOT EXISTS (SELECT 1 FROM entity_factions x WHERE x.entity_id = e.id)
        """,
        str(campaign_id),
    )
    assert untied == []
    # One root location; every other location hangs under a parent.
    roots = query(
        settings_env,
        "SELECT name FROM locations WHERE campaign_id = %s AND parent_location_id IS NULL",
        str(campaign_id),
    )
    assert len(roots) == 1


def test_permanent_error_in_2c_rolls_back_and_ends_in_the_fail_state(make_runtime, settings_env, campaign_id):
    model = ScriptedModel({"2C": ["invalid"]})
    runtime = make_runtime(model)
    started = start_and_wait(runtime, campaign_id)

    execution = started["execution"]
    assert execution["status"] == "FAILED"
    assert execution["error"] == "InvalidModelOutput"
    types = history_types(runtime, execution["executionArn"])
    assert "FailStateEntered" in types
    assert any(e.get("stateEnteredEventDetails", {}).get("name") == "RollbackGeneration"
               for e in runtime.history(execution["executionArn"]))  # fmt: skip
    generation = query(settings_env, "SELECT * FROM generations WHERE id = %s", started["generation_id"])[0]
    assert generation["status"] == "failed"
    assert generation["error_type"] == "InvalidModelOutput"
    assert "2C" in generation["error_message"]
    assert generation["redrivable"] is False
    for table in get_phase("2C").tables:
        assert count(settings_env, table, campaign_id) == 0
    assert model.calls.count("2C") == get_phase("2C").repair_rounds + 1  # the answer and the rounds its budget holds


def test_transient_error_that_clears_on_the_second_attempt_succeeds_with_one_copy(
    make_runtime, settings_env, campaign_id
):
    model = ScriptedModel({"3B": [ModelOverloaded("529 overloaded")]})
    runtime = make_runtime(model, definition=fast_retry_definition())
    started = start_and_wait(runtime, campaign_id)

    assert started["execution"]["status"] == "SUCCEEDED"
    # The retried attempt calls only the part that failed: the others' answers were recorded (reused).
    assert model.calls.count("3B") == get_phase("3B").planned_calls + 1
    run = query(
        settings_env, "SELECT attempt, rows_total FROM phase_runs WHERE generation_id = %s AND phase = '3B'",
        started["generation_id"],
    )[0]  # fmt: skip
    assert run["attempt"] == 2
    assert sum(count(settings_env, t, campaign_id) for t in get_phase("3B").tables) == run["rows_total"]


def test_transient_error_that_never_clears_fails_at_the_phase_then_resume_completes(
    make_runtime, settings_env, campaign_id
):
    failing = ScriptedModel({"2B": [ModelUnavailable("connection refused")] * 10})
    runtime = make_runtime(failing, definition=fast_retry_definition())
    started = start_and_wait(runtime, campaign_id)

    execution = started["execution"]
    assert execution["status"] == "FAILED"
    assert execution["error"] == "ModelUnavailable"
    assert "FailStateEntered" not in history_types(runtime, execution["executionArn"])
    assert failing.calls.count("2B") == 5  # the first try and four retries
    generation = query(settings_env, "SELECT * FROM generations WHERE id = %s", started["generation_id"])[0]
    assert generation["status"] == "failed"
    assert generation["redrivable"] is True
    assert len(runtime.delivered_failures) == 1

    # `worldgen resume` uses the same action: only the phases that had not succeeded call the model.
    healthy = ScriptedModel()
    runtime.overrides.update({p.function_id: make_phase_handler(lambda: healthy) for p in PHASES})
    status, body = runtime.action("resumeGeneration", {"generation_id": started["generation_id"]}, role="admin")
    assert status == 200, body
    assert runtime.wait(body["execution_arn"])["status"] == "SUCCEEDED"
    resumed = ["2B", "2C", "3A", "3B", "3C"]
    made = Counter(healthy.calls)
    assert set(made) == set(resumed) and all(made[p] <= get_phase(p).planned_calls for p in resumed), made
    assert query(settings_env, "SELECT status FROM generations WHERE id = %s", body["generation_id"])[0] == {
        "status": "succeeded"
    }


def test_handler_slower_than_its_state_timeout_is_retried_and_the_zombie_cannot_commit(
    make_runtime, settings_env, campaign_id
):
    model = ScriptedModel({"1A": [3]})  # the first 1A call sleeps 3 s; the state times out after 1 s
    zombie_errors: list[str] = []
    zombie_done = threading.Event()
    inner = make_phase_handler(lambda: model)
    invocations: list[int] = []

    def watched(event: dict[str, Any], context: Any) -> Any:
        invocations.append(len(invocations))
        first = len(invocations) == 1
        try:
            return inner(event, context)
        except AttemptSuperseded as exc:
            zombie_errors.append(type(exc).__name__)
            raise
        finally:
            if first:
                zombie_done.set()

    definition = fast_retry_definition(Phase1ACoreWorldSystems=1)
    runtime = make_runtime(definition=definition, Phase1AFunction=watched)
    runtime.overrides.update({p.function_id: make_phase_handler(lambda: model) for p in PHASES[1:]})
    started = start_and_wait(runtime, campaign_id)

    assert started["execution"]["status"] == "SUCCEEDED"
    events = runtime.history(started["execution"]["executionArn"])
    assert any(e.get("taskFailedEventDetails", {}).get("error") == "States.Timeout" for e in events) or any(
        "States.Timeout" in str(e) for e in events
    )
    assert zombie_done.wait(10)
    run = query(
        settings_env, "SELECT attempt, rows_total FROM phase_runs WHERE generation_id = %s AND phase = '1A'",
        started["generation_id"],
    )[0]  # fmt: skip
    assert run["attempt"] == 2
    assert zombie_errors == ["AttemptSuperseded"]
    assert sum(count(settings_env, t, campaign_id) for t in get_phase("1A").tables) == run["rows_total"]


def test_generate_world_twice_is_refused_without_a_second_execution(make_runtime, settings_env, campaign_id):
    runtime = make_runtime(ScriptedModel({"1A": [1]}))
    first = runtime.action("generateWorld", {"campaign_id": str(campaign_id)}, user_id=OWNER)
    second = runtime.action("generateWorld", {"campaign_id": str(campaign_id)}, user_id=OWNER)

    assert first[0] == 200
    assert second[0] == 409
    assert second[1]["extensions"]["code"] == "generation-active"
    executions = runtime.sfn.list_executions(stateMachineArn=runtime.state_machine_arn)["executions"]
    assert len(executions) == 1
    runtime.wait(first[1]["execution_arn"])
    assert len(query(settings_env, "SELECT id FROM generations WHERE campaign_id = %s", str(campaign_id))) == 1


def test_invalid_model_output_is_permanent_not_retried(make_runtime, campaign_id):
    model = ScriptedModel({"1A": [InvalidModelOutput("still invalid")]})
    runtime = make_runtime(model, definition=fast_retry_definition())
    started = start_and_wait(runtime, campaign_id)
    assert started["execution"]["error"] == "InvalidModelOutput"
    assert model.calls == ["1A"]


def test_serve_mode_delivers_each_failed_executions_event_once(make_runtime, settings_env, campaign_id):
    runtime = make_runtime(ScriptedModel({"1A": [InvalidModelOutput("nonsense")]}))
    status, body = runtime.action("generateWorld", {"campaign_id": str(campaign_id)}, user_id=OWNER)
    assert status == 200
    deadline = time.monotonic() + 120  # bounded: a hung execution fails the test instead of hanging it
    while runtime.describe(body["execution_arn"])["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution is still RUNNING after 120 s"
        time.sleep(0.05)

    # Nobody waits on it (as in `worldgen serve`): the runtime's watcher records the end, once.
    deadline = time.monotonic() + 30
    while not runtime.delivered_failures and time.monotonic() < deadline:
        time.sleep(0.05)
    assert runtime.deliver_failures() == 0
    assert [e["detail"]["executionArn"] for e in runtime.delivered_failures] == [body["execution_arn"]]
    generation = query(settings_env, "SELECT status, error_type FROM generations WHERE id = %s", body["generation_id"])
    assert generation == [{"status": "failed", "error_type": "InvalidModelOutput"}]
