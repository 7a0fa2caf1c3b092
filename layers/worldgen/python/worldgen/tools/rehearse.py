"""``make rehearse ENV=dev``: run whole worlds from the synthesized cloud assembly, not the repository.

What `cdk deploy` would upload is what runs here:

- the state machine is the template's definition (its ``DefinitionS3Location`` asset, or
  ``DefinitionString``) with ``DefinitionSubstitutions`` resolved to the rehearsal's function ARNs;
  moto executes it (in this process, also served over HTTP on 127.0.0.1 by ``ThreadedMotoServer``
  so the functions can reach Step Functions and Secrets Manager);
- every Lambda invocation goes to a warm worker process of that function: ``python -I -S`` with
  only its code asset, its layer assets (bind-mounted on ``/opt`` when possible) and the venv's
  third-party packages on ``sys.path``, cwd outside the repository, and exactly the template's
  environment plus Lambda's reserved variables, an endpoint override to the moto server, and the
  declared overrides (``REHEARSAL_OVERRIDES``);
- the secrets the template references are created in moto Secrets Manager under the template's
  account and region and read by ARN (the database secret holds the URL of a migrated embedded
  PostgreSQL database);
- a Hasura-shaped ``generateWorld`` request with the action secret read from Secrets Manager goes
  to the Function URL's handler and starts the world; a second world fails with an injected
  permanent error, and its failure event, matched against the EventBridge rule's pattern from the
  template, goes to the failure recorder;
- every AWS API call of every worker is recorded and checked against that function's role
  policies from the template (least privilege).

It fails on a handler that does not resolve, an import that needs the repository, a setting the
code reads that the template does not set, an ASL placeholder without a function, a size over
Lambda's limit, an API call the role does not allow, or a world that does not end as expected.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from worldgen.repository.paths import REPO_ROOT
from worldgen.tools.rehearsal import RehearsalFailed
from worldgen.tools.rehearsal.checks import Report
from worldgen.tools.rehearsal.run import Rehearsal


def synthesize(env: str, outdir: Path) -> None:
    """``cdk synth`` of ``env`` without the arm64 dependency layer (the venv provides those packages)."""
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "infra" / "app.py"), "-c", f"env={env}", "-c", "skip_dependencies_layer=true"],
        cwd=REPO_ROOT,
        env={**os.environ, "CDK_OUTDIR": str(outdir)},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RehearsalFailed(f"cdk synth of {env} failed: {result.stderr.strip()[-2000:]}")


@contextmanager
def rehearsal_database(url: str | None) -> Iterator[str]:
    """``url`` (already migrated), else a fresh, migrated database of the embedded server."""
    if url:
        yield url
        return
    from worldgen.local.postgres import drop_database, embedded_server, with_database
    from worldgen.repository.migrator import migrate

    admin = str(embedded_server().get_uri())
    name = f"worldgen_rehearsal_{os.getpid()}"
    drop_database(admin, name)
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database = with_database(admin, name)
    migrate(database)
    try:
        yield database
    finally:
        from worldgen.db.connection import reset_shared_connection

        reset_shared_connection()
        drop_database(admin, name)


def rehearse(env: str, *, cdk_out: Path | None = None, database_url: str | None = None) -> Report:
    with ExitStack() as stack:
        if cdk_out is None:
            cdk_out = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"rehearsal-cdk-{env}-")))
            synthesize(env, cdk_out)
        database = stack.enter_context(rehearsal_database(database_url))
        rehearsal = Rehearsal(env, cdk_out, database)
        try:
            with rehearsal:
                return rehearsal.run()
        except RehearsalFailed as exc:
            rehearsal.report.failures.append(str(exc))
            return rehearsal.report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="worldgen rehearse", description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="dev", help="the environment to synthesize and rehearse")
    parser.add_argument("--cdk-out", type=Path, help="an already synthesized cloud assembly (skips synth)")
    parser.add_argument("--database-url", help="a migrated PostgreSQL database (default: the embedded server)")
    args = parser.parse_args(argv)
    try:
        report = rehearse(args.env, cdk_out=args.cdk_out, database_url=args.database_url)
    except (RehearsalFailed, FileNotFoundError, ValueError) as exc:
        print(f"worldgen rehearse: {exc}", file=sys.stderr)
        return 1
    print(report.render())
    return 1 if report.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
