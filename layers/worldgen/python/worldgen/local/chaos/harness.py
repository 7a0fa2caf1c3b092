"""What a chaos scenario works with: a PostgreSQL it may restart or kill, a model whose faults it
scripts, the local runtime with the real handlers, and the outcome it reports."""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from worldgen.handlers.phase import make_phase_handler
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file
from worldgen.local.runtime import LocalRuntime
from worldgen.model.base import ModelRequest, ModelResponse
from worldgen.model.procedural import ProceduralModel
from worldgen.phases import PHASES, WORLD_TABLES

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


def part_of(request: ModelRequest) -> str:
    """Which call of its phase a request is: ``outline``, or the tables and keys a part writes (its
    outline rows, or the rows a table split between parts is written for), the same for the same part
    in every attempt that deals the same outline or the same rows."""
    if request.tool["name"].endswith("_outline"):
        return "outline"
    keys = ",".join(key for table in sorted(request.assigned) for key in request.assigned[table])
    keys += ",".join(key for table in sorted(request.anchors) for key in request.anchors[table][1])  # 3C's split
    return f"{','.join(request.tables)}:{keys}" if keys else ",".join(request.tables)


class ChaosModel:
    """The procedural model with faults scripted per phase; counts every request it answers and
    notes which call of which phase each one was (``calls``)."""

    provider = "procedural"

    def __init__(self) -> None:
        self.inner = ProceduralModel()
        self.lock = threading.Lock()
        self.script: dict[str, list[Any]] = {}
        self.requests = 0
        self.calls: list[tuple[str, str]] = []  # (phase, part_of) of every request, in order

    def plan(self, **script: list[Any]) -> None:
        with self.lock:
            self.script = {phase: list(actions) for phase, actions in script.items()}

    def call(self, request: ModelRequest) -> ModelResponse:
        with self.lock:
            actions = self.script.get(request.phase.id, [])
            action = actions.pop(0) if actions else None
            self.requests += 1
            self.calls.append((request.phase.id, part_of(request)))
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
    calls_elsewhere: int = 0  # model calls paid by another process (one the scenario killed)
    calls_not_in_ledger: int = 0  # paid model calls the ledger (model_calls) lacks


def world(conn: psycopg.Connection[Any], campaign_id: Any) -> dict[str, set[tuple[str, str]]]:
    """Every world row of the campaign, as (id, generation id) per table."""
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


def rows_lost(before: dict[str, set[tuple[str, str]]], after: dict[str, set[tuple[str, str]]]) -> int:
    return sum(len(before[t] - after[t]) for t in WORLD_TABLES)


class Harness:
    """The runtime, the database and the model one chaos run shares across its scenarios."""

    def __init__(self, root: Path, seed: int) -> None:
        self.random = random.Random(seed)
        self.root = Path(root)
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

        self.environment = {"WORLDGEN_DATABASE_URL": self.url, "POWERTOOLS_LOG_LEVEL": "CRITICAL"}
        self.runtime = LocalRuntime(
            {phase.function_id: phase_handler for phase in PHASES}, environment=self.environment
        ).__enter__()
        self.campaign_file = self.root / "campaign.json"
        self.campaign_file.write_text(SAMPLE_CAMPAIGN.read_text())

    def close(self) -> None:
        self.runtime.__exit__(None, None, None)
        self.pg.close()

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

    def resume_after_kill(self, generation_id: str, out: Outcome) -> None:
        """Resume the generation of a killed process, as soon as its lease went with its session."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status, body = self.act("resumeGeneration", {"generation_id": generation_id})
            if status == 200:
                out.faults.append("resume")
                self.wait(body)
                return
            if self.status_of(generation_id) == "succeeded":  # it finished before the kill
                return
            time.sleep(0.5)

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

    def wait_phase_running(self, generation_id: str, phase: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.db() as conn:
                if conn.execute(
                    "SELECT 1 FROM phase_runs WHERE generation_id = %s AND phase = %s AND status = 'running'",
                    (generation_id, phase),
                ).fetchone():
                    return
            time.sleep(0.05)
