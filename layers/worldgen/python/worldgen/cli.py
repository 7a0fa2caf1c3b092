"""The ``worldgen`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from worldgen.settings import MODEL_PROVIDERS

Command = Callable[[argparse.Namespace], int]


def _db_migrate(args: argparse.Namespace) -> int:
    from worldgen.db.migrator import MigrationFailed, migrate, migrate_down
    from worldgen.local.postgres import local_database_url

    url = local_database_url()
    try:
        if args.down:
            done = migrate_down(url, args.down)
            verb = "reverted"
        else:
            done = migrate(url)
            verb = "applied"
    except MigrationFailed as exc:
        print(f"migration failed: {exc}", file=sys.stderr)
        return 1
    if not done:
        print("nothing to do: the database is up to date")
    for migration in done:
        print(f"{verb} {migration.version}_{migration.name}")
    return 0


def _asl(args: argparse.Namespace) -> int:
    from worldgen import statemachine

    statemachine.write()
    print(f"wrote {statemachine.ASL_PATH} and {statemachine.README_PATH}")
    return 0


def _schemas(args: argparse.Namespace) -> int:
    from worldgen.db.catalog import read_table_specs
    from worldgen.db.connection import connect
    from worldgen.local.database import catalog_database
    from worldgen.phases import WORLD_TABLES
    from worldgen.schema.tools import write_generated

    with connect(catalog_database()) as conn:
        specs = read_table_specs(conn, WORLD_TABLES)
    for path in write_generated(specs):
        print(f"wrote {path}")
    return 0


def build_parser(commands: dict[str, Command]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="worldgen", description="Generate campaign worlds, phase by phase.")
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database commands")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    migrate = db_sub.add_parser("migrate", help="apply pending migrations (or revert with --down N)")
    migrate.add_argument("--down", type=int, default=0, metavar="N", help="revert the N latest migrations")
    migrate.set_defaults(func=commands["db migrate"])

    sub.add_parser("asl", help="regenerate statemachine/generation.asl.json").set_defaults(func=commands["asl"])
    sub.add_parser("schemas", help="regenerate the phase tool schemas from the catalog").set_defaults(
        func=commands["schemas"]
    )
    for name, extra in _LATE_COMMANDS:
        extra(sub, commands[name])
    return parser


_LATE_COMMANDS: list[tuple[str, Callable[[argparse._SubParsersAction, Command], None]]] = []  # type: ignore[type-arg]

COMMANDS: dict[str, Command] = {"db migrate": _db_migrate, "asl": _asl, "schemas": _schemas}


def model_choice(value: str) -> str:
    if value not in MODEL_PROVIDERS:
        raise argparse.ArgumentTypeError(f"unknown model {value!r}; choose one of: {', '.join(MODEL_PROVIDERS)}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    from worldgen.local import commands  # registers the generation commands

    commands.register(COMMANDS, _LATE_COMMANDS)
    args = build_parser(COMMANDS).parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
