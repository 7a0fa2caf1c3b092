"""The CLI side of export and import: where the document goes, and one clear line per mistake."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from worldgen.db.connection import connect
from worldgen.repository.paths import REPO_ROOT
from worldgen.tools.export import world
from worldgen.tools.export.audience import SecretLeak, for_audience

# Foundry's official CLI, pinned in tools/foundry/package-lock.json and installed by `make foundry-cli`.
FOUNDRY_CLI_DIR = REPO_ROOT / "tools" / "foundry"
SCHEMA_PATH = REPO_ROOT / "layers" / "worldgen" / "python" / "worldgen" / "tools" / "export" / world.SCHEMA_FILE


def export(args: argparse.Namespace) -> int:
    try:
        return _export(args)
    except BrokenPipeError:  # `worldgen export X | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


# The format an export's -o names by its extension; a path without one is a Markdown vault's folder.
FORMAT_OF_EXTENSION = {".html": "html", ".htm": "html", ".json": "json"}
# The list of the notes a Markdown export wrote into a vault folder: the next export into the same
# folder removes the ones whose rows are gone, and touches no other file.
VAULT_MANIFEST = ".worldgen-notes.json"


def export_format(args: argparse.Namespace) -> str | None:
    """``--format``, else the format -o's extension names (json without -o); None: cannot tell."""
    if args.format:
        return str(args.format)
    if not args.output:
        return "json"
    path = Path(args.output)
    if path.is_dir() or not path.suffix or args.output.endswith(os.sep):
        return "markdown"
    return FORMAT_OF_EXTENSION.get(path.suffix.lower())


def _export(args: argparse.Namespace) -> int:
    from worldgen.local.campaigns import NotFound, find_campaign
    from worldgen.local.database import migrated_local_database

    export_as = export_format(args)
    if export_as is None:
        print(
            f"error: cannot export: which format is {args.output!r}? end it in .html or .json, give a folder for a"
            " Markdown vault, or say --format",
            file=sys.stderr,
        )
        return 2
    if export_as == "markdown" and not args.output:
        print(
            "error: cannot export: a Markdown vault is a folder of notes: give it one, e.g. -o vault/",
            file=sys.stderr,
        )
        return 2
    if export_as == "foundry" and not args.output:
        print("error: cannot export: the foundry format writes a module folder: give -o DIR", file=sys.stderr)
        return 2
    with connect(migrated_local_database()) as conn:
        try:
            campaign_id = find_campaign(conn, args.campaign)
        except NotFound as exc:
            print(f"error: cannot export: {exc}", file=sys.stderr)
            return 2
        document = world.export_world(conn, campaign_id)
    try:
        document = for_audience(document, world.committed_schema(), args.audience)
    except SecretLeak as exc:
        print(f"error: cannot export for players: {exc}", file=sys.stderr)
        return 2
    if export_as == "json":
        _write_text(world.dumps(document), args.output)
    elif export_as == "foundry":
        from worldgen.tools.export.foundry import FoundryExportError, write_module

        try:
            module = write_module(document, world.committed_schema(), Path(args.output), FOUNDRY_CLI_DIR)
        except FoundryExportError as exc:
            print(f"error: cannot export to Foundry: {exc}", file=sys.stderr)
            return 2
        entries = len(module.entry_ids)
        print(
            f"wrote Foundry module {module.manifest['id']} ({entries} journal entries) under {args.output}",
            file=sys.stderr,
        )
    elif export_as == "markdown":
        from worldgen.tools.export.markdown import markdown_vault

        notes = markdown_vault(document, world.committed_schema())
        removed = write_vault(Path(args.output), notes)
        print(
            f"wrote {len(notes)} notes under {args.output}"
            + (f", removed {removed} of rows now gone" if removed else ""),
            file=sys.stderr,
        )
    else:
        from worldgen.tools.export.html import html_report

        _write_text(html_report(document, world.committed_schema(), audience=args.audience), args.output)
    return 0


def write_vault(folder: Path, notes: dict[str, str]) -> int:
    """Write the notes under ``folder``; remove the notes an earlier export wrote there that this one
    has not (their rows are gone), and nothing else. Returns how many were removed."""
    manifest = folder / VAULT_MANIFEST
    try:
        before = set(json.loads(manifest.read_text())["notes"])
    except (OSError, ValueError, KeyError, TypeError):
        before = set()
    for name, text in notes.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    removed = 0
    for name in sorted(before - set(notes)):
        path = folder / name
        if ".." in Path(name).parts or not path.is_file():  # only notes it wrote, inside the folder
            continue
        path.unlink()
        removed += 1
        if path.parent != folder and not any(path.parent.iterdir()):
            path.parent.rmdir()
    manifest.write_text(json.dumps({"notes": sorted(notes)}, indent=1))
    return removed


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
