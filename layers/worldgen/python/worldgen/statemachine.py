"""Builds the Step Functions definition (ASL) from the phase registry and the error taxonomy.

``make asl`` writes ``statemachine/generation.asl.json`` and ``statemachine/README.md``; a test
rebuilds both and fails when the committed files are stale. Nobody edits the ASL by hand.

The shape comes from ``depends_on``: phases that every other phase is ordered with run in a line;
between two such phases, the phases left split into independent groups that run as the branches
of a Parallel state (after 2B: [2C -> 3A] and [3B]).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from worldgen.errors import permanent_error_names, transient_error_names
from worldgen.functions_registry import COMPLETE_FUNCTION, ROLLBACK_FUNCTION
from worldgen.phases import PHASES, Phase, topological_order
from worldgen.settings import REPO_ROOT

ASL_PATH = REPO_ROOT / "statemachine" / "generation.asl.json"
README_PATH = REPO_ROOT / "statemachine" / "README.md"

ROLLBACK_STATE = "RollbackGeneration"
FAILED_STATE = "GenerationFailed"
COMPLETE_STATE = "CompleteGeneration"
RETRY_POLICY = {"IntervalSeconds": 5, "MaxAttempts": 4, "BackoffRate": 2.0, "MaxDelaySeconds": 120}

Plan = list["Phase | list[Plan]"]  # a line of steps; a step is a phase or a Parallel of lines


def _closure(phases: Sequence[Phase]) -> dict[str, set[str]]:
    """Each phase's transitive dependencies among ``phases`` (others count as already met)."""
    by_id = {p.id: p for p in phases}
    found: dict[str, set[str]] = {}
    for phase in topological_order(phases):
        found[phase.id] = set()
        for dep in phase.depends_on:
            if dep in by_id:
                found[phase.id] |= {dep} | found[dep]
    return found


def plan(phases: Sequence[Phase]) -> Plan:
    """Series-parallel decomposition of the dependency DAG restricted to ``phases``."""
    phases = topological_order(phases)
    deps = _closure(phases)
    spine = [p for p in phases if all(p.id in deps[q.id] or q.id in deps[p.id] or p is q for q in phases)]
    steps: Plan = []
    segment: list[Phase] = []

    def flush() -> None:
        if not segment:
            return
        groups = _components(segment, deps)
        if len(groups) == 1 and len(groups[0]) == len(phases):
            steps.extend(groups[0])  # not series-parallel: run it as a line
        elif len(groups) == 1:
            steps.extend(plan(groups[0]))
        else:
            steps.append([plan(group) for group in groups])
        segment.clear()

    for phase in phases:
        if phase in spine:
            flush()
            steps.append(phase)
        else:
            segment.append(phase)
    flush()
    return steps


def _components(phases: list[Phase], deps: dict[str, set[str]]) -> list[list[Phase]]:
    """Weakly connected groups of ``phases`` under their dependency edges, in registry order."""
    ids = {p.id for p in phases}
    group_of = {p.id: {p.id} for p in phases}
    for p in phases:
        for dep in deps[p.id] & ids:
            merged = group_of[p.id] | group_of[dep]
            for member in merged:
                group_of[member] = merged
    groups: list[list[Phase]] = []
    seen: set[str] = set()
    for p in phases:
        if p.id not in seen:
            members = group_of[p.id]
            seen |= members
            groups.append([q for q in phases if q.id in members])
    return groups


def _retry() -> list[dict[str, Any]]:
    return [{"ErrorEquals": transient_error_names(), **RETRY_POLICY, "JitterStrategy": "FULL"}]


def _catch() -> list[dict[str, Any]]:
    return [{"ErrorEquals": permanent_error_names(), "ResultPath": "$.error", "Next": ROLLBACK_STATE}]


def _lambda_task(placeholder: str, payload: dict[str, Any], timeout: int) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": f"${{{placeholder}}}", "Payload": payload},
        "TimeoutSeconds": timeout,
        "ResultSelector": {"result.$": "$.Payload"},
    }


def _phase_state(phase: Phase, *, catch: bool) -> dict[str, Any]:
    state = _lambda_task(
        f"{phase.function_id}Arn",
        {
            "generation_id.$": "$.generation_id",
            "campaign_id.$": "$.campaign_id",
            "phase": phase.id,
            "execution_id.$": "$$.Execution.Id",
        },
        phase.state_timeout_seconds,
    )
    state["Comment"] = f"{phase.id} {phase.name}: {', '.join(phase.tables)}"
    state["ResultPath"] = f"$.phases.phase_{phase.slug}"
    state["Retry"] = _retry()
    if catch:
        state["Catch"] = _catch()
    return state


def _line(steps: Plan, then: str | None, *, in_branch: bool) -> tuple[str, dict[str, Any]]:
    """States for a line of steps ending in ``then`` (or End); returns (StartAt, States)."""
    states: dict[str, Any] = {}
    names = [_step_name(step) for step in steps]
    for index, step in enumerate(steps):
        following = names[index + 1] if index + 1 < len(steps) else then
        if isinstance(step, Phase):
            state = _phase_state(step, catch=not in_branch)
        else:
            branches = []
            for branch in step:
                start, branch_states = _line(branch, None, in_branch=True)
                branches.append({"StartAt": start, "States": branch_states})
            state = {
                "Type": "Parallel",
                "Comment": "Independent phases run side by side",
                "Branches": branches,
                "ResultPath": None,
                "Catch": _catch(),
            }
        if following:
            state["Next"] = following
        else:
            state["End"] = True
        states[names[index]] = state
    return names[0], states


def _step_name(step: Phase | list[Plan]) -> str:
    if isinstance(step, Phase):
        return step.state_name
    return "Parallel" + "And".join(_branch_ids(branch) for branch in step)


def _branch_ids(branch: Plan) -> str:
    return "".join(s.id if isinstance(s, Phase) else _step_name(s) for s in branch)


def build_definition(phases: Sequence[Phase] = PHASES) -> dict[str, Any]:
    start, states = _line(plan(phases), COMPLETE_STATE, in_branch=False)
    generation = {"generation_id.$": "$.generation_id", "campaign_id.$": "$.campaign_id"}
    complete = _lambda_task(COMPLETE_FUNCTION.placeholder, generation, COMPLETE_FUNCTION.timeout_seconds + 30)
    complete.update(ResultPath="$.summary", Retry=_retry(), End=True)
    rollback = _lambda_task(
        ROLLBACK_FUNCTION.placeholder,
        {**generation, "error.$": "$.error"},
        ROLLBACK_FUNCTION.timeout_seconds + 30,
    )
    rollback.update(ResultPath="$.rollback", Retry=_retry(), Next=FAILED_STATE)
    states[COMPLETE_STATE] = complete
    states[ROLLBACK_STATE] = rollback
    states[FAILED_STATE] = {
        "Type": "Fail",
        "Comment": "A phase failed permanently; the generation was rolled back",
        "ErrorPath": "$.error.Error",
        "CausePath": "$.error.Cause",
    }
    return {
        "Comment": "worldgen: generate a campaign world in 9 dependent phases (generated by `make asl`)",
        "StartAt": start,
        "States": states,
    }


def render_definition(definition: dict[str, Any]) -> str:
    return json.dumps(definition, indent=2) + "\n"


def placeholders(definition: dict[str, Any]) -> set[str]:
    import re

    return set(re.findall(r"\$\{(\w+)\}", json.dumps(definition)))


def mermaid(definition: dict[str, Any]) -> str:
    lines = ["stateDiagram-v2"]

    def walk(states: dict[str, Any], start: str, prefix: str = "") -> None:
        lines.append(f"    {prefix}[*] --> {start}")
        for name, state in states.items():
            if state["Type"] == "Parallel":
                lines.append(f"    state {name} {{")
                for index, branch in enumerate(state["Branches"]):
                    if index:
                        lines.append("        --")
                    walk(branch["States"], branch["StartAt"], "    ")
                lines.append("    }")
            if "Next" in state:
                lines.append(f"    {prefix}{name} --> {state['Next']}")
            if state.get("End"):
                lines.append(f"    {prefix}{name} --> [*]")
            for catch in state.get("Catch", []):
                lines.append(f"    {prefix}{name} --> {catch['Next']}: permanent error")

    walk(definition["States"], definition["StartAt"])
    lines.append(f"    {FAILED_STATE} --> [*]")
    return "\n".join(lines)


def render_readme(definition: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {p.id} | `{p.state_name}` | {', '.join(p.depends_on) or '-'} | {p.lambda_timeout_seconds} s "
        f"| {p.state_timeout_seconds} s |"
        for p in PHASES
    )
    return f"""# The generation state machine

Generated by `make asl` from `worldgen/phases.py` and `worldgen/errors.py`; do not edit.

```mermaid
{mermaid(definition)}
```

| phase | state | depends on | Lambda timeout | state TimeoutSeconds |
|---|---|---|---|---|
{rows}

- Retry (every Task, exponential backoff, full jitter, at most {RETRY_POLICY["MaxAttempts"]} retries):
  {", ".join(f"`{n}`" for n in transient_error_names())}.
- Catch (permanent errors only) -> `{ROLLBACK_STATE}` -> `{FAILED_STATE}`:
  {", ".join(f"`{n}`" for n in permanent_error_names())}.
- Anything else (a transient error that outlived its retries, a bug) fails the execution AT the
  phase, so Redrive in the Step Functions console reruns exactly that phase.
"""


def write(asl_path: Path = ASL_PATH, readme_path: Path = README_PATH) -> None:
    definition = build_definition()
    asl_path.parent.mkdir(parents=True, exist_ok=True)
    asl_path.write_text(render_definition(definition))
    readme_path.write_text(render_readme(definition))
