"""The ``worldgen`` command line. Every command imports what it needs when it runs."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import uuid
import warnings
from collections.abc import Callable, Sequence
from typing import NoReturn

from worldgen.contracts import EXPORT_AUDIENCES, GM_AUDIENCE
from worldgen.phases import ANY_PHASE_BY_ID, PROFILE_NAMES
from worldgen.settings import MODEL_PROVIDERS

# The formats of `worldgen export`; tools/export/commands.py infers one from -o's extension.
EXPORT_FORMATS = ("json", "markdown", "html", "foundry")


def _db_migrate(args: argparse.Namespace) -> int:
    from worldgen.local.postgres import local_database_url
    from worldgen.repository.migrator import MigrationFailed, migrate, migrate_down

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
    print(f"wrote {', '.join(str(p) for p in statemachine.ASL_PATHS.values())} and {statemachine.README_PATH}")
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


def _export(args: argparse.Namespace) -> int:
    from worldgen.tools.export import commands

    return commands.export(args)


def _import(args: argparse.Namespace) -> int:
    from worldgen.tools.export import commands

    return commands.import_file(args)


def _export_schema(args: argparse.Namespace) -> int:
    from worldgen.tools.export import commands

    return commands.write_export_schema(args)


class Parser(argparse.ArgumentParser):
    """argparse, with a mistake on the command line said in one line (not the usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def model_choice(value: str) -> str:
    if value not in MODEL_PROVIDERS:
        raise argparse.ArgumentTypeError(f"unknown model {value!r}; choose one of: {', '.join(MODEL_PROVIDERS)}")
    return value


def uuid_argument(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an id: give the UUID `worldgen status` prints, e.g. 0b9e5c1e-..."
        ) from None


def usd_argument(value: str) -> float:
    try:
        amount = float(value)
    except ValueError:
        amount = 0.0
    if not amount > 0 or amount == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not an amount: give a positive number of USD, e.g. 1.50")
    return amount


def phase_argument(value: str) -> str:
    if value.upper() not in ANY_PHASE_BY_ID:
        raise argparse.ArgumentTypeError(f"unknown phase {value!r}; choose one of: {', '.join(ANY_PHASE_BY_ID)}")
    return value.upper()


def _generation(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        from worldgen.local import commands

        return int(getattr(commands, name)(args))

    return run


# The groups of `worldgen --help`, in this order; a command joins one when it is added.
GM_COMMANDS = "a game master's commands"
TOOLS = "build and operations tools"
CAMPAIGN_OR_GENERATION = "a generation id, or a campaign's id or name (its latest generation)"


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="show log lines, warnings, tracebacks"
    )
    parser = Parser(
        prog="worldgen",
        usage="worldgen [-h] [-v] COMMAND ...",
        description="Generate tabletop campaign worlds, phase by phase. Start with `worldgen demo`.",
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(verbose=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help=argparse.SUPPRESS)
    groups: dict[str, list[tuple[str, str]]] = {GM_COMMANDS: [], TOOLS: []}

    def add_command(name: str, help: str, example: str | None = None, group: str = TOOLS) -> argparse.ArgumentParser:
        groups.setdefault(group, []).append((name, help))
        return sub.add_parser(
            name,
            help=help,
            description=help,
            epilog=f"example:\n  {example}" if example else None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[common],
        )

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

    def with_profile(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
        command.add_argument(
            "--profile",
            choices=PROFILE_NAMES,
            default=None,
            help="full (9 phases) or quick (a lean world in 3 phases); default WORLDGEN_DEFAULT_PROFILE",
        )
        return command

    def with_cost_cap(command: argparse.ArgumentParser) -> argparse.ArgumentParser:
        command.add_argument(
            "--max-cost", type=usd_argument, default=None, metavar="USD",
            help="the generation's cost cap in USD (default WORLDGEN_DEFAULT_MAX_COST_USD; none: no cap)",
        )  # fmt: skip
        return command

    # -- a game master's commands --------------------------------------------------------------
    demo = with_cost_cap(
        with_profile(
            with_model(
                add_command(
                    "demo",
                    help="generate the sample campaign's world (again: a new generation of the same campaign)",
                    example="worldgen demo            # offline; --model anthropic with ANTHROPIC_API_KEY for Claude",
                    group=GM_COMMANDS,
                )
            )
        )
    )
    demo.set_defaults(func=_generation("demo"))
    generate = with_cost_cap(
        with_profile(
            with_model(
                add_command(
                    "generate",
                    help="generate the world of a campaign file",
                    example="worldgen generate --campaign my_campaign.json --model anthropic",
                    group=GM_COMMANDS,
                )
            )
        )
    )
    generate.add_argument(
        "--campaign", dest="campaign_file", required=True, metavar="FILE", help="campaign JSON (`worldgen new FILE`)"
    )
    generate.set_defaults(func=_generation("generate"))
    new = add_command(
        "new",
        help="write a campaign file to fill in, every field explained",
        example="worldgen new my_campaign.json",
        group=GM_COMMANDS,
    )
    new.add_argument("file", metavar="FILE")
    new.set_defaults(func=_generation("new"), needs_database=False)
    campaigns = add_command(
        "campaigns",
        help="list the campaigns (or remove one with its world: `campaigns remove CAMPAIGN`)",
        example='worldgen campaigns\n  worldgen campaigns remove "The Drowned Crown"',
        group=GM_COMMANDS,
    )
    campaigns.add_argument("action", nargs="?", choices=("list", "remove"), default="list")
    campaigns.add_argument("campaign", nargs="?", default=None, metavar="CAMPAIGN", help="id or name (for remove)")
    campaigns.add_argument("--yes", action="store_true", help="remove without asking")
    campaigns.set_defaults(func=_generation("campaigns"))
    status = add_command(
        "status",
        help="show a generation: phases, rows, time, cost (default: the latest)",
        example='worldgen status "The Drowned Crown"',
        group=GM_COMMANDS,
    )
    status.add_argument("generation_id", nargs="?", default=None, metavar="GENERATION|CAMPAIGN")
    status.set_defaults(func=_generation("status"))
    audit = add_command(
        "audit",
        help="audit a generated world: PC coverage, orphans, NPC load, dropped rows",
        example='worldgen audit "The Drowned Crown"',
        group=GM_COMMANDS,
    )
    audit.add_argument("generation_id", nargs="?", default=None, metavar="GENERATION|CAMPAIGN")
    audit.add_argument("--json", action="store_true", help="print the audit as JSON")
    audit.set_defaults(func=_generation("audit"))
    export = add_command(
        "export",
        help="export a campaign's world as an HTML report, a Markdown vault, JSON or a Foundry VTT module",
        example='worldgen export "The Drowned Crown" -o world.html     # or -o vault/ (Markdown), -o world.json',
        group=GM_COMMANDS,
    )
    export.add_argument("campaign", metavar="CAMPAIGN", help="campaign id or name (or a generation id)")
    export.add_argument(
        "--format", choices=EXPORT_FORMATS, default=None, help="default: from -o (.html, .json, a folder), else json"
    )
    export.add_argument(
        "--audience",
        choices=EXPORT_AUDIENCES,
        default=GM_AUDIENCE,
        help="gm: everything; players: no GM notes, no secret links, nothing known only through one",
    )
    export.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="PATH",
        help="file (a folder for markdown and foundry); default standard output",
    )
    export.set_defaults(func=_export)
    import_ = add_command(
        "import",
        help="load a JSON world export as a new campaign",
        example="worldgen import world.json",
        group=GM_COMMANDS,
    )
    import_.add_argument("file", metavar="FILE")
    import_.add_argument("--owner", default=None, help="owner_id of the new campaign (default: the file's)")
    import_.set_defaults(func=_import)
    resume = with_cost_cap(
        with_model(
            add_command(
                "resume",
                help="run a failed generation again from where it failed (--model, --max-cost to change them)",
                example='worldgen resume "The Drowned Crown" --model procedural',
                group=GM_COMMANDS,
            )
        )
    )
    resume.add_argument("generation_id", metavar="GENERATION|CAMPAIGN", help=CAMPAIGN_OR_GENERATION)
    resume.set_defaults(func=_generation("resume"))
    redrive = with_model(
        add_command(
            "redrive",
            help="continue a failed execution from its failed states, as the console's Redrive does",
            example='worldgen redrive "The Drowned Crown"',
            group=GM_COMMANDS,
        )
    )
    redrive.add_argument("generation_id", metavar="GENERATION|CAMPAIGN", help=CAMPAIGN_OR_GENERATION)
    redrive.set_defaults(func=_generation("redrive"))
    regenerate = with_model(
        add_command(
            "regenerate",
            help="regenerate a phase and everything downstream",
            example='worldgen regenerate "The Drowned Crown" 3A',
            group=GM_COMMANDS,
        )
    )
    regenerate.add_argument("campaign_id", metavar="CAMPAIGN", help="campaign id or name (or a generation id)")
    regenerate.add_argument("phase", type=phase_argument, help=f"one of {', '.join(ANY_PHASE_BY_ID)}")
    regenerate.set_defaults(func=_generation("regenerate"))
    for name, help, verb in (
        ("cancel", "cancel a running generation", "cancel"),
        ("revert", "undo a failed or cancelled generation: the world it replaced, exactly", "revert"),
        ("discard", "remove every row a failed or cancelled generation wrote", "discard"),
    ):
        command = add_command(name, help=help, example=f'worldgen {verb} "The Drowned Crown"', group=GM_COMMANDS)
        command.add_argument("generation_id", metavar="GENERATION|CAMPAIGN", help=CAMPAIGN_OR_GENERATION)
        command.set_defaults(func=_generation(name))
    reroll = add_command(
        "reroll",
        help="write one world row anew (an NPC, a place, an item, a quest), or --undo",
        example='worldgen reroll "The Drowned Crown" entities mira-the-innkeeper --hint "less dull"',
        group=GM_COMMANDS,
    )
    reroll.add_argument("campaign_ref", metavar="CAMPAIGN", help="campaign id or name")
    reroll.add_argument("table", metavar="TABLE", help="a world table, e.g. entities, locations, items, quest_hooks")
    reroll.add_argument("key", metavar="KEY", help="the row's key, e.g. mira-the-innkeeper")
    reroll.add_argument("--hint", default=None, metavar="TEXT", help="what to change, e.g. 'less of a fetch quest'")
    reroll.add_argument("--undo", action="store_true", help="put back the version before the latest reroll")
    reroll.add_argument("--model", type=model_choice, default=None, help=" | ".join(MODEL_PROVIDERS))
    reroll.set_defaults(func=_generation("reroll"))
    history = add_command(
        "history",
        help="list a campaign's rerolls: row, hint, model, cost",
        example='worldgen history "The Drowned Crown"',
        group=GM_COMMANDS,
    )
    history.add_argument("campaign_ref", metavar="CAMPAIGN", help="campaign id or name")
    history.set_defaults(func=_generation("history"))
    where = add_command(
        "where",
        help="say which database the commands use (and move an older ./.worldgen one with --move-old)",
        example="worldgen where",
        group=GM_COMMANDS,
    )
    where.add_argument("--move-old", action="store_true", help="move ./.worldgen/pgdata to the worldgen home")
    where.set_defaults(func=_generation("where"), needs_database=False)

    # -- build and operations tools ------------------------------------------------------------
    serve = with_model(
        add_command("serve", help="serve the Hasura actions on 127.0.0.1", example="worldgen serve --port 8089")
    )
    serve.add_argument("--port", type=int, default=8089)
    serve.add_argument("--max-connections", type=int, default=32, help="requests handled at once (others wait)")
    serve.add_argument("--read-timeout", type=float, default=10.0, help="seconds a client may take to send")
    serve.set_defaults(func=_generation("serve"))
    db = add_command("db", help="database commands", example="worldgen db migrate").add_subparsers(
        dest="db_command", required=True
    )
    migrate = db.add_parser("migrate", help="apply pending migrations (or revert with --down N)", parents=[common])
    migrate.add_argument("--down", type=int, default=0, metavar="N", help="revert the N latest migrations")
    migrate.set_defaults(func=_db_migrate)
    add_command(
        "asl", help="regenerate the state machines (statemachine/*.asl.json), one per profile", example="make asl"
    ).set_defaults(func=_asl, needs_database=False)
    add_command(
        "schemas", help="regenerate the phase tool schemas from the catalog", example="make schemas"
    ).set_defaults(func=_schemas)
    add_command(
        "hasura-metadata",
        help="regenerate the relationships of infra/hasura/metadata from the catalog",
        example="make hasura-metadata",
    ).set_defaults(func=_hasura_metadata)
    schema = add_command(
        "schema",
        help="print phase tool schemas built from a Hasura schema",
        example="worldgen schema --from-hasura http://localhost:8080/v1/graphql --admin-secret ...",
    )
    schema.add_argument("--from-hasura", required=True, metavar="FILE|URL", help="introspection JSON, SDL or URL")
    schema.add_argument("--admin-secret", default=None, help="x-hasura-admin-secret for a URL")
    schema.add_argument("--no-database", action="store_true", help="do not read required-ness from the catalog")
    schema.set_defaults(func=_schema_from_hasura)
    add_command(
        "export-schema", help="regenerate the JSON Schema of the world export", example="make export-schema"
    ).set_defaults(func=_export_schema)
    rehearse = add_command(
        "rehearse", help="run worlds from the synthesized cloud assembly (make rehearse)", example="make rehearse"
    )
    rehearse.add_argument("--env", default="dev", help="the environment to synthesize and rehearse")
    rehearse.add_argument("--cdk-out", default=None, metavar="DIR", help="an already synthesized assembly")
    rehearse.add_argument("--database-url", default=None, help="a migrated database (default: embedded server)")
    rehearse.set_defaults(func=_rehearse)

    listed = {name for commands in groups.values() for name, _ in commands}
    for action in sub._choices_actions:  # a command added with sub.add_parser directly is listed too
        if action.dest not in listed:
            groups[TOOLS].append((action.dest, action.help or ""))
    parser.epilog = (
        "\n\n".join(
            f"{group}:\n" + "\n".join(f"  {name:<16}{help}" for name, help in commands)
            for group, commands in groups.items()
            if commands
        )
        + "\n\n`worldgen COMMAND --help` shows a command's options and an example;"
        " docs/game-masters.md walks through a first world."
    )
    return parser


def unknown_command_line(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str | None:
    """One line for a command that is not one, with the nearest ones (None when it is one)."""
    import difflib

    words = [word for word in argv if not word.startswith("-")]
    commands = next(a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if not words or not isinstance(commands, dict) or words[0] in commands:
        return None
    close = difflib.get_close_matches(words[0], list(commands), n=2, cutoff=0.6)
    hint = f"; did you mean {' or '.join(f'`worldgen {c}`' for c in close)}?" if close else ""
    return f"error: unknown command {words[0]!r}{hint} (`worldgen --help` lists them)"


def _quiet_unless_verbose(verbose: bool) -> None:
    """A person's terminal shows the CLI's own lines; log lines and library warnings need --verbose."""
    if verbose:
        os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "INFO")
        return
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    os.environ["POWERTOOLS_LOG_LEVEL"] = "CRITICAL"


def error_line(exc: BaseException) -> str:
    """One line for an error that ended a command: what happened and, where known, what to do."""
    import psycopg

    from worldgen.errors import DatabaseUnavailable, WorldgenError

    if isinstance(exc, (DatabaseUnavailable, psycopg.OperationalError)):
        text = "the database is unavailable; check WORLDGEN_DATABASE_URL or that PostgreSQL is running"
    elif isinstance(exc, WorldgenError):
        text = f"{type(exc).__name__}: {exc.message}"
    else:
        text = f"{type(exc).__name__}: {exc} (run again with --verbose for the traceback)"
    return "error: " + " ".join(text.split())[:1000]


def _rehearse(args: argparse.Namespace) -> int:
    from worldgen.tools import rehearse

    argv = ["--env", args.env]
    argv += ["--cdk-out", args.cdk_out] if args.cdk_out else []
    argv += ["--database-url", args.database_url] if args.database_url else []
    return rehearse.main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    unknown = unknown_command_line(parser, sys.argv[1:] if argv is None else argv)
    if unknown:
        print(unknown, file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    # Quieting is undone on the way out: main() also runs in-process (tests, other tools).
    saved_level = os.environ.get("POWERTOOLS_LOG_LEVEL")
    with warnings.catch_warnings():
        _quiet_unless_verbose(args.verbose)
        try:
            return _run(args)
        finally:
            logging.disable(logging.NOTSET)
            if saved_level is None:
                os.environ.pop("POWERTOOLS_LOG_LEVEL", None)
            else:
                os.environ["POWERTOOLS_LOG_LEVEL"] = saved_level


def _run(args: argparse.Namespace) -> int:
    """The command, after the checks every command that opens the database gets (``needs_database``)."""
    from worldgen.errors import ConfigurationError
    from worldgen.local.preflight import redact

    try:
        if getattr(args, "needs_database", True):
            from worldgen.local.preflight import preflight

            problems = preflight(args)
            for problem in problems:
                print(redact(f"error: {problem}"), file=sys.stderr)
            if problems:
                return 2
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except ConfigurationError as exc:  # e.g. an unknown model in WORLDGEN_DEFAULT_MODEL: one line
        print(redact(f"configuration error: {exc.message}"), file=sys.stderr)
        return 2
    except Exception as exc:
        from worldgen.local.campaigns import NotFound, RemoveRefused

        if isinstance(exc, (NotFound, RemoveRefused)):  # a campaign or generation named wrong: one line
            print(redact(f"error: {exc}"), file=sys.stderr)
            return 2
        if args.verbose:
            raise
        print(redact(error_line(exc)), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
