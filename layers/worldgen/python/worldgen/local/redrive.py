"""Step Functions' RedriveExecution, as AWS documents it, for the local runtime (moto has none).

What AWS does (https://docs.aws.amazon.com/step-functions/latest/dg/redrive-executions.html and
https://docs.aws.amazon.com/step-functions/latest/apireference/API_RedriveExecution.html):
- it restarts an unsuccessful (FAILED, TIMED_OUT or ABORTED) execution of a STANDARD state machine
  that ended less than 14 days ago; a SUCCEEDED or running execution cannot be redriven;
- the SAME execution (same ARN, same input, the definition it started with) continues from its
  unsuccessful step; the succeeded steps keep their results and are not run again; in a Parallel
  state only the branches that failed or aborted are run again; a Fail state re-entered fails again;
- ``redriveCount`` (and the context object's ``$$.Execution.RedriveCount``) goes up by one.
  https://docs.aws.amazon.com/step-functions/latest/apireference/API_ExecutionRedrivenEventDetails.html

The local runtime does it with what moto has: from the definition the execution ran and its event
history, ``redrive_definition`` builds the definition of the redriven run, which starts at the
state that stopped (a Pass state first hands it the input it had), and, inside a Parallel state that
stopped, keeps each branch that had finished as a Pass state holding that branch's output. The run
starts under the same execution name, so under the same ARN.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from worldgen.contracts import REDRIVE_COUNT_PATH

REDRIVE_WINDOW = timedelta(days=14)
REDRIVABLE_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")
ENTRY_PREFIX = "RedriveFrom"  # the Pass state that hands the stopped state its input
KEPT_PREFIX = "Kept"  # a finished Parallel branch, kept as its output


class ExecutionNotRedrivable(Exception):
    """What RedriveExecution answers for an execution it will not redrive; the message says why."""


@dataclass
class ExecutionRecord:
    """What a redrive needs of an ended execution, kept on disk so another process can redrive it
    (moto's executions live and die with the process that ran them)."""

    execution_arn: str
    state_machine_arn: str
    name: str
    input: str
    status: str
    stop_date: str  # ISO 8601, UTC
    redrive_count: int
    definition: dict[str, Any]  # the definition the run ran, $$.Execution.RedriveCount unresolved
    history: list[dict[str, Any]]
    state_machine_type: str = "STANDARD"

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}.json"
        path.write_text(json.dumps(asdict(self), default=str))
        return path

    @classmethod
    def load(cls, folder: Path, name: str) -> ExecutionRecord | None:
        path = folder / f"{name}.json"
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))


def check_redrivable(record: ExecutionRecord, now: datetime | None = None) -> None:
    """The rules RedriveExecution enforces; ExecutionNotRedrivable says which one failed."""
    if record.state_machine_type != "STANDARD":
        raise ExecutionNotRedrivable(f"execution {record.name} is of an {record.state_machine_type} state machine")
    if record.status == "SUCCEEDED":
        raise ExecutionNotRedrivable(f"execution {record.name} succeeded: only an unsuccessful one can be redriven")
    if record.status not in REDRIVABLE_STATUSES:
        raise ExecutionNotRedrivable(f"execution {record.name} is {record.status}: it has not ended")
    stopped = datetime.fromisoformat(record.stop_date)
    if (now or datetime.now(UTC)) - stopped > REDRIVE_WINDOW:
        raise ExecutionNotRedrivable(
            f"execution {record.name} ended {stopped:%Y-%m-%d %H:%M} UTC, more than 14 days ago"
        )


def redrive_definition(definition: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    """The definition of the redriven run of an execution that ran ``definition`` with ``history``."""
    entered: dict[str, Any] = {}
    exited: dict[str, Any] = {}
    for event in history:
        if details := event.get("stateEnteredEventDetails"):
            entered[details["name"]] = details.get("input")
            exited.pop(details["name"], None)
        if details := event.get("stateExitedEventDetails"):
            exited[details["name"]] = details.get("output")
    redriven = _line(definition, entered, exited)
    if redriven is None:
        raise ExecutionNotRedrivable("the execution has no unsuccessful state to redrive")
    return {**definition, **redriven}


def _line(line: dict[str, Any], entered: dict[str, Any], exited: dict[str, Any]) -> dict[str, Any] | None:
    """``{"StartAt", "States"}`` of a line (the machine or a branch) run again from the state it
    stopped at; None when the line never stopped anywhere (it finished, or never started)."""
    states: dict[str, Any] = line["States"]
    stopped = [name for name in states if name in entered and name not in exited]
    if not stopped:
        return None
    name = stopped[0]
    restarted = dict(states)
    if states[name]["Type"] == "Parallel":
        restarted[name] = {**states[name], "Branches": [_branch(b, entered, exited) for b in states[name]["Branches"]]}
    entry = f"{ENTRY_PREFIX}{name}"
    restarted[entry] = {
        "Type": "Pass",
        "Comment": f"Redrive: {name} again, with the input it had",
        "Result": _json(entered[name]),
        "Next": name,
    }
    return {"StartAt": entry, "States": _reachable(restarted, entry)}


def _branch(branch: dict[str, Any], entered: dict[str, Any], exited: dict[str, Any]) -> dict[str, Any]:
    redriven = _line(branch, entered, exited)
    if redriven is not None:
        return {**branch, **redriven}
    ends = [name for name, state in branch["States"].items() if state.get("End") and name in exited]
    if not ends:  # never started: it runs as it was
        return branch
    start = branch["StartAt"]
    kept = start if start.startswith(KEPT_PREFIX) else f"{KEPT_PREFIX}{start}"
    return {
        "StartAt": kept,
        "States": {
            kept: {
                "Type": "Pass",
                "Comment": "Redrive: this branch succeeded; its output is kept, its states are not run again",
                "Result": _json(exited[ends[0]]),
                "End": True,
            }
        },
    }


def _reachable(states: dict[str, Any], start: str) -> dict[str, Any]:
    """The states reachable from ``start`` (ASL refuses a state nothing reaches)."""
    seen: list[str] = []
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.append(name)
        state = states[name]
        following = [state.get("Next"), state.get("Default")]
        following += [c.get("Next") for c in state.get("Catch", []) + state.get("Choices", [])]
        todo += [n for n in following if n]
    return {name: state for name, state in states.items() if name in seen}


def _json(text: Any) -> Any:
    return json.loads(text) if isinstance(text, str) else text


def with_redrive_count(node: Any, redrive_count: int) -> Any:
    """What moto runs of a definition: moto's context object has no ``Execution.RedriveCount``
    (AWS's does), so ``node`` with every ``"<key>.$": "$$.Execution.RedriveCount"`` made
    ``"<key>": redrive_count``, the run's number."""
    if isinstance(node, list):
        return [with_redrive_count(item, redrive_count) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        (key[:-2] if value == REDRIVE_COUNT_PATH else key): (
            redrive_count if value == REDRIVE_COUNT_PATH else with_redrive_count(value, redrive_count)
        )
        for key, value in node.items()
    }
