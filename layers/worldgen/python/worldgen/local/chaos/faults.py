"""Scenarios of infrastructure faults: a database restarted or killed, a process killed (between
phases or in the middle of a round of parts), cancels, concurrent resumes, failing regenerations,
slow or failing models, and an execution failed by a bug that is redriven after the fix."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from worldgen.errors import InvalidModelOutput, ModelOverloaded
from worldgen.local.chaos.harness import Harness, Outcome, rows_lost, world
from worldgen.local.chaos.stalled import BilledCall, read_bill
from worldgen.local.redrive import ExecutionNotRedrivable
from worldgen.phases import PHASES, WORLD_TABLES, descendants

# A killed process's answered parts are recorded (ledger row, part answer) as each arrives; the
# kill comes this long after the last answer, so that it lands in the wait for the stalled parts,
# not inside the few milliseconds between an answer's last byte and its record (no design keeps an
# answer the process had in memory only).
RECORD_SECONDS = 1.5


def db_restart(chaos: Harness, out: Outcome, kill: bool = False) -> uuid.UUID:
    campaign_id = chaos.campaign()
    phase = chaos.random.choice([p.id for p in PHASES])
    chaos.model.plan(**{phase: [chaos.later(0.3, chaos.pg.kill if kill else chaos.pg.restart)]})
    out.faults.append(f"database {'killed' if kill else 'restarted'} during {phase}")
    _, body = chaos.generate(campaign_id)
    if "generation_id" in body:
        chaos.until_succeeded(body["generation_id"], out)
    return campaign_id


def db_kill(chaos: Harness, out: Outcome) -> uuid.UUID:
    return db_restart(chaos, out, kill=True)


def process_kill(chaos: Harness, out: Outcome) -> uuid.UUID:
    campaign_id = chaos.campaign()
    with chaos.db() as conn:
        conn.execute("DELETE FROM campaigns WHERE id = %s", (str(campaign_id),))  # the child makes its own
    env = {**os.environ, **chaos.environment}
    child = subprocess.Popen(  # a `worldgen generate` that is killed mid-generation
        [sys.executable, "-m", "worldgen.tools.cli", "generate", "--campaign", str(chaos.campaign_file)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    delay = chaos.random.uniform(3.0, 6.0)
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    out.faults.append(f"process killed after {delay:.1f} s")
    with chaos.db() as conn:
        row = conn.execute(
            "SELECT c.id, g.id AS generation_id FROM campaigns c LEFT JOIN generations g ON g.campaign_id = c.id"
            " ORDER BY c.created_at DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    campaign_id = row["id"]
    if row["generation_id"] is None:
        chaos.generate(campaign_id)
        return uuid.UUID(str(campaign_id))
    chaos.resume_after_kill(str(row["generation_id"]), out)
    return uuid.UUID(str(campaign_id))


def kill_mid_round(chaos: Harness, out: Outcome) -> uuid.UUID:
    """A process running a phase in parts is killed while some parts have answered and the others
    are still streaming; the generation is resumed. Every call the killed process was billed for is
    in the ledger (``check``), every answered part is reused, not paid twice, and the generation
    ends succeeded."""
    campaign_id = chaos.campaign()
    phase = chaos.random.choice(["2A", "2C", "3A", "3B", "3C"])  # phases of at least three parts
    answering = chaos.random.choice([1, 2])
    bill = chaos.root / f"bill-{uuid.uuid4().hex[:8]}.jsonl"
    stalling = ["--campaign-id", str(campaign_id), "--phase", phase, "--answer", str(answering), "--bill", str(bill)]
    child = subprocess.Popen(  # a worldgen process whose model stalls in the middle of the phase's round
        [sys.executable, "-m", read_bill.__module__, *stalling],
        env={**os.environ, **chaos.environment},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        calls = _killed_mid_round(child, bill, phase, answering)
    finally:
        if child.poll() is None:  # the harness failed: the process goes all the same
            child.kill()
            child.wait(timeout=30)
    if calls is None:
        out.calls_elsewhere = sum(c.event == "paid" for c in read_bill(bill))
        out.violations.append(f"harness: the process never stalled in {phase}")
        return campaign_id
    paid = [c for c in calls if c.event == "paid"]
    reused = {c.part for c in paid if c.phase == phase and c.part != "outline"}  # valid: procedural answers
    streaming = [c for c in calls if c.event == "streaming"]
    out.calls_elsewhere = len(paid)
    out.faults.append(
        f"process killed in {phase} with parts answered: {len(reused)}, streaming: {len(streaming)}"
        f" (calls it paid: {len(paid)})"
    )
    generation_id = next((c.generation_id for c in calls if c.event == "started"), "")
    if not generation_id:
        out.violations.append("harness: the killed process started no generation")
        return campaign_id
    made = len(chaos.model.calls)
    chaos.resume_after_kill(generation_id, out)
    if (status := chaos.status_of(generation_id)) != "succeeded":
        out.violations.append(f"the generation is {status} after the resume")
    again = sorted({part for p, part in chaos.model.calls[made:] if p == phase and part in reused})
    if again:
        out.violations.append(
            f"{len(again)} of the {len(reused)} parts of {phase} answered before the kill paid again on resume"
        )
    return campaign_id


def _killed_mid_round(
    child: subprocess.Popen[bytes], bill: Path, phase: str, answering: int
) -> list[BilledCall] | None:
    """Kill ``child`` once ``answering`` parts of ``phase`` answered and another streams (then its
    bill), or None if it never stalls there."""
    deadline = time.monotonic() + 150
    while True:
        calls = read_bill(bill)
        answered = [c for c in calls if c.event == "paid" and c.phase == phase and c.part != "outline"]
        if len(answered) >= answering and any(c.event == "streaming" for c in calls):
            break
        if child.poll() is not None or time.monotonic() > deadline:
            return None
        time.sleep(0.1)
    time.sleep(RECORD_SECONDS)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    return read_bill(bill)


def cancel_then_new(chaos: Harness, out: Outcome) -> uuid.UUID:
    campaign_id = chaos.campaign()
    phase = chaos.random.choice(["1C", "2A", "2B", "3A"])
    chaos.model.plan(**{phase: [2.5]})
    _, first = chaos.act("generateWorld", {"campaign_id": str(campaign_id)})
    chaos.wait_phase_running(first["generation_id"], phase)
    chaos.act("cancelGeneration", {"generation_id": first["generation_id"]})
    out.faults.append(f"cancel during {phase}, new generation at once")
    chaos.generate(campaign_id)
    chaos.wait(first)
    time.sleep(3)  # the cancelled phase's handler finishes its model call and tries to commit
    return campaign_id


def concurrent_resumes(chaos: Harness, out: Outcome) -> uuid.UUID:
    campaign_id = chaos.campaign()
    chaos.model.plan(**{"1B": [InvalidModelOutput("bad"), 1.0]})
    _, body = chaos.generate(campaign_id)
    with ThreadPoolExecutor(6) as pool:
        requests = [("resumeGeneration", {"generation_id": body["generation_id"]})] * 5
        requests.append(("cancelGeneration", {"generation_id": body["generation_id"]}))
        chaos.random.shuffle(requests)
        answers = list(pool.map(lambda r: chaos.act(*r), requests))
    out.faults.append("5 resumes and a cancel at once")
    winners = [b for (code, b), (name, _) in zip(answers, requests, strict=True) if code == 200]
    resumed = [b for b in winners if b.get("status") == "running"]
    if len(resumed) > 1:
        out.violations.append(f"{len(resumed)} resumes won")
    for won in resumed:
        chaos.wait(won)
    chaos.until_succeeded(body["generation_id"], out)
    return campaign_id


def regeneration_revert(chaos: Harness, out: Outcome) -> uuid.UUID:
    campaign_id = chaos.campaign()
    chaos.generate(campaign_id)
    with chaos.db() as conn:
        before = world(conn, campaign_id)
    start = chaos.random.choice(["1B", "2A", "2B", "2C", "3B"])
    failing = chaos.random.choice(descendants(start))
    chaos.model.plan(**{failing: [InvalidModelOutput("never valid")]})
    out.faults.append(f"regenerate from {start}, permanent failure at {failing}, revert")
    status, body = chaos.act("regenerateFromPhase", {"campaign_id": str(campaign_id), "phase": start})
    if status == 200:
        chaos.wait(body)
        status, _ = chaos.act("revertGeneration", {"generation_id": body["generation_id"]})
        if status != 200:
            out.violations.append(f"revert refused ({status})")
    with chaos.db() as conn:
        after = world(conn, campaign_id)
    lost = rows_lost(before, after)
    out.rows_lost += lost
    if lost or after != before:
        out.violations.append(f"revert did not restore the world exactly ({lost} rows lost)")
    return campaign_id


def slow_model(chaos: Harness, out: Outcome) -> uuid.UUID:
    campaign_id = chaos.campaign()
    phase = chaos.random.choice([p.id for p in PHASES])
    chaos.model.plan(**{phase: [1.5]})
    out.faults.append(f"slow model at {phase}")
    chaos.generate(campaign_id)
    return campaign_id


def failing_model(chaos: Harness, out: Outcome) -> uuid.UUID:
    campaign_id = chaos.campaign()
    phase = chaos.random.choice([p.id for p in PHASES])
    chaos.model.plan(**{phase: [ModelOverloaded("529"), ModelOverloaded("529")]})
    out.faults.append(f"529 burst at {phase}")
    _, body = chaos.generate(campaign_id)
    if "generation_id" in body:
        chaos.until_succeeded(body["generation_id"], out)
    return campaign_id


def redrive(chaos: Harness, out: Outcome) -> uuid.UUID:
    """A bug fails the execution AT a phase (no Retry or Catch names it); after the hotfix the
    operator redrives: the same execution finishes the world, the succeeded phases untouched."""
    campaign_id = chaos.campaign()
    phase = chaos.random.choice(["1B", "2A", "2C", "3B", "3C"])
    chaos.bugs = {phase}  # an error no Retry or Catch names: the execution fails AT the phase
    out.faults.append(f"bug at {phase}, hotfix, redrive")
    status, body = chaos.generate(campaign_id)
    if status != "FAILED":
        out.violations.append(f"the bug did not fail the execution at {phase} ({status})")
        return campaign_id
    with chaos.db() as conn:
        before = world(conn, campaign_id)
    chaos.bugs = set()  # the hotfix
    chaos.runtime.redrive(body["execution_arn"])
    if (ended := chaos.wait(body)) != "SUCCEEDED":
        out.violations.append(f"the redriven execution ended {ended}")
    if (status := chaos.status_of(body["generation_id"])) != "succeeded":
        out.violations.append(f"the redriven generation is {status}")
    with chaos.db() as conn:
        after = world(conn, campaign_id)
    changed = sum(len(before[t] - after[t]) for t in WORLD_TABLES)
    if changed:
        out.violations.append(f"{changed} rows of the phases that had succeeded were written again")
    try:
        chaos.runtime.redrive(body["execution_arn"])
        out.violations.append("a succeeded execution was redriven")
    except ExecutionNotRedrivable:
        pass
    return campaign_id
