"""The ``worldgen`` command line. Every command imports what it needs when it runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from worldgen.settings import MODEL_PROVIDERS


def _db_migrate(args: argparse.Namespace) -> int:
    from worldgen.local.postgres import local_database_url
    from worldgen.tools.migrator import MigrationFailed, migrate, migrate_down

    url = local_database_url()
    try:
        done = migrate_down(url, args.down) if args.down else migrate(url)
    except MigrationFailed as exc:
        print(f"migration failed: {exc}", file=sys.stderr)
        return 1
    if not done:
        print("nothing to do: the database is up to date")
    for migration in done:
        print(f"{'reverted' if args.down else 'applied'} {migration.version}_{migration.name}")
    return 0


def _asl(args: argparse.Namespace) -> int:
    from worldgen.tools import statemachine

    statemachine.write()
    print(f"wrote {statemachine.ASL_PATH} and {statemachine.README_PATH}")
    return 0


def _schemas(args: argparse.Namespace) -> int:
    from worldgen.db.catalog import read_table_specs
    from worldgen.db.connection import connect
    from worldgen.local.database import catalog_database
    from worldgen.phases import WORLD_TABLES
    from worldgen.tools.schemas import write_generated

    with connect(catalog_database()) as conn:
        specs = read_table_specs(conn, WORLD_TABLES)
    for path in write_generated(specs):
        print(f"wrote {path}")
    return 0


def _hasura_metadata(args: argparse.Namespace) -> int:
    from worldgen.db.catalog import foreign_key_edges
    from worldgen.db.connection import connect
    from worldgen.local.database import catalog_database
    from worldgen.tools import hasura_metadata

    with connect(catalog_database()) as conn:
        edges = foreign_key_edges(conn)
    try:
        changed = hasura_metadata.write(edges)
    except hasura_metadata.UnnamedRelationship as exc:
        print(f"hasura-metadata: {exc}", file=sys.stderr)
        return 1
    for path in changed:
        print(f"wrote {path}")
    if not changed:
        print("the relationships in infra/hasura/metadata are up to date")
    return 0


def _schema_from_hasura(args: argparse.Namespace) -> int:
    import json
    from typing import Any

    from worldgen.tools import hasura

    source: Any = args.from_hasura
    if source.startswith(("http://", "https://")):
        source = hasura.fetch_introspection(source, args.admin_secret)
    catalog_specs = None
    if not args.no_database:
        # Hasura marks every insert field nullable: required-ness comes from the database.
        from worldgen.db.catalog import read_table_specs
        from worldgen.db.connection import connect
        from worldgen.local.database import catalog_database
        from worldgen.phases import WORLD_TABLES

        with connect(catalog_database()) as conn:
            catalog_specs = read_table_specs(conn, WORLD_TABLES)
    tools = hasura.phase_tools_from_hasura(source, catalog_specs)
    print(json.dumps(tools, indent=2, ensure_ascii=False))
    return 0


def model_choice(value: str) -> str:
    if value not in MODEL_PROVIDERS:
        raise argparse.ArgumentTypeError(f"unknown model {value!r}; choose one of: {', '.join(MODEL_PROVIDERS)}")
    return value


def _generation(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from worldgen.local import commands

        return int(getattr(commands, name)(args))

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="worldgen", description="Generate campaign worlds, phase by phase.")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database commands").add_subparsers(dest="db_command", required=True)
    migrate = db.add_parser("migrate", help="apply pending migrations (or revert with --down N)")
    migrate.add_argument("--down", type=int, default=0, metavar="N", help="revert the N latest migrations")
    migrate.set_defaults(func=_db_migrate)

    sub.add_parser("asl", help="regenerate statemachine/generation.asl.json").set_defaults(func=_asl)
    sub.add_parser("schemas", help="regenerate the phase tool schemas from the catalog").set_defaults(func=_schemas)
    sub.add_parser(
        "hasura-metadata", help="regenerate the relationships of infra/hasura/metadata from the catalog"
    ).set_defaults(func=_hasura_metadata)
    schema = sub.add_parser("schema", help="print phase tool schemas built from a Hasura schema")
    schema.add_argument("--from-hasura", required=True, metavar="FILE|URL", help="introspection JSON, SDL or URL")
    schema.add_argument("--admin-secret", default=None, help="x-hasura-admin-secret for a URL")
    schema.add_argument("--no-database", action="store_true", help="do not read required-ness from the catalog")
    schema.set_defaults(func=_schema_from_hasura)

    def with_model(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
        command.add_argument("--model", type=model_choice, default=None, help=" | ".join(MODEL_PROVIDERS))
        command.add_argument("--seed", type=int, default=None, help="procedural model seed")
        command.add_argument("--scale", type=float, default=None, help="procedural rows multiplier")
        command.add_argument(
            "--size", choices=("typical", "generous"), default="typical", help="simulated model: world size"
        )
        command.add_argument(
            "--faults", type=int, default=None, metavar="SEED", help="simulated model: scripted faults from a seed"
        )
        return command

    with_model(sub.add_parser("demo", help="generate the sample campaign's world")).set_defaults(
        func=_generation("demo")
    )
    generate = with_model(sub.add_parser("generate", help="generate the world of a campaign file"))
    generate.add_argument("--campaign", required=True, metavar="FILE", help="campaign JSON (setting, tone, PCs)")
    generate.set_defaults(func=_generation("generate"))

    status = sub.add_parser("status", help="show a generation (default: the latest)")
    status.add_argument("generation_id", nargs="?", default=None)
    status.set_defaults(func=_generation("status"))
    resume = with_model(sub.add_parser("resume", help="run a failed generation again from where it failed"))
    resume.add_argument("generation_id")
    resume.set_defaults(func=_generation("resume"))
    regenerate = with_model(sub.add_parser("regenerate", help="regenerate a phase and everything downstream"))
    regenerate.add_argument("campaign_id")
    regenerate.add_argument("phase")
    regenerate.set_defaults(func=_generation("regenerate"))
    cancel = sub.add_parser("cancel", help="cancel a running generation")
    cancel.add_argument("generation_id")
    cancel.set_defaults(func=_generation("cancel"))
    revert = sub.add_parser(
        "revert", help="undo a failed or cancelled generation: the world it replaced comes back exactly"
    )
    revert.add_argument("generation_id")
    revert.set_defaults(func=_generation("revert"))
    serve = with_model(sub.add_parser("serve", help="serve the Hasura actions on 127.0.0.1"))
    serve.add_argument("--port", type=int, default=8089)
    serve.set_defaults(func=_generation("serve"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
