"""Continuity findings, 3C's left-out rows, repair rounds and cost, before and after 3C's part contexts.

    .venv/bin/python -m benchmarks.bench_continuity [--factor 40] [--world typical|generous]

The simulator's typical (4 PCs) and generous (6 PCs) worlds through the real state machine, as
``make bench-world`` runs them (``bench_world.run_world``), each twice: 3C with one context shared by
its parts (as before issue 24) and with a context per part (now); then the demo world (offline model,
sample campaign). Per world: continuity findings per rule, repair calls per phase, 3C's context rows
left out (per part), the outline calls' output tokens and cost, the world's cost. Printed, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterator

import worldgen.pipeline as pipeline
from benchmarks.bench_world import TIME_FACTOR, World, run_world
from worldgen import continuity
from worldgen.audit import audit_world
from worldgen.db.connection import connect
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file
from worldgen.local.database import migrated_local_database
from worldgen.phases import Phase, get_phase
from worldgen.settings import get_settings


@contextlib.contextmanager
def shared_3c_context() -> Iterator[None]:
    """3C as before issue 24: the whole world cut to its budget, instead of the tables it refers to."""

    def before(phase_id: str) -> Phase:
        phase = get_phase(phase_id)
        return dataclasses.replace(phase, shows_referenced_only=False) if phase.shows_referenced_only else phase

    original = pipeline.get_phase
    pipeline.get_phase = before
    try:
        yield
    finally:
        pipeline.get_phase = original


def findings_of(url: str, generation_id: str) -> dict[str, int]:
    with connect(url) as conn:
        return continuity.counts(audit_world(conn, generation_id).continuity)


def latest_generation(url: str) -> str:
    with connect(url) as conn:
        row = conn.execute("SELECT id FROM generations ORDER BY started_at DESC LIMIT 1").fetchone()
        return str(row["id"]) if row else ""


def outline_spend(url: str, generation_id: str) -> tuple[int, float]:
    """Output tokens and cost of the outline calls of a generation (the ledger)."""
    with connect(url) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(output_tokens), 0) AS tokens, coalesce(sum(cost_usd), 0) AS cost"
            " FROM model_calls WHERE generation_id = %s AND part = 'outline'",
            (generation_id,),
        ).fetchone()
    return (int(row["tokens"]), float(row["cost"])) if row else (0, 0.0)


def line(label: str, world: World, findings: dict[str, int], outline: tuple[int, float]) -> str:
    cost = sum(r.cost for r in world.phases.values())
    repairs = {p: r.repairs for p, r in world.phases.items() if r.repairs}
    left = world.phases["3C"].left_out if "3C" in world.phases else 0
    rules = ", ".join(f"{rule} {n}" for rule, n in findings.items())
    cost_3c = world.phases["3C"].cost if "3C" in world.phases else 0.0
    return (
        f"{label:<32} {world.status:<10} findings {sum(findings.values()):>3} ({rules}); repair calls {repairs or 0};"
        f" 3C left out {left}; 3C cost ${cost_3c:.3f};"
        f" outlines {outline[0]} output tokens ${outline[1]:.3f}; world ${cost:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--factor", type=float, default=TIME_FACTOR)
    parser.add_argument("--world", choices=("typical", "generous"), default=None)
    args = parser.parse_args()
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    url = migrated_local_database()
    for label, pcs, size in (("typical world, 4 PCs", 4, "typical"), ("generous world, 6 PCs", 6, "generous")):
        if args.world and size != args.world:
            continue
        with shared_3c_context():
            before, _ = run_world(url, label, pcs, size, args.factor)
        generation = latest_generation(url)
        print(
            line(f"{label}, 3C shared", before, findings_of(url, generation), outline_spend(url, generation)),
            flush=True,
        )
        now, _ = run_world(url, label, pcs, size, args.factor)
        generation = latest_generation(url)
        print(line(f"{label}, now", now, findings_of(url, generation), outline_spend(url, generation)), flush=True)
    get_settings.cache_clear()
    with connect(url) as conn:
        from worldgen import state
        from worldgen.phases import PHASES
        from worldgen.pipeline import run_phase

        campaign = read_campaign_file(SAMPLE_CAMPAIGN)
        campaign_id = insert_campaign(conn, campaign.model_copy(update={"name": campaign.name + " (bench)"}))
        demo = state.create_generation(conn, campaign_id, provider="procedural")
        for phase in PHASES:
            run_phase(conn, demo, phase.id)
        found = continuity.counts(audit_world(conn, demo).continuity)
    print(f"{'demo world (offline model)':<32} findings {sum(found.values())} ({found})")


if __name__ == "__main__":
    main()
