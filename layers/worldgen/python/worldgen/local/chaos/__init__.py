"""`make chaos`: generations on the local runtime against a PostgreSQL that is restarted and killed,
with processes killed (between phases and in the middle of a round of parts), cancels, concurrent
resumes, failing regenerations, slow or failing models, an execution failed by a bug that is
redriven after the fix, and a game master's work between a failure and its recovery.

After each scenario the invariants are checked from the database alone (``invariants``); the run
prints a table and never asserts (``tests/e2e/test_chaos.py`` runs a short version and asserts 0
violations). The scenarios: ``faults`` (infrastructure) and ``recovery`` (the game master's work).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worldgen.local.chaos import faults, recovery
from worldgen.local.chaos.harness import Harness, Outcome
from worldgen.local.chaos.invariants import check

Scenario = Callable[[Harness, Outcome], uuid.UUID]

SCENARIOS: dict[str, Scenario] = {
    "db_restart": faults.db_restart,
    "db_kill": faults.db_kill,
    "process_kill": faults.process_kill,
    "kill_mid_round": faults.kill_mid_round,
    "cancel_then_new": faults.cancel_then_new,
    "concurrent_resumes": faults.concurrent_resumes,
    "regeneration_revert": faults.regeneration_revert,
    "slow_model": faults.slow_model,
    "failing_model": faults.failing_model,
    "redrive": faults.redrive,
    "resume_after_newer": recovery.resume_after_newer,
    "cancel_after_newer": recovery.cancel_after_newer,
    "discard_of_a_regeneration": recovery.discard_of_a_regeneration,
    "gm_work_then_revert": recovery.gm_work_then_revert,
    "lock_and_edit_between_failure_and_resume": recovery.lock_and_edit_between_failure_and_resume,
}


class Chaos(Harness):
    SCENARIOS = tuple(SCENARIOS)

    def run(self, count: int, scenarios: tuple[str, ...] = SCENARIOS, out: Any = sys.stdout) -> list[Outcome]:
        outcomes = []
        for index in range(count):
            name = scenarios[index % len(scenarios)]
            outcome = Outcome(name)
            started = time.perf_counter()
            requests_before = self.model.requests
            try:
                campaign_id = SCENARIOS[name](self, outcome)
                check(self, campaign_id, outcome, requests_before)
            except Exception as exc:  # a harness error is reported as a violation, never hidden
                outcome.violations.append(f"{type(exc).__name__}: {exc}")
            self.model.plan()
            outcome.seconds = time.perf_counter() - started
            outcomes.append(outcome)
            mark = "ok" if not outcome.violations else "VIOLATION"
            print(
                f"  {index + 1:>3} {name:<40} {outcome.seconds:6.1f} s  {mark}  {'; '.join(outcome.faults)}", file=out
            )
            for violation in outcome.violations:
                print(f"        - {violation}", file=out)
        return outcomes


def summary_table(outcomes: list[Outcome]) -> str:
    faults_injected = sum(len(o.faults) for o in outcomes)
    violations = sum(len(o.violations) for o in outcomes)
    by_kind = Counter(o.scenario for o in outcomes)
    violated = Counter(o.scenario for o in outcomes for _ in o.violations)
    lines = [
        "| scenarios | faults injected | invariant violations | rows lost | rows duplicated | generations stuck"
        " | paid calls not in the ledger |",
        "|---|---|---|---|---|---|---|",
        f"| {len(outcomes)} | {faults_injected} | {violations} | {sum(o.rows_lost for o in outcomes)} |"
        f" {sum(o.rows_duplicated for o in outcomes)} | {sum(o.stuck for o in outcomes)} |"
        f" {sum(o.calls_not_in_ledger for o in outcomes)} |",
        "",
        "| scenario kind | scenarios | invariant violations |",
        "|---|---|---|",
        *(f"| {kind} | {n} | {violated[kind]} |" for kind, n in by_kind.items()),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="make chaos", description=__doc__)
    parser.add_argument("--scenarios", type=int, default=30)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", metavar="FILE", default=None, help="also write the outcomes as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="worldgen-chaos-") as root:
        os.chmod(root, 0o755)  # noqa: S103  # pgserver runs PostgreSQL as its own user when we are root
        chaos = Chaos(Path(root), args.seed)
        try:
            print(f"chaos: {args.scenarios} scenarios, seed {args.seed}, PostgreSQL at {chaos.url}")
            outcomes = chaos.run(args.scenarios)
        finally:
            chaos.close()
    print()
    print(summary_table(outcomes))
    if args.json:
        Path(args.json).write_text(json.dumps([o.__dict__ for o in outcomes], indent=2, default=sorted))
    return 0
