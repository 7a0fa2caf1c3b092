"""The CLI side of export and import: where the document goes, and one clear line per mistake."""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
from pathlib import Path

from worldgen.db.connection import connect
from worldgen.tools.export import world
from worldgen.tools.export.audience import SecretLeak, for_audience
from worldgen.tools.repo import REPO_ROOT

# Foundry's official CLI, pinned in tools/foundry/package-lock.json and installed by `make foundry-cli`.
FOUNDRY_CLI_DIR = REPO_ROOT / "tools" / "foundry"
SCHEMA_PATH = REPO_ROOT / "layers" / "worldgen" / "python" / "worldgen" / "tools" / "export" / world.SCHEMA_FILE


def export(args: argparse.Namespace) -> int:
    try:
        return _export(args)
    except BrokenPipeError:  # `worldgen export X | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _export(args: argparse.Namespace) -> int:
    from worldgen.local.database import migrated_local_database

    if args.format == "foundry" and not args.output:
        print("cannot export: the foundry format writes a module folder: give -o DIR", file=sys.stderr)
        return 2
    with connect(migrated_local_database()) as conn:
        try:
            campaign_id = world.find_campaign(conn, args.campaign)
        except world.ExportError as exc:
            print(f"cannot export: {exc}", file=sys.stderr)
            return 2
        document = world.export_world(conn, campaign_id)
    try:
        document = for_audience(document, world.committed_schema(), args.audience)
    except SecretLeak as exc:
        print(f"cannot export for players: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        _write_text(world.dumps(document), args.output)
    elif args.format == "foundry":
        from worldgen.tools.export.foundry import FoundryExportError, write_module

        try:
            module = write_module(document, world.committed_schema(), Path(args.output), FOUNDRY_CLI_DIR)
        except FoundryExportError as exc:
            print(f"cannot export to Foundry: {exc}", file=sys.stderr)
            return 2
        entries = len(module.entry_ids)
        print(
            f"wrote Foundry module {module.manifest['id']} ({entries} journal entries) under {args.output}",
            file=sys.stderr,
        )
    elif args.format == "markdown":
        from worldgen.tools.export.markdown import markdown_vault

        notes = markdown_vault(document, world.committed_schema())
        if args.output:
            folder = Path(args.output)
            for name, text in notes.items():
                path = folder / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            print(f"wrote {len(notes)} notes under {folder}", file=sys.stderr)
        else:  # a tar stream: `worldgen export X --format markdown | tar x`
            with tarfile.open(fileobj=sys.stdout.buffer, mode="w|") as archive:
                for name, text in notes.items():
                    data = text.encode()
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
    else:
        from worldgen.tools.export.html import html_report

        _write_text(html_report(document, world.committed_schema()), args.output)
    return 0


def _write_text(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text)
        print(f"wrote {output} ({len(text.encode()) / 1024:.0f} KiB)", file=sys.stderr)
    else:
        sys.stdout.write(text)


def import_file(args: argparse.Namespace) -> int:
    from worldgen.local.database import migrated_local_database

    try:
        document = json.loads(Path(args.file).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    with connect(migrated_local_database()) as conn:
        try:
            campaign_id = world.import_world(conn, document, owner_id=args.owner)
        except world.ImportRefused as exc:
            print(f"refused {args.file}: {exc}", file=sys.stderr)
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
            return 2
    print(f"imported campaign {campaign_id}")
    return 0


def write_export_schema(args: argparse.Namespace) -> int:
    from worldgen.local.database import catalog_database

    with connect(catalog_database()) as conn:
        schema = world.build_schema(world.catalog_specs(conn))
    SCHEMA_PATH.write_text(world.dumps(schema))
    print(f"wrote {SCHEMA_PATH}")
    return 0
