"""Nothing lost under races and faults (issue 10): each test is one way data was lost before."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.e2e.conftest import OWNER, ScriptedModel, fast_retry_definition, start_and_wait
from worldgen.db.connection import database_errors, shared_connection
from worldgen.db.leases import acquire_execution_lease
from worldgen.errors import InvalidModelOutput
from worldgen.handlers.phase import make_phase_handler
from worldgen.phases import PHASES, WORLD_TABLES, descendants, get_phase

pytestmark = pytest.mark.xdist_group("e2e")


def query(url: str, text: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(text, params).fetchall()


def execute(url: str, text: str, *params: Any) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(text, params)


def world(url: str, campaign_id: uuid.UUID) -> dict[str, set[tuple[str, str, str]]]:
    """Every world row of the campaign as (id, key, generation_id), by table."""
    found: dict[str, set[tuple[str, str, str]]] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for table in WORLD_TABLES:
            rows = conn.execute(
                sql.SQL("SELECT id::text, key, generation_id::text FROM {} WHERE campaign_id = %s").format(
                    sql.Identifier(table)
                ),
                (str(campaign_id),),
            ).fetchall()
            found[table] = {(r[0], r[1], r[2]) for r in rows}
    return found


def rows_of(found: dict[str, set[Any]]) -> int:
    return sum(len(rows) for rows in found.values())


def wait_for(predicate: Any, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def generation_status(url: str, generation_id: str) -> str:
    return str(query(url, "SELECT status FROM generations WHERE id = %s", generation_id)[0]["status"])


def test_a_cancelled_phase_in_flight_never_commits_over_the_next_generation(make_runtime, settings_env, campaign_id):
    model = ScriptedModel({"2B": [3]})  # generation A's 2B model call takes 3 s
    finished = threading.Event()
    inner = make_phase_handler(lambda: model)

    def phase_2b(event: dict[str, Any], context: Any) -> Any:
        try:
            return inner(event, context)
        finally:
            if event["generation_id"] == first["generation_id"]:
                finished.set()

    first: dict[str, Any] = {}
    runtime = make_runtime(model, Phase2BFunction=phase_2b)
    status, first = runtime.action("generateWorld", {"campaign_id": str(campaign_id)}, user_id=OWNER)
    assert status == 200
    wait_for(
        lambda: query(
            settings_env,
            "SELECT 1 FROM phase_runs WHERE generation_id = %s AND phase = '2B' AND status = 'running'",
            first["generation_id"],
        ),
        what="A's 2B to start",
    )
    cancelled = runtime.action("cancelGeneration", {"generation_id": first["generation_id"]}, user_id=OWNER)
    assert cancelled[0] == 200, cancelled
    second = start_and_wait(runtime, campaign_id)  # B starts at once and finishes while A's 2B sleeps
    assert second["execution"]["status"] == "SUCCEEDED"
    assert finished.wait(30), "A's 2B handler never returned"

    assert generation_status(settings_env, first["generation_id"]) == "cancelled"
    assert generation_status(settings_env, second["generation_id"]) == "succeeded"
    found = world(settings_env, campaign_id)
    assert {gen for rows in found.values() for (_, _, gen) in rows} == {second["generation_id"]}
    recorded = query(
        settings_env, "SELECT sum(rows_total) AS n FROM phase_runs WHERE generation_id = %s", second["generation_id"]
    )[0]["n"]
    assert rows_of(found) == recorded
    a_2b = query(
        settings_env, "SELECT status FROM phase_runs WHERE generation_id = %s AND phase = '2B'", first["generation_id"]
    )[0]
    assert a_2b["status"] == "failed"


def _regenerate_failing_at_3c(
    make_runtime: Any, settings_env: str, campaign_id: uuid.UUID
) -> tuple[Any, ScriptedModel, dict[str, Any]]:
    # The first 3C (the original world) succeeds, the regeneration's 3C fails permanently.
    first = [None] * len(get_phase("3C").table_groups)  # every part of the original world's 3C
    model = ScriptedModel({"3C": [*first, InvalidModelOutput("never valid")]})
    runtime = make_runtime(model)
    original = start_and_wait(runtime, campaign_id)
    assert original["execution"]["status"] == "SUCCEEDED"
    before = world(settings_env, campaign_id)
    status, body = runtime.action("regenerateFromPhase", {"campaign_id": str(campaign_id), "phase": "2B"}, role="admin")
    assert status == 200, body
    execution = runtime.wait(body["execution_arn"])
    assert execution["status"] == "FAILED"
    assert generation_status(settings_env, original["generation_id"]) == "succeeded"
    assert generation_status(settings_env, body["generation_id"]) == "failed"
    return runtime, model, {"before": before, "generation_id": body["generation_id"]}


def test_a_failed_regeneration_can_be_reverted_to_exactly_the_world_it_replaced(
    make_runtime, settings_env, campaign_id
):
    runtime, _, failed = _regenerate_failing_at_3c(make_runtime, settings_env, campaign_id)
    kept = world(settings_env, campaign_id)
    for table in get_phase("2B").tables:  # the new phases that succeeded are kept for a resume
        assert {gen for (_, _, gen) in kept[table]} == {failed["generation_id"]}

    status, body = runtime.action("revertGeneration", {"generation_id": failed["generation_id"]}, role="admin")

    assert status == 200, body
    assert body["status"] == "reverted"
    assert world(settings_env, campaign_id) == failed["before"]
    assert generation_status(settings_env, failed["generation_id"]) == "reverted"
    campaign = query(settings_env, "SELECT status FROM campaigns WHERE id = %s", str(campaign_id))[0]
    assert campaign["status"] == "generated"
    again = runtime.action("revertGeneration", {"generation_id": failed["generation_id"]}, role="admin")
    assert again[0] == 409


def test_a_failed_regeneration_keeps_its_succeeded_phases_and_resume_finishes_it(
    make_runtime, settings_env, campaign_id
):
    runtime, model, failed = _regenerate_failing_at_3c(make_runtime, settings_env, campaign_id)
    calls_before = len(model.calls)
    status, body = runtime.action("resumeGeneration", {"generation_id": failed["generation_id"]}, role="admin")
    assert status == 200, body
    assert runtime.wait(body["execution_arn"])["status"] == "SUCCEEDED"
    # every phase that succeeded returned at once; 3C ran again, calling only the part that failed:
    # the failed attempt's other parts answered validly and were recorded with its phase run
    assert model.calls[calls_before:] == ["3C"]
    found = world(settings_env, campaign_id)
    for phase_id in descendants("2B"):
        for table in get_phase(phase_id).tables:
            assert {gen for (_, _, gen) in found[table]} <= {failed["generation_id"]}, table
    assert rows_of(found) >= rows_of(failed["before"]) * 0.5


def _running_generation_without_execution(url: str, campaign_id: uuid.UUID) -> str:
    """What a killed `worldgen demo` leaves: a running generation whose execution died with it."""
    rows = query(
        url,
        "INSERT INTO generations (campaign_id, status, execution_arn, started_at)"
        " VALUES (%s, 'running', 'arn:aws:states:us-east-1:123456789012:execution:worldgen-local:gone', now())"
        " RETURNING id",
        str(campaign_id),
    )
    execute(url, "UPDATE campaigns SET status = 'generating' WHERE id = %s", str(campaign_id))
    return str(rows[0]["id"])


def test_a_generation_whose_execution_died_is_resumed_and_does_not_block_the_campaign(
    make_runtime, settings_env, campaign_id
):
    stuck = _running_generation_without_execution(settings_env, campaign_id)
    runtime = make_runtime(ScriptedModel())

    status, body = runtime.action("resumeGeneration", {"generation_id": stuck}, role="admin")

    assert status == 200, body
    assert runtime.wait(body["execution_arn"])["status"] == "SUCCEEDED"
    assert generation_status(settings_env, stuck) == "succeeded"


def test_cancelling_a_generation_whose_execution_died_answers_200_not_a_502(make_runtime, settings_env, campaign_id):
    stuck = _running_generation_without_execution(settings_env, campaign_id)
    runtime = make_runtime(ScriptedModel())

    status, body = runtime.action("cancelGeneration", {"generation_id": stuck}, role="admin")

    assert status == 200, body
    assert generation_status(settings_env, stuck) == "cancelled"
    assert start_and_wait(runtime, campaign_id)["execution"]["status"] == "SUCCEEDED"


def test_a_generation_run_by_another_live_process_is_not_taken_for_dead(make_runtime, settings_env, campaign_id):
    alive = _running_generation_without_execution(settings_env, campaign_id)
    runtime = make_runtime(ScriptedModel())
    with psycopg.connect(settings_env, autocommit=True, row_factory=psycopg.rows.dict_row) as other_process:
        assert acquire_execution_lease(other_process, alive)
        status, body = runtime.action("resumeGeneration", {"generation_id": alive}, role="admin")
        assert status == 409, body
        assert generation_status(settings_env, alive) == "running"
    # its process is gone (the session closed): now the generation is reconciled and resumable
    status, body = runtime.action("resumeGeneration", {"generation_id": alive}, role="admin")
    assert status == 200, body
    runtime.wait(body["execution_arn"])


def test_the_failure_recorder_survives_database_errors_and_records_each_end_once(
    make_runtime, settings_env, campaign_id
):
    from worldgen.errors import DatabaseUnavailable
    from worldgen.handlers.generation import record_generation_failure

    attempts: list[str] = []

    def flaky_recorder(event: dict[str, Any], context: Any) -> Any:
        attempts.append(event["detail"]["executionArn"])
        if len(attempts) <= 2:
            raise DatabaseUnavailable("PostgreSQL restarting")
        return record_generation_failure(event, context)

    runtime = make_runtime(
        ScriptedModel({"1B": [InvalidModelOutput("bad")]}), RecordGenerationFailureFunction=flaky_recorder
    )
    started = start_and_wait(runtime, campaign_id)

    assert started["execution"]["status"] == "FAILED"
    assert len(attempts) == 3
    assert len(runtime.delivered_failures) == 1
    assert generation_status(settings_env, started["generation_id"]) == "failed"


def test_five_concurrent_resumes_start_exactly_one_execution(make_runtime, settings_env, campaign_id):
    model = ScriptedModel({"1B": [InvalidModelOutput("bad"), 1]})  # fails, then (resumed) takes 1 s
    resumer = make_runtime(model)
    failed = start_and_wait(resumer, campaign_id)
    assert failed["execution"]["status"] == "FAILED"

    with ThreadPoolExecutor(5) as pool:
        answers = list(
            pool.map(
                lambda _: resumer.action("resumeGeneration", {"generation_id": failed["generation_id"]}, role="admin"),
                range(5),
            )
        )

    codes = sorted(code for code, _ in answers)
    assert codes == [200, 409, 409, 409, 409], answers
    winner = next(body for code, body in answers if code == 200)
    assert resumer.wait(winner["execution_arn"])["status"] == "SUCCEEDED"
    assert model.calls.count("1B") == 1 + get_phase("1B").planned_calls  # the failed call, then one resumed run
    executions = resumer.sfn.list_executions(stateMachineArn=resumer.state_machine_arn)["executions"]
    assert len(executions) == 2  # the failed one and the one resume


def test_a_parallel_branchs_database_error_does_not_lose_the_other_branchs_ledger(
    make_runtime, settings_env, campaign_id
):
    model = ScriptedModel({"2C": [1.5]})  # 2C (one branch) is inside its model call ...
    inner = make_phase_handler(lambda: model)
    broke = threading.Event()

    def phase_3b(event: dict[str, Any], context: Any) -> Any:
        if not broke.is_set():  # ... when 3B (the other branch) loses its connection
            broke.set()
            time.sleep(0.3)
            with database_errors():
                shared_connection()
                raise psycopg.OperationalError("server closed the connection unexpectedly")
        return inner(event, context)

    runtime = make_runtime(model, fast_retry_definition(), Phase3BFunction=phase_3b)
    started = start_and_wait(runtime, campaign_id)

    assert started["execution"]["status"] == "SUCCEEDED"
    ledger = query(settings_env, "SELECT phase FROM model_calls WHERE generation_id = %s", started["generation_id"])
    assert sorted(r["phase"] for r in ledger) == sorted(model.calls)
    runs = query(
        settings_env, "SELECT phase, attempt FROM phase_runs WHERE generation_id = %s", started["generation_id"]
    )
    assert {r["phase"]: r["attempt"] for r in runs}["2C"] == 1
    assert len(runs) == len(PHASES)
