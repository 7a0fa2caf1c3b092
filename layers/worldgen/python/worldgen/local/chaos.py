"""`make chaos`: generations on the local runtime against a PostgreSQL that is restarted and killed,
with processes killed, cancels, concurrent resumes, failing regenerations, slow or failing models, and
an execution failed by a bug that is redriven after the fix.

After each scenario the invariants are checked from the database alone; the run prints a table and
never asserts (``tests/e2e/test_chaos.py`` runs a short version and asserts 0 violations).
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from worldgen.errors import InvalidModelOutput, ModelOverloaded
from worldgen.handlers.phase import make_phase_handler
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file
from worldgen.local.redrive import ExecutionNotRedrivable
from worldgen.local.runtime import LocalRuntime
from worldgen.model.base import ModelRequest, ModelResponse
from worldgen.model.procedural import ProceduralModel
from worldgen.phases import PHASES, WORLD_TABLES, descendants, phase_of_table

OWNER = "chaos-game-master"
SETTLE_SECONDS = 180  # a generation not terminal this long after its scenario is "stuck"


class ControlledPostgres:
    """A PostgreSQL server of our own (pgserver's binaries) that a scenario may restart or kill."""

    def __init__(self, root: Path) -> None:
        import pgserver

        from worldgen.local.postgres import ensure_runtime_dir

        ensure_runtime_dir()
        self.server = pgserver.get_server(root / "pgdata", cleanup_mode="delete")
        self.admin_url = str(self.server.get_uri())

    def _pg_ctl(self, *args: str) -> None:
        from pgserver import _commands

        _commands.pg_ctl(  # type: ignore[attr-defined]  # made at import from the bundled binaries
            ["-w", *args], pgdata=self.server.pgdata, user=self.server.system_user, timeout=60
        )

    def restart(self) -> None:
        """A clean restart: every session is terminated, the server is back in about a second."""
        self._pg_ctl("restart", "-m", "fast")

    def kill(self) -> None:
        """A crash: the postmaster is killed without a checkpoint; crash recovery on restart."""
        self._pg_ctl("restart", "-m", "immediate")

    def close(self) -> None:
        self.server.cleanup()


class ChaosModel:
    """The procedural model with faults scripted per phase; counts every request it answers."""

    provider = "procedural"

    def __init__(self) -> None:
        self.inner = ProceduralModel()
        self.lock = threading.Lock()
        self.script: dict[str, list[Any]] = {}
        self.requests = 0

    def plan(self, **script: list[Any]) -> None:
        with self.lock:
            self.script = {phase: list(actions) for phase, actions in script.items()}

    def call(self, request: ModelRequest) -> ModelResponse:
        with self.lock:
            actions = self.script.get(request.phase.id, [])
            action = actions.pop(0) if actions else None
            self.requests += 1
        if callable(action):
            action = action()
        if isinstance(action, Exception):
            raise action
        if isinstance(action, (int, float)):
            time.sleep(action)
        return self.inner.call(request)


@dataclass
class Outcome:
    scenario: str
    faults: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    rows_lost: int = 0
    rows_duplicated: int = 0
    stuck: int = 0
    seconds: float = 0.0
    gm_rows: set[tuple[str, str]] = field(default_factory=set)  # (table, key) a recovery kept for the GM


def _world(conn: psycopg.Connection[Any], campaign_id: Any) -> dict[str, set[tuple[str, str]]]:
    found: dict[str, set[tuple[str, str]]] = {}
    for table in WORLD_TABLES:
        rows = conn.execute(
            sql.SQL("SELECT id::text AS id, generation_id::text AS g FROM {} WHERE campaign_id = %s").format(
                sql.Identifier(table)
            ),
            (str(campaign_id),),
        ).fetchall()
        found[table] = {(r["id"], r["g"]) for r in rows}
    return found


class Chaos:
    def __init__(self, root: Path, seed: int) -> None:
        self.random = random.Random(seed)
        self.pg = ControlledPostgres(root)
        from worldgen.local.postgres import with_database
        from worldgen.repository.migrator import migrate

        with psycopg.connect(self.pg.admin_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE chaos")
        self.url = with_database(self.pg.admin_url, "chaos")
        migrate(self.url)
        logging.getLogger("moto").setLevel(logging.CRITICAL)  # its ASL interpreter logs every Fail state
        self.model = ChaosModel()
        handler = make_phase_handler(lambda: self.model)
        self.bugs: set[str] = set()  # phases whose Lambda fails before doing anything (a bug)

        def phase_handler(event: dict[str, Any], context: Any) -> Any:
            if event.get("phase") in self.bugs:
                raise RuntimeError(f"a bug in phase {event['phase']}")
            return handler(event, context)

        self.runtime = LocalRuntime(
            {phase.function_id: phase_handler for phase in PHASES},
            environment={"WORLDGEN_DATABASE_URL": self.url, "POWERTOOLS_LOG_LEVEL": "CRITICAL"},
        ).__enter__()
        self.campaign_file = Path(root) / "campaign.json"
        self.campaign_file.write_text(SAMPLE_CAMPAIGN.read_text())

    def close(self) -> None:
        self.runtime.__exit__(None, None, None)
        self.pg.close()

    # -- helpers -----------------------------------------------------------------------------

    def db(self) -> psycopg.Connection[dict[str, Any]]:
        deadline = time.monotonic() + 60
        while True:
            try:
                return psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=5)
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)

    def campaign(self) -> uuid.UUID:
        with self.db() as conn:
            return insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))

    def act(self, name: str, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """An action, retried while the database is away (as Hasura's client would)."""
        for _ in range(30):
            status, body = self.runtime.action(name, data, role="admin")
            if not (status == 409 and body.get("extensions", {}).get("code") == "database-unavailable"):
                return status, body
            time.sleep(0.5)
        return status, body

    def wait(self, body: dict[str, Any]) -> str:
        try:
            return str(self.runtime.wait(body["execution_arn"], timeout=SETTLE_SECONDS)["status"])
        except TimeoutError:
            return "TIMEOUT"

    def generate(self, campaign_id: uuid.UUID) -> tuple[str, dict[str, Any]]:
        status, body = self.act("generateWorld", {"campaign_id": str(campaign_id)})
        if status != 200:
            return f"refused {status}", body
        return self.wait(body), body

    def until_succeeded(self, generation_id: str, out: Outcome, attempts: int = 4) -> None:
        """Resume a failed generation until it succeeds (what an operator does after an outage)."""
        for _ in range(attempts):
            if self.status_of(generation_id) != "failed":
                return
            status, body = self.act("resumeGeneration", {"generation_id": generation_id})
            if status == 200:
                out.faults.append("resume")
                self.wait(body)
            else:
                time.sleep(1)

    def status_of(self, generation_id: str) -> str:
        with self.db() as conn:
            row = conn.execute("SELECT status FROM generations WHERE id = %s", (generation_id,)).fetchone()
        return str(row["status"]) if row else "missing"

    def later(self, seconds: float, fault: Callable[[], None]) -> Callable[[], float]:
        """A model action: start ``fault`` in the background ``seconds`` into the call, then answer slowly."""

        def action() -> float:
            threading.Timer(seconds, fault).start()
            return seconds + 1.0

        return action

    # -- scenarios ---------------------------------------------------------------------------

    def db_restart(self, out: Outcome, kill: bool = False) -> uuid.UUID:
        campaign_id = self.campaign()
        phase = self.random.choice([p.id for p in PHASES])
        self.model.plan(**{phase: [self.later(0.3, self.pg.kill if kill else self.pg.restart)]})
        out.faults.append(f"database {'killed' if kill else 'restarted'} during {phase}")
        _, body = self.generate(campaign_id)
        if "generation_id" in body:
            self.until_succeeded(body["generation_id"], out)
        return campaign_id

    def db_kill(self, out: Outcome) -> uuid.UUID:
        return self.db_restart(out, kill=True)

    def process_kill(self, out: Outcome) -> uuid.UUID:
        campaign_id = self.campaign()
        with self.db() as conn:
            conn.execute("DELETE FROM campaigns WHERE id = %s", (str(campaign_id),))  # the child makes its own
        env = {**os.environ, "WORLDGEN_DATABASE_URL": self.url, "POWERTOOLS_LOG_LEVEL": "CRITICAL"}
        child = subprocess.Popen(  # a `worldgen generate` that is killed mid-generation
            [sys.executable, "-m", "worldgen.tools.cli", "generate", "--campaign", str(self.campaign_file)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        delay = self.random.uniform(3.0, 6.0)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
        out.faults.append(f"process killed after {delay:.1f} s")
        with self.db() as conn:
            row = conn.execute(
                "SELECT c.id, g.id AS generation_id FROM campaigns c LEFT JOIN generations g ON g.campaign_id = c.id"
                " ORDER BY c.created_at DESC LIMIT 1"
            ).fetchone()
        assert row is not None
        campaign_id = row["id"]
        if row["generation_id"] is None:
            self.generate(campaign_id)
            return uuid.UUID(str(campaign_id))
        generation_id = str(row["generation_id"])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the dead process's lease goes with its session
            status, body = self.act("resumeGeneration", {"generation_id": generation_id})
            if status == 200:
                out.faults.append("resume")
                self.wait(body)
                break
            if self.status_of(generation_id) == "succeeded":  # it finished before the kill
                break
            time.sleep(0.5)
        return uuid.UUID(str(campaign_id))

    def cancel_then_new(self, out: Outcome) -> uuid.UUID:
        campaign_id = self.campaign()
        phase = self.random.choice(["1C", "2A", "2B", "3A"])
        self.model.plan(**{phase: [2.5]})
        _, first = self.act("generateWorld", {"campaign_id": str(campaign_id)})
        self._wait_phase_running(first["generation_id"], phase)
        self.act("cancelGeneration", {"generation_id": first["generation_id"]})
        out.faults.append(f"cancel during {phase}, new generation at once")
        self.generate(campaign_id)
        self.wait(first)
        time.sleep(3)  # the cancelled phase's handler finishes its model call and tries to commit
        return campaign_id

    def concurrent_resumes(self, out: Outcome) -> uuid.UUID:
        campaign_id = self.campaign()
        self.model.plan(**{"1B": [InvalidModelOutput("bad"), 1.0]})
        _, body = self.generate(campaign_id)
        with ThreadPoolExecutor(6) as pool:
            requests = [("resumeGeneration", {"generation_id": body["generation_id"]})] * 5
            requests.append(("cancelGeneration", {"generation_id": body["generation_id"]}))
            self.random.shuffle(requests)
            answers = list(pool.map(lambda r: self.act(*r), requests))
        out.faults.append("5 resumes and a cancel at once")
        winners = [b for (code, b), (name, _) in zip(answers, requests, strict=True) if code == 200]
        resumed = [b for b in winners if b.get("status") == "running"]
        if len(resumed) > 1:
            out.violations.append(f"{len(resumed)} resumes won")
        for won in resumed:
            self.wait(won)
        self.until_succeeded(body["generation_id"], out)
        return campaign_id

    def regeneration_revert(self, out: Outcome) -> uuid.UUID:
        campaign_id = self.campaign()
        self.generate(campaign_id)
        with self.db() as conn:
            before = _world(conn, campaign_id)
        start = self.random.choice(["1B", "2A", "2B", "2C", "3B"])
        failing = self.random.choice(descendants(start))
        self.model.plan(**{failing: [InvalidModelOutput("never valid")]})
        out.faults.append(f"regenerate from {start}, permanent failure at {failing}, revert")
        status, body = self.act("regenerateFromPhase", {"campaign_id": str(campaign_id), "phase": start})
        if status == 200:
            self.wait(body)
            status, _ = self.act("revertGeneration", {"generation_id": body["generation_id"]})
            if status != 200:
                out.violations.append(f"revert refused ({status})")
        with self.db() as conn:
            after = _world(conn, campaign_id)
        lost = sum(len(before[t] - after[t]) for t in WORLD_TABLES)
        out.rows_lost += lost
        if lost or after != before:
            out.violations.append(f"revert did not restore the world exactly ({lost} rows lost)")
        return campaign_id

    def slow_model(self, out: Outcome) -> uuid.UUID:
        campaign_id = self.campaign()
        phase = self.random.choice([p.id for p in PHASES])
        self.model.plan(**{phase: [1.5]})
        out.faults.append(f"slow model at {phase}")
        self.generate(campaign_id)
        return campaign_id

    def failing_model(self, out: Outcome) -> uuid.UUID:
        campaign_id = self.campaign()
        phase = self.random.choice([p.id for p in PHASES])
        self.model.plan(**{phase: [ModelOverloaded("529"), ModelOverloaded("529")]})
        out.faults.append(f"529 burst at {phase}")
        _, body = self.generate(campaign_id)
        if "generation_id" in body:
            self.until_succeeded(body["generation_id"], out)
        return campaign_id

    def redrive(self, out: Outcome) -> uuid.UUID:
        """A bug fails the execution AT a phase (no Retry or Catch names it); after the hotfix the
        operator redrives: the same execution finishes the world, the succeeded phases untouched."""
        campaign_id = self.campaign()
        phase = self.random.choice(["1B", "2A", "2C", "3B", "3C"])
        self.bugs = {phase}  # an error no Retry or Catch names: the execution fails AT the phase
        out.faults.append(f"bug at {phase}, hotfix, redrive")
        status, body = self.generate(campaign_id)
        if status != "FAILED":
            out.violations.append(f"the bug did not fail the execution at {phase} ({status})")
            return campaign_id
        with self.db() as conn:
            before = _world(conn, campaign_id)
        self.bugs = set()  # the hotfix
        self.runtime.redrive(body["execution_arn"])
        if (ended := self.wait(body)) != "SUCCEEDED":
            out.violations.append(f"the redriven execution ended {ended}")
        if (status := self.status_of(body["generation_id"])) != "succeeded":
            out.violations.append(f"the redriven generation is {status}")
        with self.db() as conn:
            after = _world(conn, campaign_id)
        changed = sum(len(before[t] - after[t]) for t in WORLD_TABLES)
        if changed:
            out.violations.append(f"{changed} rows of the phases that had succeeded were written again")
        try:
            self.runtime.redrive(body["execution_arn"])
            out.violations.append("a succeeded execution was redriven")
        except ExecutionNotRedrivable:
            pass
        return campaign_id

    # -- a game master's work between a failure and its recovery (issue 29) --------------------

    def _older_failed_then_newer(self, out: Outcome) -> tuple[uuid.UUID, str]:
        """A generation failed at a phase, then a newer generation of the campaign that succeeded."""
        campaign_id = self.campaign()
        failing = self.random.choice(["1C", "2A", "2B", "3A"])
        self.model.plan(**{failing: [InvalidModelOutput("never valid")]})
        _, older = self.generate(campaign_id)
        self.model.plan()
        self.generate(campaign_id)
        out.faults.append(f"generation failed at {failing}, a newer one succeeded")
        return campaign_id, str(older["generation_id"])

    def _refused_by_order(self, action: str, generation_id: str, campaign_id: uuid.UUID, out: Outcome) -> None:
        with self.db() as conn:
            before = _world(conn, campaign_id)
        status, body = self.act(action, {"generation_id": generation_id})
        out.faults.append(f"{action} of the older one")
        if status == 200:
            out.violations.append(f"{action} of an older generation accepted after a newer one started")
            if body.get("execution_arn"):
                self.wait(body)
        elif body.get("extensions", {}).get("code") != "newer-generation":
            out.violations.append(f"{action} refused with {body.get('extensions')}, not newer-generation")
        with self.db() as conn:
            after = _world(conn, campaign_id)
        lost = sum(len(before[t] - after[t]) for t in WORLD_TABLES)
        out.rows_lost += lost
        if lost:
            out.violations.append(f"{lost} rows of the newer generation lost")

    def resume_after_newer(self, out: Outcome) -> uuid.UUID:
        campaign_id, older = self._older_failed_then_newer(out)
        self._refused_by_order("resumeGeneration", older, campaign_id, out)
        return campaign_id

    def cancel_after_newer(self, out: Outcome) -> uuid.UUID:
        campaign_id, older = self._older_failed_then_newer(out)
        self._refused_by_order("cancelGeneration", older, campaign_id, out)
        self._refused_by_order("revertGeneration", older, campaign_id, out)
        return campaign_id

    def _failed_regeneration(self, out: Outcome) -> tuple[uuid.UUID, dict[str, Any], dict[str, Any]]:
        campaign_id = self.campaign()
        self.generate(campaign_id)
        with self.db() as conn:
            before = _world(conn, campaign_id)
        self.model.plan(**{"3C": [InvalidModelOutput("never valid")]})
        out.faults.append("regenerate from 2B, permanent failure at 3C")
        status, body = self.act("regenerateFromPhase", {"campaign_id": str(campaign_id), "phase": "2B"})
        if status != 200:
            out.violations.append(f"regeneration refused ({status})")
            return campaign_id, before, {}
        self.wait(body)
        return campaign_id, before, body

    def discard_of_a_regeneration(self, out: Outcome) -> uuid.UUID:
        campaign_id, before, body = self._failed_regeneration(out)
        if not body:
            return campaign_id
        status, _ = self.act("discardGeneration", {"generation_id": body["generation_id"]})
        out.faults.append("discard of the failed regeneration")
        if status == 200:
            out.violations.append("discard of a regeneration accepted: the world it replaced is out of reach")
        status, _ = self.act("revertGeneration", {"generation_id": body["generation_id"]})
        with self.db() as conn:
            after = _world(conn, campaign_id)
        lost = sum(len(before[t] - after[t]) for t in WORLD_TABLES)
        out.rows_lost += lost
        if status != 200 or after != before:
            out.violations.append(f"revert after the refused discard: {status}, {lost} rows lost")
        return campaign_id

    def gm_work_then_revert(self, out: Outcome) -> uuid.UUID:
        """Between the failure and the revert the game master locks a place the regeneration wrote
        and edits an older row it never touched: both must survive the revert."""
        campaign_id, before, body = self._failed_regeneration(out)
        if not body:
            return campaign_id
        generation_id = body["generation_id"]
        with self.db() as conn:
            place = conn.execute(
                "SELECT id::text, key FROM locations WHERE generation_id = %s ORDER BY random() LIMIT 1",
                (generation_id,),
            ).fetchone()
            edited = conn.execute(
                "SELECT id::text, key FROM entity_relationships WHERE campaign_id = %s AND generation_id <> %s LIMIT 1",
                (str(campaign_id), generation_id),
            ).fetchone()
            if place is None or edited is None:
                out.violations.append("no place of the regeneration or older relationship to work on")
                return campaign_id
            conn.execute("UPDATE locations SET locked = true, name = 'Kept by the GM' WHERE id = %s", (place["id"],))
            conn.execute(
                "UPDATE entity_relationships SET description = 'The GM''s own words' WHERE id = %s", (edited["id"],)
            )
        out.faults.append("GM locked a regenerated place and edited an older relationship, then revert")
        status, answer = self.act("revertGeneration", {"generation_id": generation_id})
        if status != 200:
            out.violations.append(f"revert refused ({status})")
            return campaign_id
        out.gm_rows |= {(line.split(" ", 1)[0], line.split(" ", 2)[1]) for line in answer.get("kept", [])}
        with self.db() as conn:
            kept = conn.execute("SELECT name, locked FROM locations WHERE id = %s", (place["id"],)).fetchone()
            words = conn.execute(
                "SELECT description FROM entity_relationships WHERE id = %s", (edited["id"],)
            ).fetchone()
            after = _world(conn, campaign_id)
        if not kept or kept != {"name": "Kept by the GM", "locked": True}:
            out.violations.append("the place the GM locked was lost or changed by the revert")
        if not words or words["description"] != "The GM's own words":
            out.violations.append("the GM's edit was lost by the revert")
        lost = sum(len(before[t] - after[t]) for t in WORLD_TABLES if t not in ("locations", "dungeons", "buildings"))
        out.rows_lost += lost
        if lost:
            out.violations.append(f"{lost} rows of the replaced world not put back")
        return campaign_id

    def _wait_phase_running(self, generation_id: str, phase: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.db() as conn:
                if conn.execute(
                    "SELECT 1 FROM phase_runs WHERE generation_id = %s AND phase = %s AND status = 'running'",
                    (generation_id, phase),
                ).fetchone():
                    return
            time.sleep(0.05)

    # -- invariants --------------------------------------------------------------------------

    def check(self, campaign_id: Any, out: Outcome, requests_before: int) -> None:
        deadline = time.monotonic() + SETTLE_SECONDS
        with self.db() as conn:
            while True:
                active = conn.execute(
                    "SELECT id FROM generations WHERE campaign_id = %s AND status IN ('pending', 'running')",
                    (str(campaign_id),),
                ).fetchall()
                if not active or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            out.stuck += len(active)
            runs = {
                (str(r["generation_id"]), r["phase"]): r
                for r in conn.execute(
                    "SELECT generation_id, phase, status, rows_per_table FROM phase_runs WHERE campaign_id = %s",
                    (str(campaign_id),),
                ).fetchall()
            }
            world = _world(conn, campaign_id)
            for table, key in out.gm_rows:  # rows a recovery kept for the game master of an undone phase
                found = conn.execute(
                    sql.SQL(
                        "SELECT id::text AS id, generation_id::text AS g FROM {} WHERE campaign_id = %s AND key = %s"
                    ).format(sql.Identifier(table)),
                    (str(campaign_id), key),
                ).fetchone()
                phase_of = phase_of_table(table)
                run = runs.get((found["g"], phase_of.id)) if found is not None and phase_of is not None else None
                if found is not None and table in world and (run is None or run["status"] != "succeeded"):
                    world[table] = {row for row in world[table] if row[0] != found["id"]}
            for table, rows in world.items():
                phase = phase_of_table(table)
                assert phase is not None
                generations = Counter(g for _, g in rows)
                for generation_id, count in generations.items():
                    run = runs.get((generation_id, phase.id))
                    if run is None or run["status"] != "succeeded":
                        out.violations.append(
                            f"{count} {table} rows of generation {generation_id[:8]} whose {phase.id} did not succeed"
                            f" ({run and run['status']})"
                        )
                if len(generations) > 1:
                    out.rows_duplicated += sum(generations.values()) - max(generations.values())
                    out.violations.append(f"{table} holds rows of {len(generations)} generations")
            for phase in PHASES:  # a phase's tables are all of one generation, complete, or untouched
                owners = {g for t in phase.tables for _, g in world[t]}
                for generation_id in owners:
                    run = runs.get((generation_id, phase.id))
                    expected = (run or {}).get("rows_per_table") or {}
                    for table in phase.tables:
                        have = sum(1 for _, g in world[table] if g == generation_id)
                        # a row the GM kept through a recovery stands in for the snapshot row of its key
                        kept = sum(1 for t, _ in out.gm_rows if t == table)
                        cascaded = phase.id != "1A" and have + kept < expected.get(table, 0)
                        if have > expected.get(table, 0) or (cascaded and not _replaced_upstream(conn, campaign_id)):
                            out.violations.append(f"{table}: {have} rows, its phase run recorded {expected.get(table)}")
            ledger = conn.execute(
                "SELECT count(*) AS n FROM model_calls WHERE campaign_id = %s", (str(campaign_id),)
            ).fetchone()
        made = self.model.requests - requests_before
        if out.scenario != "process_kill" and ledger is not None and ledger["n"] != made:
            out.violations.append(f"ledger has {ledger['n']} model calls, {made} were made")

    SCENARIOS = (
        "db_restart",
        "db_kill",
        "process_kill",
        "cancel_then_new",
        "concurrent_resumes",
        "regeneration_revert",
        "slow_model",
        "failing_model",
        "redrive",
        "resume_after_newer",
        "cancel_after_newer",
        "discard_of_a_regeneration",
        "gm_work_then_revert",
    )

    def run(self, count: int, scenarios: tuple[str, ...] = SCENARIOS, out: Any = sys.stdout) -> list[Outcome]:
        outcomes = []
        for index in range(count):
            name = scenarios[index % len(scenarios)]
            outcome = Outcome(name)
            started = time.perf_counter()
            requests_before = self.model.requests
            try:
                campaign_id = getattr(self, name)(outcome)
                self.check(campaign_id, outcome, requests_before)
            except Exception as exc:  # a harness error is reported as a violation, never hidden
                outcome.violations.append(f"{type(exc).__name__}: {exc}")
            self.model.plan()
            outcome.seconds = time.perf_counter() - started
            outcomes.append(outcome)
            mark = "ok" if not outcome.violations else "VIOLATION"
            print(
                f"  {index + 1:>3} {name:<26} {outcome.seconds:6.1f} s  {mark}  {'; '.join(outcome.faults)}", file=out
            )
            for violation in outcome.violations:
                print(f"        - {violation}", file=out)
        return outcomes


def _replaced_upstream(conn: psycopg.Connection[Any], campaign_id: Any) -> bool:
    """Whether a later generation replaced an upstream phase (its rows' cascade thins this phase)."""
    row = conn.execute(
        "SELECT count(*) AS n FROM generations WHERE campaign_id = %s AND status IN ('succeeded', 'failed')",
        (str(campaign_id),),
    ).fetchone()
    return bool(row and row["n"] > 1)


def summary_table(outcomes: list[Outcome]) -> str:
    faults = sum(len(o.faults) for o in outcomes)
    violations = sum(len(o.violations) for o in outcomes)
    by_kind = Counter(o.scenario for o in outcomes)
    lines = [
        "| scenarios | faults injected | invariant violations | rows lost | rows duplicated | generations stuck |",
        "|---|---|---|---|---|---|",
        f"| {len(outcomes)} | {faults} | {violations} | {sum(o.rows_lost for o in outcomes)} |"
        f" {sum(o.rows_duplicated for o in outcomes)} | {sum(o.stuck for o in outcomes)} |",
        "",
        "scenario kinds: " + ", ".join(f"{k} x{n}" for k, n in sorted(by_kind.items())),
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
        Path(args.json).write_text(json.dumps([o.__dict__ for o in outcomes], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
