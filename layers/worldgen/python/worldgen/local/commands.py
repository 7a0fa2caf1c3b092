"""The local commands of the CLI: demo, generate, campaigns, status, audit, resume, redrive, regenerate..."""

from __future__ import annotations

import argparse
import json
import shlex
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
    NotFound,
    campaign_rows,
    campaign_template,
    find_campaign,
    find_generation,
    insert_campaign,
    read_campaign_file,
    remove_campaign,
    same_campaign,
    world_rows,
)
from worldgen.local.database import migrated_local_database
from worldgen.local.progress import ProgressPrinter, generation_report, provider_label
from worldgen.local.redrive import ExecutionNotRedrivable
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
    # Ended executions are kept on disk, so `worldgen redrive` in another process can continue one.
    return LocalRuntime(environment=environment, records_dir=executions_dir())


def executions_dir() -> Path:
    from worldgen.local.home import worldgen_home

    return worldgen_home() / "executions"


@contextmanager
def _simulator(args: argparse.Namespace) -> Iterator[ClaudeSimulator | None]:
    """The paced Claude simulator when the model is ``simulated`` (it lives as long as the runtime)."""
    if getattr(args, "model", None) != "simulated":
        yield None
        return
    faults = FaultPlan.from_seed(args.faults) if getattr(args, "faults", None) is not None else None
    with ClaudeSimulator(size=getattr(args, "size", "typical"), faults=faults) as simulator:
        yield simulator


def _follow(runtime: LocalRuntime, url: str, status: int, body: dict[str, Any], *, verbose: bool = False) -> int:
    """Print live progress until the execution ends, then the summary and what to do next.
    Exit code 0 on success."""
    if status != 200:
        print(refusal_line(status, body), file=sys.stderr)
        return 2
    generation_id = body["generation_id"]
    print(f"generation {generation_id} started" + (f": {body['execution_arn']}" if verbose else ""))
    printer = ProgressPrinter(url, generation_id, verbose=verbose)
    started = time.perf_counter()
    try:
        execution = runtime.wait(body["execution_arn"], on_poll=printer.poll, poll_seconds=0.05)
        printer.poll()
    finally:
        printer.close()
    wall = time.perf_counter() - started
    print()
    print(_report(url, generation_id, verbose=verbose))
    if verbose:
        print(f"\nexecution {execution['status']} in {wall:.2f} s of wall time")
    elif execution["status"] == "SUCCEEDED":
        print(f"\nworld ready in {wall:.1f} s (execution SUCCEEDED)")
    else:
        print(f"\nthe world is not finished after {wall:.1f} s (execution {execution['status']})")
    if execution["status"] != "SUCCEEDED":
        print(failure_line(execution), file=sys.stderr)
        print(_next_steps(url, generation_id, succeeded=False), file=sys.stderr)
        return 1
    print(_next_steps(url, generation_id, succeeded=True))
    return 0


def _next_steps(url: str, generation_id: str, *, succeeded: bool) -> str:
    """What a game master does next, in words, with the campaign's own name in the commands."""
    try:
        with connect(url) as conn:
            row = conn.execute(
                "SELECT c.id, c.name, g.model_provider FROM generations g JOIN campaigns c ON c.id = g.campaign_id"
                " WHERE g.id = %s",
                (generation_id,),
            ).fetchone()
            same_name = conn.execute(
                "SELECT count(*) AS n FROM campaigns WHERE lower(name) = lower(%s)", (row["name"] if row else "",)
            ).fetchone()
            unique = same_name is not None and same_name["n"] == 1
    except Exception:
        return f"next: `worldgen status {generation_id}`"
    if row is None:
        return f"next: `worldgen status {generation_id}`"
    ref = shlex.quote(row["name"]) if unique else str(row["id"])
    if not succeeded:
        steps = [
            (f"worldgen status {ref}", "what failed, phase by phase"),
            (f"worldgen resume {ref}", "finish it from where it failed (--model to switch models)"),
            (f"worldgen discard {ref}", "drop what this generation wrote"),
        ]
        width = max(len(command) for command, _ in steps) + 3
        lines = [f"campaign {row['name']!r} ({row['id']}): its world is not finished. Next:"]
        return "\n".join(lines + [f"  {command:<{width}}{what}" for command, what in steps])
    steps = [
        (f"worldgen export {ref} -o world.html", "a report to open in a browser (-o vault/ for Obsidian notes)"),
        (f"worldgen audit {ref}", "which PCs have an NPC, a place and a quest"),
        (f"worldgen status {ref}", "phases, rows, time and cost"),
        ("worldgen campaigns", "every campaign and its latest world"),
    ]
    width = max(len(command) for command, _ in steps) + 3
    lines = [f"campaign {row['name']!r} ({row['id']}) has its world. Next:"]
    lines += [f"  {command:<{width}}{what}" for command, what in steps]
    if row["model_provider"] in PLACEHOLDER_PROVIDERS:
        lines.append(
            "note: this world's text is placeholder from the offline generator (not Claude): a real one needs"
            " --model anthropic and ANTHROPIC_API_KEY (docs/game-masters.md)"
        )
    return "\n".join(lines)


# Providers whose text is made offline, not by Claude: their worlds are labelled placeholder.
PLACEHOLDER_PROVIDERS = ("procedural", "simulated")


def _report(url: str, generation_id: str, attempts: int = 10, *, verbose: bool = False) -> str:
    """The generation's report, waiting out a short database outage."""
    for attempt in range(attempts):
        try:
            with connect(url) as conn:
                return generation_report(conn, generation_id, verbose=verbose)
        except Exception:
            if attempt == attempts - 1:
                return f"generation {generation_id}: the database is unavailable; see `worldgen status {generation_id}`"
            time.sleep(min(2.0, 0.2 * 2**attempt))
    raise AssertionError("unreachable")


def generate_campaign(args: argparse.Namespace, campaign: CampaignFile, *, reuse: bool = False) -> int:
    """Generate ``campaign``'s world; ``reuse``: a new generation of the same stored campaign, if any."""
    url = migrated_local_database()
    with connect(url) as conn:
        campaign_id = same_campaign(conn, campaign) if reuse else None
        again = campaign_id is not None
        if campaign_id is None:
            campaign_id = insert_campaign(conn, campaign)
    model = args.model or get_settings().model_provider
    print(
        f"campaign {campaign.name!r} ({campaign_id}), {len(campaign.player_characters)} player characters"
        + (": a new generation of it" if again else "")
    )
    print(f"model: {provider_label(model)}")
    with _simulator(args) as simulator, _runtime(args, url, simulator) as runtime:
        request = {"campaign_id": str(campaign_id)}
        if getattr(args, "profile", None):
            request["profile"] = args.profile
        if getattr(args, "max_cost", None) is not None:
            request["max_cost_usd"] = args.max_cost
        status, body = runtime.action("generateWorld", request, user_id=campaign.owner_id)
        return _follow(runtime, url, status, body, verbose=args.verbose)


def demo(args: argparse.Namespace) -> int:
    return generate_campaign(args, read_campaign_file(SAMPLE_CAMPAIGN), reuse=True)


def generate(args: argparse.Namespace) -> int:
    try:
        campaign = read_campaign_file(Path(args.campaign_file))
    except CampaignFileError as exc:
        for problem in exc.problems:
            print(f"error: campaign file {args.campaign_file}: {problem}", file=sys.stderr)
        return 2
    return generate_campaign(args, campaign)


def status(args: argparse.Namespace) -> int:
    url = migrated_local_database()
    with connect(url) as conn:
        generation_id = find_generation(conn, args.generation_id)
        active = conn.execute(
            "SELECT id, campaign_id, status, execution_arn, status_changed_at FROM generations"
            " WHERE id = %s AND status IN ('pending', 'running')",
            (str(generation_id),),
        ).fetchone()
        if active is not None:  # is its execution still alive somewhere? (a killed demo leaves it running)
            from worldgen.services.reconcile import reconcile

            with _runtime(args, url):
                reconcile(conn, dict(active))
        print(generation_report(conn, generation_id, verbose=args.verbose))
    return 0


def audit(args: argparse.Namespace) -> int:
    from worldgen.audit import audit_world

    url = migrated_local_database()
    with connect(url) as conn:
        generation_id = find_generation(conn, args.generation_id)
        report = audit_world(conn, generation_id)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        print(f"world of generation {generation_id}\n{report.render()}")
    return 0


def campaigns(args: argparse.Namespace) -> int:
    """``worldgen campaigns``: the list; ``worldgen campaigns remove CAMPAIGN``: one removed with its world."""
    url = migrated_local_database()
    with connect(url) as conn:
        if args.action == "remove":
            return _remove_campaign(conn, args)
        if args.campaign:
            print(
                "error: `worldgen campaigns` takes no campaign;"
                f" did you mean `worldgen campaigns remove {args.campaign}`?",
                file=sys.stderr,
            )
            return 2
        rows = campaign_rows(conn)
    if not rows:
        print("no campaigns yet: `worldgen demo` makes the sample one, `worldgen new my_campaign.json` starts yours")
        return 0
    print(f"{'campaign':<32} {'id':<36} {'PCs':>3}  {'latest generation':<30} {'rows':>5} {'cost':>8}")
    for row in rows:
        latest = f"{row['status']} ({row['profile']}, {row['model_provider']})" if row["generation_id"] else "none"
        name = row["name"] if len(row["name"]) <= 32 else row["name"][:31] + "…"
        cost = float(row["cost_usd"] or 0)
        print(f"{name:<32} {row['id']!s:<36} {row['pcs']:>3}  {latest:<30} {row['rows']:>5} ${cost:>7.2f}")
    return 0


def _remove_campaign(conn: Any, args: argparse.Namespace) -> int:
    if not args.campaign:
        print("error: say which campaign: `worldgen campaigns remove CAMPAIGN` (its id or name)", file=sys.stderr)
        return 2
    campaign_id = find_campaign(conn, args.campaign, generations=False)
    name = conn.execute("SELECT name FROM campaigns WHERE id = %s", (campaign_id,)).fetchone()["name"]
    rows = world_rows(conn, campaign_id)
    conn.commit()
    if not args.yes:
        if not sys.stdin.isatty():
            print(
                f"error: removing {name!r} ({campaign_id}) and its {rows} world rows needs --yes here"
                " (no terminal to ask in)",
                file=sys.stderr,
            )
            return 2
        try:
            answer = input(f"remove campaign {name!r} ({campaign_id}) and its world ({rows} rows)? [y/N] ")
        except EOFError:  # the terminal closed its input: no answer is no
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("kept it")
            return 1
    removed = remove_campaign(conn, campaign_id)
    print(f"removed campaign {name!r} ({campaign_id}) and its world ({removed} rows)")
    return 0


def new(args: argparse.Namespace) -> int:
    """``worldgen new FILE``: a campaign template, never over an existing file."""
    path = Path(args.file)
    if path.exists():
        print(f"error: {path} exists: give a new file name", file=sys.stderr)
        return 2
    try:
        path.write_text(campaign_template())
    except OSError as exc:
        print(f"error: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}: fill it in, then `worldgen generate --campaign {shlex.quote(str(path))}`")
    return 0


def where(args: argparse.Namespace) -> int:
    """``worldgen where``: the database the commands use, and an older one to move."""
    from worldgen.local.home import MoveRefused, move_old_database, old_database, worldgen_home
    from worldgen.local.preflight import masked_url

    configured = get_settings().database_url
    if args.move_old:
        if configured:
            print("error: WORLDGEN_DATABASE_URL is set: the embedded database is not used", file=sys.stderr)
            return 2
        try:
            moved = move_old_database()
        except MoveRefused as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"moved the older database to {moved}: every folder's commands see its worlds now")
        return 0
    if configured:
        print(f"database: {masked_url(configured)} (WORLDGEN_DATABASE_URL)")
        return 0
    home = worldgen_home()
    print(f"worldgen home: {home} (WORLDGEN_HOME to change it)")
    print(f"database: embedded PostgreSQL in {home / 'pgdata'}")
    old = old_database()
    if old is not None:
        print(f"an older database is in {old}: `worldgen where --move-old` moves it here")
    return 0


def _admin_action(args: argparse.Namespace, name: str, data: dict[str, Any], follow: bool = True) -> int:
    url = migrated_local_database()
    with _simulator(args) as simulator, _runtime(args, url, simulator) as runtime:
        status_code, body = runtime.action(name, data, role="admin")
        if status_code != 200:
            print(refusal_line(status_code, body), file=sys.stderr)
            return 2
        if not follow:
            print(f"generation {body['generation_id']}: {body['status']}")
            for row in body.get("kept") or []:
                print(f"  kept as you left it: {row}")
            if args.verbose:
                print(json.dumps(body, indent=2))
            return 0
        return _follow(runtime, url, status_code, body, verbose=args.verbose)


def _generation_of(reference: str) -> str:
    with connect(migrated_local_database()) as conn:
        return str(find_generation(conn, reference))


def resume(args: argparse.Namespace) -> int:
    data: dict[str, Any] = {"generation_id": _generation_of(args.generation_id)}
    if args.model:
        data["model_provider"] = args.model
    if getattr(args, "max_cost", None) is not None:
        data["max_cost_usd"] = args.max_cost
    return _admin_action(args, "resumeGeneration", data)


def redrive(args: argparse.Namespace) -> int:
    """Redrive the generation's failed execution, as the Step Functions console's Redrive does:
    the same execution continues from its failed states (``LocalRuntime.redrive``)."""
    url = migrated_local_database()
    generation_id = _generation_of(args.generation_id)
    with connect(url) as conn:
        row = conn.execute(
            "SELECT status, execution_arn, redrivable, error_type FROM generations WHERE id = %s",
            (generation_id,),
        ).fetchone()
    refusal = redrive_refusal(generation_id, row)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    assert row is not None
    with _simulator(args) as simulator, _runtime(args, url, simulator) as runtime:
        try:
            execution = runtime.redrive(row["execution_arn"])
        except ExecutionNotRedrivable as exc:
            print(f"error: generation {generation_id} cannot be redriven: {exc}", file=sys.stderr)
            return 2
        arn = execution["executionArn"]
        print(f"redrive {runtime.redrive_counts[arn]} of the same execution: {arn}")
        return _follow(
            runtime,
            url,
            200,
            {"generation_id": generation_id, "execution_arn": execution["executionArn"]},
            verbose=args.verbose,
        )


def redrive_refusal(generation_id: str, row: dict[str, Any] | None) -> str:
    """One line when a redrive of this generation would do nothing ("" when it may be redriven)."""
    if row is None:
        return f"error: generation {generation_id} does not exist"
    if row["status"] != "failed":
        return (
            f"error: generation {generation_id} is {row['status']}: only a generation whose execution failed"
            " can be redriven (a redrive after a cancel or a resume would change nothing)"
        )
    if not row["redrivable"] or not row["execution_arn"]:
        return (
            f"error: generation {generation_id} failed with a permanent error ({row['error_type']}): a redrive"
            " would end in its Fail state again; `worldgen resume` runs it again (for instance with another model)"
        )
    return ""


def regenerate(args: argparse.Namespace) -> int:
    with connect(migrated_local_database()) as conn:
        campaign_id = str(find_campaign(conn, args.campaign_id))
    return _admin_action(args, "regenerateFromPhase", {"campaign_id": campaign_id, "phase": args.phase})


def cancel(args: argparse.Namespace) -> int:
    return _admin_action(args, "cancelGeneration", {"generation_id": _generation_of(args.generation_id)}, follow=False)


def discard(args: argparse.Namespace) -> int:
    return _admin_action(args, "discardGeneration", {"generation_id": _generation_of(args.generation_id)}, follow=False)


def revert(args: argparse.Namespace) -> int:
    return _admin_action(args, "revertGeneration", {"generation_id": _generation_of(args.generation_id)}, follow=False)


def _campaign_id(url: str, reference: str) -> str | None:
    """A campaign by id or by its name (when one campaign has it); None, said in one line, when not."""
    with connect(url) as conn:
        try:
            return str(find_campaign(conn, reference, generations=False))
        except NotFound as exc:
            print(f"error: {exc}", file=sys.stderr)
            return None


def reroll(args: argparse.Namespace) -> int:
    """One row written anew (or, with --undo, its previous version put back), through the rerollRow
    and undoReroll actions as Hasura calls them."""
    url = migrated_local_database()
    campaign_id = _campaign_id(url, args.campaign_ref)
    if campaign_id is None:
        return 2
    data: dict[str, Any] = {"campaign_id": campaign_id, "table": args.table, "key": args.key}
    if args.hint and not args.undo:
        data["hint"] = args.hint
    with _simulator(args) as simulator, _runtime(args, url, simulator) as runtime:
        status_code, body = runtime.action("undoReroll" if args.undo else "rerollRow", data, role="admin")
    if status_code != 200:
        print(refusal_line(status_code, body), file=sys.stderr)
        return 2
    if args.undo:
        print(f"{args.table} {args.key!r}: the version before its latest reroll is back (reroll {body['reroll_id']})")
    else:
        changed = ", ".join(body["changed"]) or "nothing"
        print(
            f"{args.table} {args.key!r} rerolled by {provider_label(body['provider'] or '')} ({body['model']}):"
            f" {body['model_calls']} call(s), ${body['cost_usd']:.4f}; changed: {changed}"
        )
        print(f"undo with: worldgen reroll --undo {campaign_id} {args.table} {args.key}")
    return 0


def history(args: argparse.Namespace) -> int:
    from worldgen.reroll import RerollRefused, reroll_history

    url = migrated_local_database()
    campaign_id = _campaign_id(url, args.campaign_ref)
    if campaign_id is None:
        return 2
    with connect(url) as conn:
        try:
            rows = reroll_history(conn, campaign_id)
        except RerollRefused as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 2
    if not rows:
        print(f"campaign {campaign_id}: no rerolls yet")
        return 0
    print(f"{'when':19}  {'row':40}  {'status':7}  {'model':24}  {'calls':>5}  {'cost':>9}  hint")
    for row in rows:
        where = f"{row['table_name']} {row['row_key']}"
        failure = f" ({row['error_type']})" if row["status"] == "failed" else ""
        print(
            f"{row['created_at']:%Y-%m-%d %H:%M:%S}  {where[:40]:40}  {row['status']:7}  {row['model'][:24]:24}"
            f"  {row['model_calls']:>5}  ${float(row['cost_usd']):>8.4f}  {row['hint'] or ''}{failure}"
        )
    return 0


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
