"""Where a generation's time goes, and what the DAG buys over a line of phases.

    make bench-engine

1. The demo (procedural model, embedded PostgreSQL, the committed ASL in moto): wall time split
   into model, database and orchestration (wall time when no handler was running).
2. A model stub that sleeps L seconds per call: the DAG machine against the same phases forced
   into a line. Expect about 8L against 9L (2C -> 3A and 3B overlap).
Numbers are printed side by side from one run; nothing is asserted.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from typing import Any

from worldgen.db.connection import connect
from worldgen.handlers.phase import make_phase_handler
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file
from worldgen.local.database import migrated_local_database
from worldgen.local.runtime import LocalRuntime
from worldgen.model.base import ModelRequest, ModelResponse
from worldgen.model.procedural import ProceduralModel
from worldgen.phases import PHASES
from worldgen.tools import statemachine

SLEEP_SECONDS = 0.5
RUNS = 3


class SleepingModel:
    """The procedural model after a fixed sleep: a stand-in for an LLM's latency."""

    provider = "procedural"

    def __init__(self, seconds: float) -> None:
        self.seconds, self.inner = seconds, ProceduralModel()

    def call(self, request: ModelRequest) -> ModelResponse:
        time.sleep(self.seconds)
        return self.inner.call(request)


def busy_seconds(intervals: list[tuple[str, float, float]]) -> float:
    """Length of the union of the handlers' running intervals (parallel branches overlap)."""
    total, end = 0.0, float("-inf")
    for _, start, stop in sorted(intervals, key=lambda i: i[1]):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def run_once(url: str, definition: str | None = None, model: Any = None) -> dict[str, float]:
    overrides = {}
    if model is not None:
        handler = make_phase_handler(lambda: model)
        overrides = {p.function_id: handler for p in PHASES}
    with connect(url) as conn:
        campaign_id = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
    with LocalRuntime(overrides, definition=definition, environment={"WORLDGEN_DATABASE_URL": url}) as runtime:
        started = time.perf_counter()
        status, body = runtime.action("generateWorld", {"campaign_id": str(campaign_id)}, user_id="demo-game-master")
        assert status == 200, body
        execution = runtime.wait(body["execution_arn"], poll_seconds=0.005)
        wall = time.perf_counter() - started
        assert execution["status"] == "SUCCEEDED", execution
        intervals = [t for t in runtime.timings if t[1] >= started]
    with connect(url) as conn:
        row = conn.execute(
            "SELECT sum(model_ms) AS model, sum(db_ms) AS db FROM phase_runs WHERE generation_id = %s",
            (body["generation_id"],),
        ).fetchone()
    assert row is not None
    busy = busy_seconds(intervals)
    return {
        "wall": wall,
        "model": (row["model"] or 0) / 1000,
        "db": (row["db"] or 0) / 1000,
        "handlers": busy,
        "orchestration": wall - busy,
        "tasks": len(intervals),
    }


def line_definition() -> str:
    """The same phases with 3B made to wait for 3A: a line, no Parallel state."""
    line = [dataclasses.replace(p, depends_on=("3A",)) if p.id == "3B" else p for p in PHASES]
    return json.dumps(statemachine.build_definition(line))


def main() -> None:
    url = migrated_local_database()
    run_once(url)  # warm-up: imports, catalog read, first connections

    demo = [run_once(url) for _ in range(RUNS)]
    print(f"Demo (procedural model), median of {RUNS} runs")
    print(
        f"  {'wall s':>8} {'model s':>8} {'db s':>8} {'other s':>8} {'handlers s':>11} {'orchestr. s':>12}"
        f" {'per task ms':>12}"
    )
    median = {k: statistics.median(r[k] for r in demo) for k in demo[0]}
    per_task = median["orchestration"] / median["tasks"] * 1000
    print(
        f"  {median['wall']:>8.3f} {median['model']:>8.3f} {median['db']:>8.3f}"
        f" {median['handlers'] - median['model'] - median['db']:>8.3f} {median['handlers']:>11.3f}"
        f" {median['orchestration']:>12.3f} {per_task:>12.1f}"
    )
    print("  (handlers = time inside the Lambda handlers = model + db (the save transaction) + other")
    print("   (context read, prompt, validation, Powertools); orchestration = wall time outside any")
    print("   handler: moto's interpreter, the in-process Lambda dispatch and the polling)")

    print(f"\nSleeping model stub, L = {SLEEP_SECONDS} s per call, median of {RUNS} runs each")
    stub = SleepingModel(SLEEP_SECONDS)
    dag = [run_once(url, model=stub)["wall"] for _ in range(RUNS)]
    line = [run_once(url, definition=line_definition(), model=stub)["wall"] for _ in range(RUNS)]
    dag_s, line_s = statistics.median(dag), statistics.median(line)
    print(f"  {'machine':<10} {'wall s':>8} {'in L':>6}")
    print(f"  {'DAG':<10} {dag_s:>8.3f} {dag_s / SLEEP_SECONDS:>6.2f}")
    print(f"  {'line':<10} {line_s:>8.3f} {line_s / SLEEP_SECONDS:>6.2f}")
    print(f"  line / DAG = {line_s / dag_s:.3f}  (ideal 9/8 = {9 / 8:.3f})")


if __name__ == "__main__":
    main()
