"""The ASL is generated from the registry and the taxonomy, and committed like a lock file."""

from __future__ import annotations

import json
from typing import Any

import pytest

from worldgen.errors import (
    lambda_fault_error_names,
    permanent_error_names,
    throttling_error_names,
    transient_error_names,
)
from worldgen.functions_registry import PHASE_FUNCTIONS, STATE_MACHINE_FUNCTIONS
from worldgen.phases import PHASES, PROFILES, Phase
from worldgen.tools import statemachine


def all_states(states: dict[str, Any]) -> dict[str, Any]:
    found = {}
    for name, state in states.items():
        found[name] = state
        for branch in state.get("Branches", []):
            found.update(all_states(branch["States"]))
    return found


DEFINITION = statemachine.build_definition()
STATES = all_states(DEFINITION["States"])


def test_committed_asl_and_readmes_equal_a_fresh_build():
    assert statemachine.ASL_PATH.read_text() == statemachine.render_definition(DEFINITION)
    for profile, path in statemachine.ASL_PATHS.items():  # one state machine per profile
        assert path.read_text() == statemachine.render_definition(statemachine.build_profile_definition(profile))
    assert statemachine.README_PATH.read_text() == statemachine.render_readme(DEFINITION)
    project = statemachine.PROJECT_README.read_text()
    assert project == statemachine.with_readme_block(project, DEFINITION)


def test_every_registry_phase_is_a_lambda_task_with_its_payload():
    for phase in PHASES:
        state = STATES[phase.state_name]
        assert state["Type"] == "Task"
        assert state["Resource"] == "arn:aws:states:::lambda:invoke"
        assert state["Parameters"]["FunctionName"] == f"${{{phase.function_id}Arn}}"
        assert state["Parameters"]["Payload"]["phase"] == phase.id


def test_no_catch_names_states_all_and_catches_route_permanent_errors_to_rollback():
    for state in STATES.values():
        for catch in state.get("Catch", []):
            assert "States.ALL" not in catch["ErrorEquals"]
            assert catch["ErrorEquals"] == permanent_error_names()
            assert catch["Next"] == statemachine.ROLLBACK_STATE
    assert DEFINITION["States"][statemachine.ROLLBACK_STATE]["Next"] == statemachine.FAILED_STATE
    assert DEFINITION["States"][statemachine.FAILED_STATE]["Type"] == "Fail"


def test_every_task_retries_exactly_the_transient_errors_with_full_jitter():
    for state in STATES.values():
        if state["Type"] != "Task":
            continue
        retried = [name for retry in state["Retry"] for name in retry["ErrorEquals"]]
        # each name in exactly one retrier
        assert sorted(retried) == sorted(transient_error_names() + lambda_fault_error_names())
        for retry in state["Retry"]:
            assert retry["JitterStrategy"] == "FULL"
            assert retry["MaxDelaySeconds"] > retry["IntervalSeconds"]
            assert retry["BackoffRate"] > 1
    assert not set(transient_error_names()) & set(permanent_error_names())


def test_throttling_gets_its_own_first_retrier_that_waits_minutes_not_seconds():
    def worst_case_wait(retry: dict[str, Any]) -> float:
        return sum(
            min(retry["IntervalSeconds"] * retry["BackoffRate"] ** n, retry["MaxDelaySeconds"])
            for n in range(retry["MaxAttempts"])
        )

    assert set(throttling_error_names()) == {"Lambda.TooManyRequestsException", "ModelRateLimited"}
    assert "Lambda.ClientExecutionTimeoutException" in transient_error_names()
    for state in STATES.values():
        if state["Type"] != "Task":
            continue
        throttling, _lambda_faults, general = state["Retry"]
        assert throttling["ErrorEquals"] == throttling_error_names()
        assert throttling["MaxDelaySeconds"] == 300
        assert throttling["MaxAttempts"] > general["MaxAttempts"]
        assert throttling["IntervalSeconds"] > general["IntervalSeconds"]
        assert worst_case_wait(throttling) >= 20 * 60 > 10 * worst_case_wait(general)


def test_each_profile_has_its_own_machine_running_exactly_its_phases():
    for profile, phases in PROFILES.items():
        states = all_states(statemachine.build_profile_definition(profile)["States"])
        ran = {
            s["Parameters"]["Payload"]["phase"]
            for s in states.values()
            if "phase" in s.get("Parameters", {}).get("Payload", {})
        }
        assert ran == {p.id for p in phases}, profile
    quick = statemachine.build_profile_definition("quick")
    assert quick["StartAt"] == PROFILES["quick"][0].state_name


@pytest.mark.parametrize("profile", PROFILES)
def test_every_lambda_timeout_is_shorter_than_its_state_timeout(profile: str):
    states = all_states(statemachine.build_profile_definition(profile)["States"])
    for function in PHASE_FUNCTIONS:
        phase = next((p for p in PROFILES[profile] if p.function_id == function.id), None)
        if phase is not None:
            assert function.timeout_seconds < states[phase.state_name]["TimeoutSeconds"]
    for function in STATE_MACHINE_FUNCTIONS:
        if function.phase and function.phase not in {p.id for p in PROFILES[profile]}:
            continue
        tasks = [
            s for s in states.values() if s.get("Parameters", {}).get("FunctionName") == f"${{{function.placeholder}}}"
        ]
        assert tasks, function.id
        assert all(function.timeout_seconds < t["TimeoutSeconds"] for t in tasks)


def test_the_dag_runs_2c_then_3a_beside_3b_after_2b_then_3c():
    order = [DEFINITION["StartAt"]]
    while "Next" in DEFINITION["States"][order[-1]]:
        assert len(order) <= len(DEFINITION["States"]), f"a cycle of Next: {order}"
        order.append(DEFINITION["States"][order[-1]]["Next"])
    parallel = DEFINITION["States"][order[5]]
    assert [s.split("Phase")[-1][:2] if s.startswith("Phase") else s for s in order[:5]] == [
        "1A",
        "1B",
        "1C",
        "2A",
        "2B",
    ]
    assert parallel["Type"] == "Parallel"
    branches = [[name[5:7] for name in b["States"]] for b in parallel["Branches"]]
    assert branches == [["2C", "3A"], ["3B"]]
    assert order[6:] == ["Phase3CFinalRelationships", "CompleteGeneration"]


def test_placeholders_are_exactly_the_state_machine_functions():
    placeholders = {
        p: statemachine.placeholders(statemachine.build_profile_definition(p)) for p in PROFILES
    }  # each machine names its own phases' functions and the service functions
    assert set().union(*placeholders.values()) == {f.placeholder for f in STATE_MACHINE_FUNCTIONS}
    assert placeholders["quick"] - placeholders["full"] == {f"{p.function_id}Arn" for p in PROFILES["quick"]}


def test_payloads_carry_ids_only():
    text = json.dumps(DEFINITION)
    for state in STATES.values():
        payload = state.get("Parameters", {}).get("Payload", {})
        assert set(payload) <= {
            "generation_id.$",
            "campaign_id.$",
            "phase",
            "execution_id.$",
            "redrive_count.$",
            "error.$",
        }
    assert len(text) < 60_000


def test_a_line_of_phases_builds_a_machine_without_parallel_states():
    line = [
        Phase(id="X1", name="First", tables=("a",), depends_on=(), focus="f"),
        Phase(id="X2", name="Second", tables=("b",), depends_on=("X1",), focus="f"),
    ]
    assert [type(step).__name__ for step in statemachine.plan(line)] == ["Phase", "Phase"]
    assert statemachine.mermaid(DEFINITION).startswith("stateDiagram-v2")


def test_every_lambda_is_told_the_run_that_calls_it():
    """A redrive keeps the execution's ARN; its redrive count tells the runs apart (state.ExecutionRun)."""
    for state in STATES.values():
        if state["Type"] == "Task":
            payload = state["Parameters"]["Payload"]
            assert payload["execution_id.$"] == "$$.Execution.Id"
            assert payload["redrive_count.$"] == "$$.Execution.RedriveCount"


def test_a_lambda_timeout_or_crash_is_retried_twice_with_backoff_before_the_execution_fails():
    assert set(lambda_fault_error_names()) == {"Sandbox.Timedout", "Lambda.Unknown"}
    for state in STATES.values():
        if state["Type"] != "Task":
            continue
        faults = next(r for r in state["Retry"] if "Sandbox.Timedout" in r["ErrorEquals"])
        assert faults["ErrorEquals"] == ["Sandbox.Timedout", "Lambda.Unknown"]
        assert faults["MaxAttempts"] == 2 and faults["BackoffRate"] > 1 and faults["JitterStrategy"] == "FULL"
        assert "Catch" not in state or not set(faults["ErrorEquals"]) & {
            name for c in state["Catch"] for name in c["ErrorEquals"]
        }  # past its retries the execution fails AT the phase: redrivable, never rolled back
