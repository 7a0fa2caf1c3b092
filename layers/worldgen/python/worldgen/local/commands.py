"""The generation commands of the CLI: demo, generate, status, resume, regenerate, cancel, serve."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from worldgen import contracts
from worldgen.db.connection import connect
from worldgen.local.campaigns import (
    SAMPLE_CAMPAIGN,
    CampaignFile,
    CampaignFileError,
    insert_campaign,
    read_campaign_file,
)
from worldgen.local.database import migrated_local_database
from worldgen.local.progress import ProgressPrinter, generation_report, provider_label
from worldgen.local.runtime import LocalRuntime
from worldgen.local.simulator import ClaudeSimulator, FaultPlan
from worldgen.settings import get_settings


def _runtime(args: argparse.Namespace, url: str, simulator: ClaudeSimulator | None = None) -> LocalRuntime:
    environment = {contracts.DATABASE_URL_ENV: url}
    configured_secret = get_settings().action_secret
    if configured_secret is not None and configured_secret.get_secret_value():
        environment[contracts.ACTION_SECRET_ENV] = configured_secret.get_secret_value()
    if getattr(args, "model", None):
        environment[contracts.MODEL_PROVIDER_ENV] = args.model
    if getattr(args, "seed", None) is not None:
        environment[contracts.SEED_ENV] = str(args.seed)
    if getattr(args, "scale", None) is not None:
        environment[contracts.SCALE_ENV] = str(args.scale)
    if simulator is not None:
        environment.update(simulator.environment())
    return LocalRuntime(environment=environment)


@contextmanager
def _simulator(args: argparse.Namespace) -> Iterator[ClaudeSimulator | None]:
    """The paced Claude simulator when the model is ``simulated`` (it lives as long as the runtime)."""
    if getattr(args, "model", None) != "simulated":
        yield None
        return
    faults = FaultPlan.from_seed(args.faults) if getattr(args, "faults", None) is not None else None
    with ClaudeSimulator(size=getattr(args, "size", "typical"), faults=faults) as simulator:
        yield simulator


def _follow(runtime: LocalRuntime, url: str, status: int, body: dict[str, Any]) -> int:
    """Print live progress until the execution ends, then the summary. Exit code 0 on success."""
    if status != 200:
        print(refusal_line(status, body), file=sys.stderr)
        return 2
    generation_id = body["generation_id"]
    print(f"generation {generation_id} started: {body['execution_arn']}")
    printer = ProgressPrinter(url, generation_id)
    started = time.perf_counter()
    try:
        execution = runtime.wait(body["execution_arn"], on_poll=printer.poll, poll_seconds=0.05)
        printer.poll()
    finally:
        printer.close()
    wall = time.perf_counter() - started
    print()
    print(_report(url, generation_id))
    print(f"\nexecution {execution['status']} in {wall:.2f} s of wall time")
    if execution["status"] != "SUCCEEDED":
        print(failure_line(execution), file=sys.stderr)
        return 1
    return 0


def _report(url: str, generation_id: str, attempts: int = 10) -> str:
    """The generation's report, waiting out a short database outage."""
    for attempt in range(attempts):
        try:
            with connect(url) as conn:
                return generation_report(conn, generation_id)
        except Exception:
            if attempt == attempts - 1:
                return f"generation {generation_id}: the database is unavailable; see `worldgen status {generation_id}`"
            time.sleep(min(2.0, 0.2 * 2**attempt))
    raise AssertionError("unreachable")


def generate_campaign(args: argparse.Namespace, campaign: CampaignFile) -> int:
    url = migrated_local_database()
    with connect(url) as conn:
        campaign_id = insert_campaign(conn, campaign)
    model = args.model or "procedural"
    print(f"campaign {campaign.name!r} ({campaign_id}), {len(campaign.player_characters)} player characters")
    print(f"model: {provider_label(model)}")
    with _simulator(args) as simulator, _runtime(args, url, simulator) as runtime:
        request = {"campaign_id": str(campaign_id)}
        if getattr(args, "profile", None):
            request["profile"] = args.profile
        if getattr(args, "max_cost", None) is not None:
            request["max_cost_usd"] = args.max_cost
        status, body = runtime.action("generateWorld", request, user_id=campaign.owner_id)
        return _follow(runtime, url, status, body)


def demo(args: argparse.Namespace) -> int:
    return generate_campaign(args, read_campaign_file(SAMPLE_CAMPAIGN))


def generate(args: argparse.Namespace) -> int:
    try:
        campaign = read_campaign_file(Path(args.campaign))
    except CampaignFileError as exc:
        for problem in exc.problems:
            print(f"error: campaign file {args.campaign}: {problem}", file=sys.stderr)
        return 2
    return generate_campaign(args, campaign)


def status(args: argparse.Namespace) -> int:
    url = migrated_local_database()
    with connect(url) as conn:
        generation_id = args.generation_id
        if generation_id is None:
            row = conn.execute("SELECT id FROM generations ORDER BY started_at DESC LIMIT 1").fetchone()
            if row is None:
                print("no generations yet: run `worldgen demo`")
                return 1
            generation_id = row["id"]
        active = conn.execute(
            "SELECT id, campaign_id, status, execution_arn, status_changed_at FROM generations"
            " WHERE id = %s AND status IN ('pending', 'running')",
            (str(generation_id),),
        ).fetchone()
        if active is not None:  # is its execution still alive somewhere? (a killed demo leaves it running)
            from worldgen.handlers.actions import reconcile

            with _runtime(args, url):
                reconcile(conn, dict(active))
        print(generation_report(conn, generation_id))
    return 0


def audit(args: argparse.Namespace) -> int:
    from worldgen.audit import audit_world, latest_generation

    url = migrated_local_database()
    with connect(url) as conn:
        generation_id = args.generation_id or latest_generation(conn)
        if generation_id is None:
            print("no generations yet: run `worldgen demo`")
            return 1
        report = audit_world(conn, generation_id)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        print(f"world of generation {generation_id}\n{report.render()}")
    return 0


def _admin_action(args: argparse.Namespace, name: str, data: dict[str, Any], follow: bool = True) -> int:
    url = migrated_local_database()
    with _simulator(args) as simulator, _runtime(args, url, simulator) as runtime:
        status_code, body = runtime.action(name, data, role="admin")
        if status_code != 200:
            print(refusal_line(status_code, body), file=sys.stderr)
            return 2
        if not follow:
            print(json.dumps(body, indent=2))
            return 0
        return _follow(runtime, url, status_code, body)


def resume(args: argparse.Namespace) -> int:
    data: dict[str, Any] = {"generation_id": args.generation_id}
    if getattr(args, "max_cost", None) is not None:
        data["max_cost_usd"] = args.max_cost
    return _admin_action(args, "resumeGeneration", data)


def regenerate(args: argparse.Namespace) -> int:
    return _admin_action(args, "regenerateFromPhase", {"campaign_id": args.campaign_id, "phase": args.phase})


def cancel(args: argparse.Namespace) -> int:
    return _admin_action(args, "cancelGeneration", {"generation_id": args.generation_id}, follow=False)


def discard(args: argparse.Namespace) -> int:
    return _admin_action(args, "discardGeneration", {"generation_id": args.generation_id}, follow=False)


def revert(args: argparse.Namespace) -> int:
    return _admin_action(args, "revertGeneration", {"generation_id": args.generation_id}, follow=False)


def serve(args: argparse.Namespace) -> int:
    """Hasura's action contract on http://127.0.0.1:PORT/, as the Function URL serves it on AWS."""
    from worldgen.local.server import serve as serve_actions

    url = migrated_local_database()
    configured = get_settings().action_secret
    with _runtime(args, url) as runtime:
        return serve_actions(
            runtime,
            args.port,
            secret_generated=configured is None or not configured.get_secret_value(),
            max_connections=args.max_connections,
            read_timeout=args.read_timeout,
            verbose=args.verbose,
        )


def refusal_line(status: int, body: dict[str, Any]) -> str:
    """One line for an action the handler refused (its 4xx body), instead of the raw JSON."""
    code = (body.get("extensions") or {}).get("code", status)
    return f"error: {body.get('message', 'refused')} [{code}]"


def failure_line(execution: dict[str, Any]) -> str:
    """One line for a failed execution: the Lambda's error inside the cause, not JSON in JSON."""
    error, cause = execution.get("error") or "failed", execution.get("cause") or ""
    try:
        payload = json.loads(cause)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and payload.get("errorMessage"):
        error, cause = payload.get("errorType") or error, str(payload["errorMessage"])
    return f"error: {error}: {cause[:500]}".rstrip(": ")
