"""The redriven run's definition, as the local runtime builds it from a definition and a history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from worldgen.local.redrive import ExecutionNotRedrivable, ExecutionRecord, check_redrivable, redrive_definition
from worldgen.tools.statemachine import build_definition


def entered(name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"stateEnteredEventDetails": {"name": name, "input": json.dumps(data)}}


def exited(name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"stateExitedEventDetails": {"name": name, "output": json.dumps(data)}}


DEFINITION = build_definition()
PARALLEL = next(name for name, state in DEFINITION["States"].items() if state["Type"] == "Parallel")


def ran(*names: str) -> list[dict[str, Any]]:
    """A history in which ``names`` ran and succeeded, in order, each passing its input on."""
    events = []
    for name in names:
        events += [entered(name, {"at": name}), exited(name, {"after": name})]
    return events


def test_a_failed_phase_is_run_again_with_its_input_and_nothing_before_it_is():
    history = [
        *ran("Phase1ACoreWorldSystems", "Phase1BCharacterBuildingSystems"),
        entered("Phase1CSocialFramework", {"at": "1C"}),
    ]

    redriven = redrive_definition(DEFINITION, history)

    entry = redriven["States"][redriven["StartAt"]]
    assert entry == {**entry, "Type": "Pass", "Result": {"at": "1C"}, "Next": "Phase1CSocialFramework"}
    assert "Phase1ACoreWorldSystems" not in redriven["States"]  # succeeded: never run again
    assert "Phase1BCharacterBuildingSystems" not in redriven["States"]
    assert redriven["States"]["Phase1CSocialFramework"] == DEFINITION["States"]["Phase1CSocialFramework"]
    assert "CompleteGeneration" in redriven["States"]


def test_in_a_failed_parallel_state_only_the_unfinished_branch_runs_again():
    branches = DEFINITION["States"][PARALLEL]["Branches"]
    finished, failed = branches[0], branches[1]  # [2C -> 3A] finished, [3B] failed
    history = [entered(PARALLEL, {"at": "parallel"})]
    for name in finished["States"]:
        history += [entered(name, {"at": name}), exited(name, {"done": name})]
    failing = failed["StartAt"]
    history.append(entered(failing, {"at": failing}))

    redriven = redrive_definition(DEFINITION, history)

    parallel = redriven["States"][PARALLEL]
    kept, again = parallel["Branches"]
    (only,) = kept["States"].values()
    assert only["Type"] == "Pass" and only["End"] is True
    assert only["Result"] == {"done": list(finished["States"])[-1]}  # the branch's output, kept
    assert again["States"][again["StartAt"]]["Next"] == failing
    assert again["States"][failing] == failed["States"][failing]
    assert redriven["States"][redriven["StartAt"]]["Next"] == PARALLEL


def test_an_execution_that_ended_in_its_fail_state_fails_there_again():
    history = [*ran("Phase1ACoreWorldSystems", "RollbackGeneration"), entered("GenerationFailed", {"error": {}})]

    redriven = redrive_definition(DEFINITION, history)

    assert redriven["States"][redriven["States"][redriven["StartAt"]]["Next"]]["Type"] == "Fail"
    assert set(redriven["States"]) == {redriven["StartAt"], "GenerationFailed"}


def record(**changes: Any) -> ExecutionRecord:
    values: dict[str, Any] = {
        "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:worldgen-local:g",
        "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:worldgen-local",
        "name": "g",
        "input": "{}",
        "status": "FAILED",
        "stop_date": datetime.now(UTC).isoformat(),
        "redrive_count": 0,
        "definition": DEFINITION,
        "history": [],
    }
    return ExecutionRecord(**{**values, **changes})


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"status": "SUCCEEDED"}, "succeeded"),
        ({"status": "RUNNING"}, "has not ended"),
        ({"state_machine_type": "EXPRESS"}, "EXPRESS"),
        ({"stop_date": (datetime.now(UTC) - timedelta(days=15)).isoformat()}, "more than 14 days ago"),
    ],
)
def test_the_redrive_rules_aws_documents_are_enforced(changes, reason):
    with pytest.raises(ExecutionNotRedrivable, match=reason):
        check_redrivable(record(**changes))
    for status in ("FAILED", "TIMED_OUT", "ABORTED"):
        check_redrivable(record(status=status))


@pytest.mark.parametrize(
    ("row", "says"),
    [
        (None, "does not exist"),
        ({"status": "cancelled", "execution_arn": "arn", "redrivable": False, "error_type": None}, "is cancelled"),
        ({"status": "running", "execution_arn": "arn", "redrivable": False, "error_type": None}, "is running"),
        (
            {"status": "failed", "execution_arn": "arn", "redrivable": False, "error_type": "InvalidModelOutput"},
            "permanent error (InvalidModelOutput)",
        ),
    ],
)
def test_worldgen_redrive_says_in_one_line_why_a_generation_cannot_be_redriven(row, says):
    from worldgen.local.commands import redrive_refusal

    line = redrive_refusal("g-1", row)
    assert line.startswith("error: generation g-1") and says in line and "\n" not in line
    redrivable = {"status": "failed", "execution_arn": "arn", "redrivable": True, "error_type": "ModelUnavailable"}
    assert redrive_refusal("g-1", redrivable) == ""
