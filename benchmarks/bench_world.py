"""How long a real-size world takes at a real model's pace, and what it costs, phase by phase.

    make bench-world                       # every world below, on the registry's default model
    python -m benchmarks.bench_world --typical [--model M] [--tier 2]
    python -m benchmarks.bench_world --candidates   # the designs of a phase in parts side by side
    python -m benchmarks.bench_world --tier 2 --concurrent 3   # worlds at once in one rate-limit tier

Every run asks the registry's default model (``--model``) in its own request mode and prints it
with the simulator's rate-limit tier (none unless ``--tier``); the simulator bills as the API does
(worldgen.local.simulator), so the costs are the list-price bill of that model.

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
import contextlib
import dataclasses
import json
import logging
import os
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import worldgen.model.claude as claude
import worldgen.outline as outlines
import worldgen.parts as phase_parts
import worldgen.pipeline as pipeline
from worldgen.audit import audit_world
from worldgen.db.connection import connect
from worldgen.functions_registry import ALL_FUNCTIONS
from worldgen.local.aws_objects import load_handler
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, CampaignFile, insert_campaign, read_campaign_file
from worldgen.local.database import migrated_local_database
from worldgen.local.runtime import LocalRuntime
from worldgen.local.simulator import TIERS, ClaudeSimulator, Pace, Served, Tier
from worldgen.model.base import ModelRequest
from worldgen.model.families import family_of
from worldgen.model.pricing import price_of
from worldgen.phases import PHASES, Phase, get_phase, profile_phases
from worldgen.settings import get_settings

TIME_FACTOR = 40.0
DEFAULT_MODEL = PHASES[0].model  # the registry's default model, in its own request mode
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
    cache_reads: int = 0  # calls that read a cached prefix
    cache_read_tokens: int = 0
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
    model: str = ""

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


# The structure before outlines and parts (main until issue 12's parts): one call per phase with the
# budgets measured for it, 3C in its four parts of then, no cache primer.
ONE_CALL_OUTPUT_TOKENS = {
    "1A": 10000, "1B": 10000, "1C": 8000, "2A": 9000, "2B": 12000, "2C": 8500, "3A": 7500, "3B": 5500,
}  # fmt: skip
BEFORE_3C_PARTS = (
    ("entity_relationships", "entity_factions"),
    ("entity_locations", "entity_items", "entity_deities"),
    ("faction_relationships", "faction_locations", "location_connections"),
    ("quest_hook_entities", "quest_hook_locations", "pc_connections"),
)


def narrowed_part_request(request: ModelRequest, tables: tuple[str, ...]) -> ModelRequest:
    """A part as the structure before sent it: the phase's request narrowed to some of its tables,
    the same context in its message, a tool with those tables only (so no prefix shared)."""
    schema = request.tool["input_schema"]
    tool = {
        **request.tool,
        "input_schema": {
            **schema,
            "properties": {t: schema["properties"][t] for t in tables},
            "required": [t for t in schema.get("required", []) if t in tables],
        },
    }
    first, *rest = request.messages
    note = (
        f"\n\nThis call fills only these tables of the phase: {', '.join(tables)}. "
        "Other calls fill the phase's other tables at the same time; call the tool with these tables only."
    )
    messages = [{**first, "content": str(first["content"]) + note}, *rest]
    return dataclasses.replace(request, tool=tool, messages=messages)


@contextlib.contextmanager
def one_call_per_phase() -> Iterator[None]:
    """Run the phases as the single-call structure did (the handlers call ``pipeline.get_phase``)."""

    def whole(phase_id: str) -> Phase:
        phase = get_phase(phase_id)
        if phase.id not in ONE_CALL_OUTPUT_TOKENS:
            return dataclasses.replace(phase, parts=BEFORE_3C_PARTS, expected_output_tokens=6000)
        tokens = ONE_CALL_OUTPUT_TOKENS[phase.id]
        return dataclasses.replace(phase, parts=(), outline=False, expected_output_tokens=tokens)

    original, prime, part = pipeline.get_phase, phase_parts._prime, outlines.table_part_request
    pipeline.get_phase = whole
    phase_parts._prime = lambda run, request: None
    outlines.table_part_request = narrowed_part_request  # each part its own tool, the context in its message
    try:
        yield
    finally:
        pipeline.get_phase, phase_parts._prime = original, prime
        outlines.table_part_request = part


@contextlib.contextmanager
def without_prompt_cache() -> Iterator[None]:
    """Today's structure with no cache breakpoint and no primer: what the shared prefix saves."""
    original, prime = claude.request_params, phase_parts._prime

    def uncached(request: ModelRequest, model: str, max_tokens: int) -> dict[str, Any]:
        params = original(request, model, max_tokens)
        params["tools"] = [{k: v for k, v in t.items() if k != "cache_control"} for t in params.get("tools", [])]
        params["system"] = [{k: v for k, v in b.items() if k != "cache_control"} for b in params["system"]]
        return params

    claude.request_params = uncached
    phase_parts._prime = lambda run, request: None
    try:
        yield
    finally:
        claude.request_params = original
        phase_parts._prime = prime


@contextlib.contextmanager
def own_format_per_call() -> Iterator[None]:
    """Candidate (and the structure before issue 22): on a structured-output model each call of a
    phase in parts sends its own output_config.format (the part's tables), no tools."""
    original = claude.request_params

    def per_call(request: ModelRequest, model: str, max_tokens: int) -> dict[str, Any]:
        return original(dataclasses.replace(request, tools=[]), model, max_tokens)

    claude.request_params = per_call
    try:
        yield
    finally:
        claude.request_params = original


@contextlib.contextmanager
def one_format_per_phase() -> Iterator[None]:
    """Candidate: every part of a phase sends the same format (the whole phase's tables, none
    required; the outline its own), no tools: one cache key for the parts of a phase."""
    original = claude.request_params

    def per_phase(request: ModelRequest, model: str, max_tokens: int) -> dict[str, Any]:
        if request.tools and not request.tool["name"].endswith("_outline"):
            request = dataclasses.replace(request, tool=request.tools[0], tables=())
        return original(dataclasses.replace(request, tools=[]), model, max_tokens)

    claude.request_params = per_phase
    try:
        yield
    finally:
        claude.request_params = original


@contextlib.contextmanager
def without_primer() -> Iterator[None]:
    """Candidate: the parts of a phase without an outline sent at once, no cache primer first."""
    prime = phase_parts._prime
    phase_parts._prime = lambda run, request: None
    try:
        yield
    finally:
        phase_parts._prime = prime


CANDIDATES: tuple[tuple[str, Callable[[], contextlib.AbstractContextManager[None]]], ...] = (
    ("own format per call (before)", own_format_per_call),
    ("one format per phase", one_format_per_phase),
    ("same tools, tool_choice auto (now)", contextlib.nullcontext),
    ("same tools, no primer", without_primer),
)


def compare_candidates(url: str, factor: float, model: str, tier: Tier | None) -> None:
    """The typical world under each design of a phase in parts, side by side (one run)."""
    rows = []
    for label, candidate in CANDIDATES:
        with candidate():
            world, _ = run_world(url, label, 4, "typical", factor, model=model, tier=tier)
        calls = sum(r.calls for r in world.phases.values())
        reads = sum(r.cache_reads for r in world.phases.values())
        cost = sum(r.cost for r in world.phases.values())
        tokens = sum(r.output_tokens for r in world.phases.values())
        price = price_of(model)
        output_cost = tokens * price.output / 1_000_000 if price else 0.0
        rows.append((label, world.status, calls, reads, cost, cost / output_cost if output_cost else 0.0, world))
    print(f"\n  typical world, 4 PCs, on {model}: the designs of a phase in parts side by side")
    print(f"  {'design':<38}{'status':<11}{'calls':>6}{'reads':>6}{'cost $':>8}{'x out':>7}{'world s':>9}")
    for label, status, calls, reads, cost, ratio, world in rows:
        print(f"  {label:<38}{status:<11}{calls:>6}{reads:>6}{cost:>8.3f}{ratio:>7.2f}{world.critical_path:>9.0f}")
    for label, *_, world in rows:
        per_phase = ", ".join(f"{r.phase} ${r.cost:.3f} {r.calls}c/{r.cache_reads}r" for r in world.phases.values())
        print(f"  {label}: {per_phase}")


def concurrent_worlds(url: str, count: int, factor: float, model: str, tier: Tier | None) -> None:
    """``count`` typical worlds started at once in one account (one simulator, one rate-limit
    tier): does each complete, and does any 429 reach a phase's failure path?"""
    simulator = ClaudeSimulator(Pace(time_factor=factor), size="typical", tier=tier)
    environment = {"WORLDGEN_DATABASE_URL": url, **simulator.environment(), "WORLDGEN_SIMULATOR_MODEL": model}
    with simulator, LocalRuntime(environment=environment) as runtime:
        started = []
        for _ in range(count):
            campaign = campaign_for(4)
            with connect(url) as conn:
                campaign_id = insert_campaign(conn, campaign)
            status, body = runtime.action("generateWorld", {"campaign_id": str(campaign_id)}, user_id=campaign.owner_id)
            if status != 200:
                raise SystemExit(f"generateWorld refused: {body}")
            started.append(body)
        began = time.perf_counter()
        statuses = [runtime.wait(body["execution_arn"], timeout=3600)["status"] for body in started]
        real = time.perf_counter() - began
    get_settings.cache_clear()
    ids = [body["generation_id"] for body in started]
    with connect(url) as conn:
        # A phase attempt that failed and was retried leaves its number (a new attempt clears the
        # row's error) and its error on the ledger's last call of the attempt.
        retried = conn.execute(
            "SELECT coalesce(sum(attempt - 1), 0) AS n FROM phase_runs WHERE generation_id = ANY(%s::uuid[])", (ids,)
        ).fetchone()
        errors = conn.execute(
            "SELECT error_type, count(*) AS n FROM model_calls WHERE generation_id = ANY(%s::uuid[])"
            " AND error_type IS NOT NULL GROUP BY error_type ORDER BY error_type",
            (ids,),
        ).fetchall()
        spent = conn.execute(
            "SELECT coalesce(sum(cost_usd), 0) AS usd FROM model_calls WHERE generation_id = ANY(%s::uuid[])", (ids,)
        ).fetchone()
    refused = simulator.limits.refused if simulator.limits else 0
    why = ", ".join(f"{e['error_type']} x{e['n']}" for e in errors) or "no error on the ledger"
    print(
        f"  {count} typical world(s) at once: {', '.join(statuses)}; {real * factor / 60:.1f} min simulated wall time"
        f" (real x{factor:g}); {refused} request(s) answered 429; {retried['n'] if retried else 0} phase"
        f" attempt(s) failed and retried ({why});"
        f" ${float(spent['usd'] if spent else 0) / count:.3f} per world"
    )


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
    model: str = DEFAULT_MODEL,
    tier: Tier | None = None,
) -> tuple[World, ClaudeSimulator]:
    campaign = campaign_for(pcs)
    with connect(url) as conn:
        campaign_id = insert_campaign(conn, campaign)
    simulator = ClaudeSimulator(Pace(time_factor=factor), size=size, tier=tier)
    with simulator:
        environment = {
            "WORLDGEN_DATABASE_URL": url,
            **simulator.environment(),
            "WORLDGEN_SIMULATOR_MODEL": model,
        }
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
    world = World(label, execution["status"], real_seconds=real, profile=profile, model=model)
    with connect(url) as conn:
        runs = conn.execute(
            "SELECT phase, status, duration_ms, model_ms, error_type FROM phase_runs WHERE generation_id = %s",
            (body["generation_id"],),
        ).fetchall()
        calls = conn.execute(
            "SELECT phase, round, output_tokens, latency_ms, cost_usd, cache_read_input_tokens"
            " FROM model_calls WHERE generation_id = %s",
            (body["generation_id"],),
        ).fetchall()
        world.audit = audit_world(conn, body["generation_id"]).render()
    deadline = get_settings().request_timeout_seconds
    for run in runs:
        mine = sorted((c for c in calls if c["phase"] == run["phase"]), key=lambda c: c["round"])
        phase = pipeline.get_phase(run["phase"])  # the structure this world ran with
        answered = [s for s in simulator.served if s.phase == run["phase"]]
        model_seconds = phase_model_seconds(answered, deadline)
        other = max(0, (run["duration_ms"] or 0) - (run["model_ms"] or 0)) / 1000
        served = [s for s in answered if s.usage]
        world.phases[run["phase"]] = PhaseRow(
            phase=run["phase"],
            status=run["status"],
            seconds=model_seconds + other,
            calls=len(mine),
            largest_output=max((s.usage["output_tokens"] for s in served), default=0),
            # calls beyond the cache primer, the outline and one per part
            repairs=max(0, len(mine) - phase.planned_calls - sum(s.kind == "primer" for s in answered)),
            left_out=simulator.left_out.get(run["phase"], 0),
            output_tokens=sum(c["output_tokens"] for c in mine),
            cost=float(sum(c["cost_usd"] for c in mine)),
            cache_reads=sum(1 for c in mine if c["cache_read_input_tokens"]),
            cache_read_tokens=sum(c["cache_read_input_tokens"] for c in mine),
            error=run["error_type"],
        )
    return world, simulator


def phase_model_seconds(served: list[Served], deadline: float) -> float:
    """A phase's model time on the simulated clock, from what its requests were (not when they ran,
    which a loaded machine skews): the outline rounds and the cache primer one after the other,
    then each round of parts as long as its slowest part (a part's requests of a round add up: a
    max_tokens retry). One attempt: the bench injects no faults."""
    sequential = sum(min(s.simulated_seconds, deadline) for s in served if s.kind != "part")
    rounds: dict[int, dict[str, float]] = {}
    for s in served:
        if s.kind == "part":
            parts = rounds.setdefault(s.round, {})
            parts[s.part] = parts.get(s.part, 0.0) + min(s.simulated_seconds, deadline)
    return sequential + sum(max(parts.values()) for parts in rounds.values())


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
        f"  {'phase':<6}{'status':<10}{'sim s':>8}{'calls':>6}{'reads':>6}{'max out':>9}{'repairs':>8}{'left out':>9}"
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
            f"  {row.phase:<6}{row.status:<10}{row.seconds:>8.1f}{row.calls:>6}{row.cache_reads:>6}"
            f"{row.largest_output:>9}{row.repairs:>8}{row.left_out:>9}{row.output_tokens:>9}{row.cost:>8.3f}{mem_text}"
            f"{phase.memory_mb:>6}" + (f"  {row.error}" if row.error else "")
        )
    critical, line = world.critical_path, world.line
    tokens = sum(r.output_tokens for r in world.phases.values())
    cost = sum(r.cost for r in world.phases.values())
    print(
        f"  world: {critical:.0f} s simulated ({critical / 60:.1f} min) on the critical path;"
        f" phases in a line {line:.0f} s; line / DAG = {line / critical if critical else 0:.3f}"
    )
    output_cost = tokens * (price_of(world.model).output if price_of(world.model) else 0.0) / 1_000_000  # type: ignore[union-attr]
    ratio = cost / output_cost if output_cost else 0.0
    print(
        f"  output tokens {tokens}, cost ${cost:.3f} (ledger, list prices of {world.model});"
        f" {ratio:.2f}x the cost of the output tokens alone"
    )
    if world.audit:
        print(world.audit)


def compare(label: str, before: World, now: World) -> str:
    def cost(world: World) -> float:
        return sum(r.cost for r in world.phases.values())

    def slowest(world: World) -> float:
        return max((r.seconds for r in world.phases.values()), default=0.0)

    def largest(world: World) -> int:
        return max((r.largest_output for r in world.phases.values()), default=0)

    ratio = cost(now) / cost(before) if cost(before) else 0.0
    return (
        f"{label}: {before.status} -> {now.status}; world {before.critical_path:.0f} s -> {now.critical_path:.0f} s;"
        f" slowest phase {slowest(before):.0f} s -> {slowest(now):.0f} s; largest call {largest(before)} ->"
        f" {largest(now)} tokens; cost ${cost(before):.3f} -> ${cost(now):.3f} ({ratio:.3f}x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--factor", type=float, default=TIME_FACTOR, help="simulated seconds per real second")
    parser.add_argument("--no-memory", action="store_true", help="skip the traced-memory runs")
    parser.add_argument("--profile", choices=("full", "quick"), default=None, help="only the worlds of one profile")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="the model every phase asks (default: the registry's)")
    parser.add_argument(
        "--tier", choices=[*TIERS, "none"], default="none", help="the simulator's rate-limit tier (none: unlimited)"
    )
    parser.add_argument("--typical", action="store_true", help="only the typical 4-PC world, no memory run")
    parser.add_argument(
        "--candidates", action="store_true", help="the designs of a phase in parts side by side, typical world"
    )
    parser.add_argument("--concurrent", type=int, default=0, metavar="N", help="N typical worlds at once, then stop")
    args = parser.parse_args()
    tier = TIERS.get(args.tier)
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"  # the table, not the handlers' logs
    logging.getLogger("moto").setLevel(logging.CRITICAL)  # a failed Task's traceback: the table says it
    url = migrated_local_database()
    print(
        "bench-world: simulated Claude at 60 output tokens/s, 1.5 s to the first token,"
        f" clock x{args.factor:g}; durations in simulated seconds"
    )
    limits = (
        f"tier {tier.name}: {tier.requests_per_minute} RPM, {tier.input_tokens_per_minute} ITPM,"
        f" {tier.output_tokens_per_minute} OTPM"
        if tier
        else "no rate limits"
    )
    print(f"model {args.model} ({family_of(args.model).request_mode}), {limits}")
    if args.concurrent:
        for count in sorted({1, args.concurrent}):
            concurrent_worlds(url, count, args.factor, args.model, tier)
        return
    if args.candidates:
        compare_candidates(url, args.factor, args.model, tier)
        return
    if args.typical:
        world, _ = run_world(url, "typical world, 4 PCs", 4, "typical", args.factor, model=args.model, tier=tier)
        print_world(world, args.factor)
        return
    summary: list[str] = []
    worlds = (
        ("typical world, 4 PCs", 4, "typical", "full"),
        ("generous world, 6 PCs", 6, "generous", "full"),
        ("quick profile, typical world, 4 PCs (target: under 2 minutes)", 4, "typical", "quick"),
        ("quick profile, generous world, 6 PCs", 6, "generous", "quick"),
    )
    for label, pcs, size, profile in worlds:
        if args.profile and profile != args.profile:
            continue
        before: World | None = None
        if profile == "full":  # the structure before parts, in the same run, for the before -> now line
            with one_call_per_phase():
                before, _ = run_world(url, f"{label}, one call per phase (before)", pcs, size, args.factor)
            print_world(before, args.factor)
        name = f"{label}, outlines and parts (now)" if before is not None else label
        world, _ = run_world(url, name, pcs, size, args.factor, profile=profile)
        if not args.no_memory:
            memory: dict[str, float] = {}
            tracemalloc.start()
            try:
                traced_world, _ = run_world(
                    url, name, pcs, size, MEMORY_TIME_FACTOR, wrap=traced(memory), profile=profile
                )
            finally:
                tracemalloc.stop()
            world.memory = memory
            if traced_world.status != "SUCCEEDED":
                print(f"  ({label}: the traced-memory run ended {traced_world.status}; memory of the phases it ran)")
        print_world(world, args.factor)
        if before is None:
            summary.append(
                f"{label}: {world.status}; world {world.critical_path:.0f} s;"
                f" cost ${sum(r.cost for r in world.phases.values()):.3f}"
            )
            continue
        summary.append(compare(label, before, world))
        if size == "typical":
            with without_prompt_cache():
                uncached, _ = run_world(url, f"{label}, parts without the shared cache", pcs, size, args.factor)
            saved = sum(r.cost for r in uncached.phases.values())
            summary.append(
                f"{label}, the same parts without the shared prompt cache: ${saved:.3f}"
                f" (with it ${sum(r.cost for r in world.phases.values()):.3f})"
            )
    print("\n  summary (simulated; cost from the ledger): before -> now, and the quick profile")
    for line in summary:
        print("  " + line)
    print(
        "\n  mem MB: peak Python allocations traced inside the phase's handler (tracemalloc, a second run;"
        "\n  2C/3A and 3B overlap in time, so their peaks include each other), against the Lambda's"
        "\n  configured memory (of MB), which also holds the runtime and the imported packages."
    )
    print("  " + json.dumps({"prices": "worldgen.model.pricing", "model": "registry default"}))


if __name__ == "__main__":
    main()
