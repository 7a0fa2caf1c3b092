"""Redrive as the console does it: the same execution continues from its failed states, in the local
runtime (RedriveExecution as AWS documents it), with the real handlers and a real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ScriptedModel, fast_retry_definition, start_and_wait
from tests.e2e.test_generation import count, query
from worldgen.errors import DatabaseUnavailable, ModelUnavailable
from worldgen.functions_registry import COMPLETE_FUNCTION
from worldgen.handlers.phase import make_phase_handler
from worldgen.local.aws_objects import load_handler
from worldgen.local.redrive import ExecutionNotRedrivable
from worldgen.local.runtime import LocalRuntime
from worldgen.phases import PHASES, WORLD_TABLES, get_phase

pytestmark = pytest.mark.xdist_group("e2e")

# Outlives the first try and four retries, however many calls (parts) an attempt makes.
OUTAGE = [ModelUnavailable("connection refused")] * 100


def phase_invocations(runtime: Any) -> dict[str, int]:
    """How often each phase's Lambda was called (the phases are told apart by their payload)."""
    calls: dict[str, int] = {}
    for _, event in runtime.invocations:
        if "phase" in event:
            calls[event["phase"]] = calls.get(event["phase"], 0) + 1
    return calls


def ledger(url: str, generation_id: str) -> dict[str, int]:
    """Model calls recorded per phase (a phase called again would record its calls twice)."""
    rows = query(
        url, "SELECT phase, count(*) AS n FROM model_calls WHERE generation_id = %s GROUP BY phase", generation_id
    )
    return {row["phase"]: int(row["n"]) for row in rows}


def world_rows(url: str, campaign_id: uuid.UUID) -> dict[str, int]:
    return {table: count(url, table, campaign_id) for table in WORLD_TABLES}


def generation(url: str, generation_id: str) -> dict[str, Any]:
    return query(url, "SELECT * FROM generations WHERE id = %s", generation_id)[0]


def assert_every_row_once(url: str, generation_id: str, campaign_id: uuid.UUID) -> None:
    """Each phase's tables hold exactly the rows its one succeeded run recorded."""
    runs = query(url, "SELECT phase, status, rows_total FROM phase_runs WHERE generation_id = %s", generation_id)
    assert {run["phase"] for run in runs} == {p.id for p in PHASES}
    for run in runs:
        assert run["status"] == "succeeded"
        assert sum(count(url, t, campaign_id) for t in get_phase(run["phase"]).tables) == run["rows_total"]


def fail_then_remove_cause(make_runtime: Any, campaign_id: uuid.UUID, phase: str) -> tuple[Any, ScriptedModel, dict]:
    model = ScriptedModel({phase: list(OUTAGE)})
    runtime = make_runtime(model, definition=fast_retry_definition())
    started = start_and_wait(runtime, campaign_id)
    assert started["execution"]["status"] == "FAILED"
    model.failures[phase] = []  # the outage is over
    return runtime, model, started


def test_a_transient_failure_past_its_retries_is_redriven_to_a_complete_world(make_runtime, settings_env, campaign_id):
    runtime, _model, started = fail_then_remove_cause(make_runtime, campaign_id, "2B")
    arn, generation_id = started["execution_arn"], started["generation_id"]
    failed = generation(settings_env, generation_id)
    assert (failed["status"], failed["redrivable"]) == ("failed", True)
    before = phase_invocations(runtime)
    ledger_before = ledger(settings_env, generation_id)

    redriven = runtime.redrive(arn)
    execution = runtime.wait(arn)

    assert redriven["executionArn"] == arn  # the same execution
    assert execution["status"] == "SUCCEEDED"
    done = generation(settings_env, generation_id)
    assert (done["status"], done["redrive_count"], done["execution_arn"]) == ("succeeded", 1, arn)
    after = phase_invocations(runtime)
    for phase in ("1A", "1B", "1C", "2A"):  # succeeded before the failure: not run again
        assert after[phase] == before[phase] == 1
        assert ledger(settings_env, generation_id)[phase] == ledger_before[phase]
    assert after["2B"] == before["2B"] + 1
    assert all(after[p] == 1 for p in ("2C", "3A", "3B", "3C"))
    redriven_events = [e for f, e in runtime.invocations if e.get("phase") == "2B"][-1]
    assert (redriven_events["execution_id"], redriven_events["redrive_count"]) == (arn, 1)
    assert_every_row_once(settings_env, generation_id, campaign_id)
    assert len(runtime.delivered_failures) == 1  # the first run's failure; the redriven run succeeded


def test_a_failed_parallel_branch_is_redriven_alone(make_runtime, settings_env, campaign_id):
    runtime, _model, started = fail_then_remove_cause(make_runtime, campaign_id, "3B")
    arn, generation_id = started["execution_arn"], started["generation_id"]
    before = phase_invocations(runtime)
    ledger_before = ledger(settings_env, generation_id)

    runtime.redrive(arn)
    execution = runtime.wait(arn)

    assert execution["status"] == "SUCCEEDED"
    assert generation(settings_env, generation_id)["status"] == "succeeded"
    after = phase_invocations(runtime)
    for phase in ("1A", "1B", "1C", "2A", "2B"):
        assert after[phase] == before[phase] == 1
    assert after["3B"] == before["3B"] + 1
    spent = ledger(settings_env, generation_id)
    for phase in ("1A", "1B", "1C", "2A", "2B"):
        assert spent[phase] == ledger_before[phase]
    for phase in ("2C", "3A"):  # the other branch: whatever it had finished is not paid for twice
        assert spent[phase] == get_phase(phase).planned_calls
    assert_every_row_once(settings_env, generation_id, campaign_id)


def test_a_failure_in_complete_generation_is_redriven_without_running_a_phase(make_runtime, settings_env, campaign_id):
    complete = load_handler(COMPLETE_FUNCTION)
    outage = {"on": True}

    def flaky_complete(event: dict[str, Any], context: Any) -> Any:
        if outage["on"]:
            raise DatabaseUnavailable("the database is restarting")
        return complete(event, context)

    runtime = make_runtime(
        ScriptedModel(), definition=fast_retry_definition(), CompleteGenerationFunction=flaky_complete
    )
    started = start_and_wait(runtime, campaign_id)
    arn, generation_id = started["execution_arn"], started["generation_id"]
    assert started["execution"]["status"] == "FAILED"
    assert generation(settings_env, generation_id)["status"] == "failed"
    before = phase_invocations(runtime)
    outage["on"] = False

    runtime.redrive(arn)
    execution = runtime.wait(arn)

    assert execution["status"] == "SUCCEEDED"
    done = generation(settings_env, generation_id)
    assert (done["status"], done["redrive_count"]) == ("succeeded", 1)
    assert phase_invocations(runtime) == before  # no phase ran again
    assert_every_row_once(settings_env, generation_id, campaign_id)


@pytest.mark.parametrize("since", ["cancel", "resume"])
def test_a_redrive_after_a_cancel_or_a_resume_changes_nothing(make_runtime, settings_env, campaign_id, since):
    runtime, model, started = fail_then_remove_cause(make_runtime, campaign_id, "2B")
    arn, generation_id = started["execution_arn"], started["generation_id"]
    if since == "cancel":
        status, body = runtime.action("cancelGeneration", {"generation_id": generation_id}, role="admin")
        assert status == 200, body
    else:
        status, body = runtime.action("resumeGeneration", {"generation_id": generation_id}, role="admin")
        assert status == 200, body
        assert runtime.wait(body["execution_arn"])["status"] == "SUCCEEDED"
    settled = generation(settings_env, generation_id)
    rows, calls, spent = world_rows(settings_env, campaign_id), list(model.calls), ledger(settings_env, generation_id)

    runtime.redrive(arn)
    execution = runtime.wait(arn)

    # After a cancel the redriven phase finds its generation taken away (GenerationCancelled) and the
    # execution ends in its Fail state, the rollback and the failure recorder fenced by the execution.
    # After a resume every phase finds its recorded result (the resumed run made it) and returns it,
    # and CompleteGeneration refuses a run of an execution that is no longer the generation's.
    if since == "cancel":
        assert (execution["status"], execution["error"]) == ("FAILED", "GenerationCancelled")
    else:
        assert execution["status"] == "SUCCEEDED"
    after = generation(settings_env, generation_id)
    assert (after["status"], after["execution_arn"], after["redrive_count"]) == (
        settled["status"],
        settled["execution_arn"],
        0,
    )
    assert after["status"] == ("cancelled" if since == "cancel" else "succeeded")
    assert world_rows(settings_env, campaign_id) == rows
    assert model.calls == calls and ledger(settings_env, generation_id) == spent


def test_redrive_refuses_what_aws_refuses(make_runtime, settings_env, campaign_id):
    runtime = make_runtime(ScriptedModel())
    succeeded = start_and_wait(runtime, campaign_id)
    with pytest.raises(ExecutionNotRedrivable, match="succeeded"):
        runtime.redrive(succeeded["execution_arn"])
    with pytest.raises(ExecutionNotRedrivable, match="no record"):
        runtime.redrive(succeeded["execution_arn"].rsplit(":", 1)[0] + ":never-ran")


def test_redrive_refuses_an_execution_that_ended_more_than_14_days_ago(make_runtime, settings_env, campaign_id):
    runtime, _model, started = fail_then_remove_cause(make_runtime, campaign_id, "1A")
    later = datetime.now(UTC) + timedelta(days=14, minutes=1)
    with pytest.raises(ExecutionNotRedrivable, match="more than 14 days ago"):
        runtime.redrive(started["execution_arn"], now=later)
    assert generation(settings_env, started["generation_id"])["status"] == "failed"


def worldgen_cli(*args: str, database_url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORLDGEN_", "ANTHROPIC_"))}
    env.update(WORLDGEN_DATABASE_URL=database_url, WORLDGEN_HOME=str(data_dir))
    return subprocess.run(
        [sys.executable, "-m", "worldgen.tools.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_worldgen_redrive_finishes_in_another_process_a_world_failed_by_an_outage(settings_env, campaign_id, tmp_path):
    model = ScriptedModel({"2C": list(OUTAGE)})
    with LocalRuntime(
        {p.function_id: make_phase_handler(lambda: model) for p in PHASES},
        definition=fast_retry_definition(),
        environment={"WORLDGEN_DATABASE_URL": settings_env},
        records_dir=tmp_path / "executions",  # where `worldgen` keeps them under its data folder
    ) as runtime:
        started = start_and_wait(runtime, campaign_id)
    assert started["execution"]["status"] == "FAILED"
    generation_id = started["generation_id"]

    redriven = worldgen_cli("redrive", generation_id, database_url=settings_env, data_dir=tmp_path)

    assert redriven.returncode == 0, redriven.stderr
    assert "redrive 1 of the same execution" in redriven.stdout
    assert started["execution_arn"] in redriven.stdout
    assert "execution SUCCEEDED" in redriven.stdout
    done = generation(settings_env, generation_id)
    assert (done["status"], done["redrive_count"]) == ("succeeded", 1)
    assert_every_row_once(settings_env, generation_id, campaign_id)

    again = worldgen_cli("redrive", generation_id, database_url=settings_env, data_dir=tmp_path)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"error: generation {generation_id} is succeeded: only a generation whose execution failed can be"
        " redriven (a redrive after a cancel or a resume would change nothing)"
    ]


def test_worldgen_redrive_of_what_cannot_be_redriven_is_one_line_and_a_non_zero_exit(
    settings_env, campaign_id, tmp_path
):
    unknown = str(uuid.uuid4())
    missing = worldgen_cli("redrive", unknown, database_url=settings_env, data_dir=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith(f"error: no campaign or generation has the id {unknown}")

    # A failed execution no runtime kept a record of (it ran elsewhere, the records were removed).
    with LocalRuntime(
        {p.function_id: make_phase_handler(lambda: ScriptedModel({"1A": list(OUTAGE)})) for p in PHASES},
        definition=fast_retry_definition(),
        environment={"WORLDGEN_DATABASE_URL": settings_env},
    ) as runtime:
        started = start_and_wait(runtime, campaign_id)
    unrecorded = worldgen_cli("redrive", started["generation_id"], database_url=settings_env, data_dir=tmp_path)
    assert unrecorded.returncode == 2
    lines = unrecorded.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot be redriven: no record of execution" in lines[0]


def test_a_phase_lambda_killed_at_its_timeout_is_retried_and_the_world_completes(
    make_runtime, settings_env, campaign_id
):
    model = ScriptedModel({"1B": [3]})  # the first 1B call takes 3 s; its Lambda times out after 1 s
    runtime = make_runtime(model, definition=fast_retry_definition())
    runtime.lambda_timeouts[get_phase("1B").function_id] = 1

    started = start_and_wait(runtime, campaign_id)

    assert started["execution"]["status"] == "SUCCEEDED"
    failures = [
        e["taskFailedEventDetails"]["error"]
        for e in runtime.history(started["execution_arn"])
        if "taskFailedEventDetails" in e
    ]
    assert failures == ["Sandbox.Timedout"]  # killed once, then retried by the Lambda-fault retrier
    assert phase_invocations(runtime)["1B"] == 2
    assert generation(settings_env, started["generation_id"])["status"] == "succeeded"
    assert_every_row_once(settings_env, started["generation_id"], campaign_id)
