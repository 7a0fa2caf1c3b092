"""How long a real-size world takes at a real model's pace, phase by phase.

    make bench-world

Two campaigns through the real state machine (moto executing the committed ASL, the real phase
handlers, embedded PostgreSQL) with the ``simulated`` provider: the real anthropic SDK streaming
from the paced Claude simulator (worldgen.local.simulator) at 60 output tokens/s, 1.5 s to the
first token, the clock compressed by TIME_FACTOR. A 4-PC ``typical`` world and a 6-PC ``generous``
one, then the same two campaigns in the ``quick`` profile (3 calls, a lean world; target under
2 minutes for the typical one). Every duration is in simulated seconds: a phase's model time is the ledger's latency
(simulated), its other time (context, validation, the save) is real and not scaled.

Printed, never asserted: per phase the simulated wall time, calls, the largest HTTP call's output
tokens, repair rounds and context rows left out; per world the simulated wall time (the critical
path of the DAG), the sum of phases (the same phases run in a line) and the ratio, output tokens,
cost from the ledger at current list prices, and each phase handler's peak Python memory (traced
in a second, faster run) against the Lambda memory configured in the registry.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import tracemalloc
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from worldgen.audit import audit_world
from worldgen.db.connection import connect
from worldgen.functions_registry import ALL_FUNCTIONS
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, CampaignFile, insert_campaign, read_campaign_file
from worldgen.local.database import migrated_local_database
from worldgen.local.runtime import LocalRuntime, load_handler
from worldgen.local.simulator import ClaudeSimulator, Pace
from worldgen.phases import get_phase, profile_phases
from worldgen.settings import get_settings

TIME_FACTOR = 40.0
MEMORY_TIME_FACTOR = 20.0  # tracemalloc slows the client: a slower clock keeps it inside its deadlines
EXTRA_PCS = [
    {
        "name": "Marisol Quay",
        "race": "Human",
        "character_class": "Bard",
        "level": 3,
        "backstory": "A harbour singer who sold a song to a drowned god and now owes it a verse every new moon.",
        "goals": "Write the verse that frees her.",
    },
    {
        "name": "Old Haskel",
        "race": "Gnome",
        "character_class": "Wizard",
        "level": 3,
        "backstory": "A salvage-mage who mapped the sunken capital for the empire before it fell, and lied on the map.",
        "goals": "Recover the true map before the navy does.",
    },
]


@dataclass
class PhaseRow:
    phase: str
    status: str
    seconds: float = 0.0
    calls: int = 0
    largest_output: int = 0
    repairs: int = 0
    left_out: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    error: str | None = None


@dataclass
class World:
    label: str
    status: str
    phases: dict[str, PhaseRow] = field(default_factory=dict)
    real_seconds: float = 0.0
    memory: dict[str, float] = field(default_factory=dict)
    audit: str = ""  # worldgen.audit of the generated world (issue 11's quality targets)
    profile: str = "full"

    @property
    def critical_path(self) -> float:
        finish: dict[str, float] = {}
        for phase in profile_phases(self.profile):
            row = self.phases.get(phase.id)
            start = max((finish.get(d, 0.0) for d in phase.depends_on), default=0.0)
            finish[phase.id] = start + (row.seconds if row else 0.0)
        return max(finish.values(), default=0.0)

    @property
    def line(self) -> float:
        return sum(r.seconds for r in self.phases.values())


def campaign_for(pcs: int) -> CampaignFile:
    campaign = read_campaign_file(SAMPLE_CAMPAIGN)
    data = campaign.model_dump()
    data["player_characters"] = (data["player_characters"] + EXTRA_PCS)[:pcs]
    data["name"] = f"{data['name']} ({pcs} PCs, {uuid.uuid4().hex[:6]})"
    return CampaignFile.model_validate(data)


def run_world(
    url: str,
    label: str,
    pcs: int,
    size: str,
    factor: float,
    definition: str | None = None,
    wrap: Callable[[str, Any], Any] | None = None,
    profile: str = "full",
) -> tuple[World, ClaudeSimulator]:
    campaign = campaign_for(pcs)
    with connect(url) as conn:
        campaign_id = insert_campaign(conn, campaign)
    simulator = ClaudeSimulator(Pace(time_factor=factor), size=size)
    with simulator:
        environment = {"WORLDGEN_DATABASE_URL": url, **simulator.environment()}
        with LocalRuntime(definition=definition, environment=environment) as runtime:
            if wrap is not None:
                for phase in profile_phases(profile):
                    function = next(f for f in ALL_FUNCTIONS if f.id == phase.function_id)
                    runtime.overrides[phase.function_id] = wrap(phase.id, load_handler(function))
            started = time.perf_counter()
            request = {"campaign_id": str(campaign_id), "profile": profile}
            status, body = runtime.action("generateWorld", request, user_id=campaign.owner_id)
            if status != 200:
                raise SystemExit(f"generateWorld refused: {body}")
            execution = runtime.wait(body["execution_arn"], timeout=3600)
            real = time.perf_counter() - started
    get_settings.cache_clear()
    world = World(label, execution["status"], real_seconds=real, profile=profile)
    with connect(url) as conn:
        runs = conn.execute(
            "SELECT phase, status, duration_ms, model_ms, error_type FROM phase_runs WHERE generation_id = %s",
            (body["generation_id"],),
        ).fetchall()
        calls = conn.execute(
            "SELECT phase, round, output_tokens, latency_ms, cost_usd FROM model_calls WHERE generation_id = %s",
            (body["generation_id"],),
        ).fetchall()
        world.audit = audit_world(conn, body["generation_id"]).render()
    for run in runs:
        mine = sorted((c for c in calls if c["phase"] == run["phase"]), key=lambda c: c["round"])
        parts = len(get_phase(run["phase"]).table_groups)
        # Parts run concurrently: the first batch takes its slowest call, the repairs after it theirs.
        first, repairs = mine[:parts], mine[parts:]
        model_seconds = sum(c["latency_ms"] for c in mine) / 1000
        if parts > 1:
            model_seconds = (
                max((c["latency_ms"] for c in first), default=0) + max((c["latency_ms"] for c in repairs), default=0)
            ) / 1000
        if run["status"] != "succeeded":  # a failed call may leave no ledger row: the simulator's clock
            deadline = get_settings().request_timeout_seconds
            model_seconds = sum(min(s.simulated_seconds, deadline) for s in simulator.served if s.phase == run["phase"])
        other = max(0, (run["duration_ms"] or 0) - (run["model_ms"] or 0)) / 1000
        served = [s for s in simulator.served if s.phase == run["phase"] and s.usage]
        world.phases[run["phase"]] = PhaseRow(
            phase=run["phase"],
            status=run["status"],
            seconds=model_seconds + other,
            calls=len(mine),
            largest_output=max((s.usage["output_tokens"] for s in served), default=0),
            repairs=max(0, len(mine) - parts),  # the ledger's round numbers a phase's calls
            left_out=simulator.left_out.get(run["phase"], 0),
            output_tokens=sum(c["output_tokens"] for c in mine),
            cost=float(sum(c["cost_usd"] for c in mine)),
            error=run["error_type"],
        )
    return world, simulator


def traced(memory: dict[str, float]) -> Callable[[str, Any], Any]:
    """Wrap a handler to record its peak traced Python memory (MB; parallel branches overlap)."""

    def wrap(phase_id: str, handler: Any) -> Any:
        def run(event: dict[str, Any], context: Any) -> Any:
            tracemalloc.reset_peak()
            try:
                return handler(event, context)
            finally:
                peak = tracemalloc.get_traced_memory()[1] / 1e6
                memory[phase_id] = max(memory.get(phase_id, 0.0), peak)

        return run

    return wrap


def print_world(world: World, factor: float) -> None:
    print(f"\n{world.label}: execution {world.status}, {world.real_seconds:.1f} s real at x{factor:g}")
    print(
        f"  {'phase':<6}{'status':<10}{'sim s':>8}{'calls':>6}{'max out':>9}{'repairs':>8}{'left out':>9}"
        f"{'out tok':>9}{'cost $':>8}{'mem MB':>8}{'of MB':>6}"
    )
    for phase in profile_phases(world.profile):
        row = world.phases.get(phase.id)
        if row is None:
            print(f"  {phase.id:<6}{'not run':<10}")
            continue
        mem = world.memory.get(phase.id)
        mem_text = f"{mem:>8.1f}" if mem is not None else f"{'-':>8}"
        print(
            f"  {row.phase:<6}{row.status:<10}{row.seconds:>8.1f}{row.calls:>6}{row.largest_output:>9}"
            f"{row.repairs:>8}{row.left_out:>9}{row.output_tokens:>9}{row.cost:>8.3f}{mem_text}"
            f"{phase.memory_mb:>6}" + (f"  {row.error}" if row.error else "")
        )
    critical, line = world.critical_path, world.line
    tokens = sum(r.output_tokens for r in world.phases.values())
    cost = sum(r.cost for r in world.phases.values())
    print(
        f"  world: {critical:.0f} s simulated ({critical / 60:.1f} min) on the critical path;"
        f" phases in a line {line:.0f} s; line / DAG = {line / critical if critical else 0:.3f}"
    )
    print(f"  output tokens {tokens}, cost ${cost:.3f} (ledger, list prices)")
    if world.audit:
        print(world.audit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--factor", type=float, default=TIME_FACTOR, help="simulated seconds per real second")
    parser.add_argument("--no-memory", action="store_true", help="skip the traced-memory runs")
    parser.add_argument("--profile", choices=("full", "quick"), default=None, help="only the worlds of one profile")
    args = parser.parse_args()
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"  # the table, not the handlers' logs
    logging.getLogger("moto").setLevel(logging.CRITICAL)  # a failed Task's traceback: the table says it
    url = migrated_local_database()
    print(
        "bench-world: simulated Claude at 60 output tokens/s, 1.5 s to the first token,"
        f" clock x{args.factor:g}; durations in simulated seconds"
    )
    worlds = (
        ("typical world, 4 PCs", 4, "typical", "full"),
        ("generous world, 6 PCs", 6, "generous", "full"),
        ("quick profile, typical world, 4 PCs (target: under 2 minutes)", 4, "typical", "quick"),
        ("quick profile, generous world, 6 PCs", 6, "generous", "quick"),
    )
    for label, pcs, size, profile in worlds:
        if args.profile and profile != args.profile:
            continue
        world, _ = run_world(url, label, pcs, size, args.factor, profile=profile)
        if not args.no_memory:
            memory: dict[str, float] = {}
            tracemalloc.start()
            try:
                traced_world, _ = run_world(
                    url, label, pcs, size, MEMORY_TIME_FACTOR, wrap=traced(memory), profile=profile
                )
            finally:
                tracemalloc.stop()
            world.memory = memory
            if traced_world.status != "SUCCEEDED":
                print(f"  ({label}: the traced-memory run ended {traced_world.status}; memory of the phases it ran)")
        print_world(world, args.factor)
    print(
        "\n  mem MB: peak Python allocations traced inside the phase's handler (tracemalloc, a second run;"
        "\n  2C/3A and 3B overlap in time, so their peaks include each other), against the Lambda's"
        "\n  configured memory (of MB), which also holds the runtime and the imported packages."
    )
    print("  " + json.dumps({"prices": "worldgen.model.pricing", "model": "registry default"}))


if __name__ == "__main__":
    main()
