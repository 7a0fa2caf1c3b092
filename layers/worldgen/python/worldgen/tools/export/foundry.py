"""The world as a Foundry VTT module: ``module.json`` and a compendium pack of JournalEntry documents.

One JournalEntry per row of every world table but the relationship tables (phase 3C): a row of those
ties two rows, so it becomes a line, with links, on the pages of the rows it ties. Entries sit in
folders by kind (NPCs, places, factions, quests, items, religion, the world's systems). Each entry
has a text page of what players may read and, in a game master's export, a second page, "GM notes",
with the row's gm_notes and its secret links, which players never see (its ``ownership.default`` is
NONE while the player page inherits the entry's). Every reference is an ``@UUID[...]{Name}`` link to
the entry it names. Ids are derived from the campaign, the table and the key, so a re-export of the
same campaign keeps every id and a reinstalled module updates its entries in place.

The pack is compiled by Foundry's official CLI (``@foundryvtt/foundryvtt-cli``, ``compilePack``) from
one JSON source file per document, the layout its README describes; Node runs it.

Document shapes follow Foundry's published data models (API v14):
- module.json: https://foundryvtt.com/api/v14/interfaces/foundry.packages.types.ModuleManifestData.html
  and its packs: https://foundryvtt.com/api/v14/interfaces/foundry.packages.types.PackageCompendiumData.html
- JournalEntryPage (``name``, ``type``, ``text``, ``title``, ``ownership``, ``sort``):
  https://foundryvtt.com/api/v14/interfaces/foundry.documents.types.JournalEntryPageData.html
- its text (``content``, ``format``; 1 is HTML):
  https://foundryvtt.com/api/v14/interfaces/foundry.documents.types.JournalEntryPageTextData.html
  and https://foundryvtt.com/api/enums/foundry.CONST.JOURNAL_ENTRY_PAGE_FORMATS.html
- ownership levels (-1 inherit, 0 none, 2 observer):
  https://foundryvtt.com/api/v14/variables/CONST.DOCUMENT_OWNERSHIP_LEVELS.html
- compendium packs and importing them into a world: https://foundryvtt.com/article/compendium/
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worldgen.contracts import GM_NOTES_COLUMN, PLAYERS_AUDIENCE, SECRET_LINK_COLUMN
from worldgen.phases import RELATIONSHIP_TABLES
from worldgen.tools.export.world import AUDIENCE_FIELD, PC_TABLE, reference_fields

PACK_NAME = "world"
PACK_TYPE = "JournalEntry"
# The current Foundry generation (OUTSIDE-CONTRACTS: API v14); v13 reads the same document shapes.
COMPATIBILITY = {"minimum": "13", "verified": "14"}
HTML_FORMAT = 1  # CONST.JOURNAL_ENTRY_PAGE_FORMATS.HTML
INHERIT, NONE, OBSERVER = -1, 0, 2  # CONST.DOCUMENT_OWNERSHIP_LEVELS
ID_LENGTH = 16  # Foundry ids: 16 alphanumeric characters
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_NOT_SHOWN = frozenset({"key", "name", "description", GM_NOTES_COLUMN, SECRET_LINK_COLUMN, "created_at", "locked"})
_NOT_WORLD = frozenset({"generations"})

# Folders by kind, in the order the sidebar lists them; a table no kind names goes to the last.
FOLDERS: dict[str, tuple[str, ...]] = {
    "NPCs": ("entities",),
    "Places": ("geography_regions", "planes", "locations", "dungeons", "buildings", "shops", "taverns"),
    "Factions": ("factions",),
    "Quests": ("quest_hooks", "encounters"),
    "Items": ("items", "item_effects", "sentient_item_properties"),
    "Religion": ("pantheons", "deities", "temples"),
    "The world's systems": (),
}
SYSTEMS_FOLDER = "The world's systems"


class FoundryExportError(Exception):
    """The module cannot be built here (no Node, Foundry's CLI not installed, the CLI failed)."""


def _esc(text: str) -> str:
    """Text inside HTML elements: quotes stay as they are (they end no attribute there)."""
    return html.escape(text, quote=False)


def foundry_id(*parts: str) -> str:
    """A Foundry id (16 alphanumeric characters) derived from ``parts``: the same parts, the same id."""
    number = int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest(), "big")
    chars = []
    for _ in range(ID_LENGTH):
        number, digit = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return "".join(chars)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "world"


def folder_of(table: str) -> str:
    return next((name for name, tables in FOLDERS.items() if table in tables), SYSTEMS_FOLDER)


def title(table: str) -> str:
    return table.replace("_", " ")


@dataclass
class _Entry:
    table: str
    key: str
    row: Mapping[str, Any]
    id: str
    public: list[str] = field(default_factory=list)  # lines (HTML) of the player page's links
    secret: list[str] = field(default_factory=list)  # lines of the GM page's secret links


@dataclass(frozen=True)
class FoundryModule:
    """What ``build_sources`` makes: the manifest, the pack's source documents, and each row's entry id."""

    manifest: dict[str, Any]
    sources: dict[str, dict[str, Any]]  # file name -> document (folders and journal entries)
    entry_ids: dict[tuple[str, str], str]  # (table, key) -> JournalEntry id


def build_sources(document: Mapping[str, Any], schema: Mapping[str, Any]) -> FoundryModule:
    campaign = document["campaign"]
    players = document.get(AUDIENCE_FIELD) == PLAYERS_AUDIENCE
    module_id = f"worldgen-{slug(campaign['name'])}" + ("-players" if players else "")
    seed = campaign["name"]
    references = {
        table: {f: t for f, t in fields.items() if t not in _NOT_WORLD}
        for table, fields in reference_fields(schema).items()
    }
    entries: dict[tuple[str, str], _Entry] = {}
    for table, rows in document["world"].items():
        if table in RELATIONSHIP_TABLES:
            continue
        for row in rows:
            entries[(table, row["key"])] = _Entry(table, row["key"], row, foundry_id(seed, table, row["key"]))
    pcs = {pc["key"]: pc["name"] for pc in document["player_characters"]}

    def link(target_table: str, key: str) -> str:
        """An @UUID link to the entry of a row (text enrichment), or the name of a PC (no entry).
        The compendium form (``Compendium.<module>.<pack>.JournalEntry.<id>``) resolves inside the
        pack and from a world that imported it; ``JournalEntry.<id>`` would name world documents only."""
        if target_table == PC_TABLE:
            return _esc(pcs.get(key, key))
        target = entries.get((target_table, key))
        if target is None:  # not in this export
            return _esc(key)
        name = str(target.row.get("name") or key).replace("]", ")").replace("}", ")")
        return f"@UUID[Compendium.{module_id}.{PACK_NAME}.{PACK_TYPE}.{target.id}]{{{name}}}"

    for (table, key), entry in entries.items():  # references both ways: what it names, what names it
        for name, target in references[table].items():
            value = entry.row.get(name)
            if value is None:
                continue
            entry.public.append(f"<li>{_esc(title(name.removesuffix('_key')))}: {link(target, value)}</li>")
            other = entries.get((target, value))
            if other is not None:
                role = title(name.removesuffix("_key"))
                other.public.append(f"<li>{link(table, key)} ({_esc(title(table))}, {_esc(role)})</li>")
    for table in RELATIONSHIP_TABLES:  # a relationship row: a line on the page of each row it ties
        for row in document["world"].get(table, []):
            ends = [(t, row[f]) for f, t in references[table].items() if row.get(f) is not None]
            kind = ", ".join(
                _esc(str(v).replace("_", " "))
                for k, v in row.items()
                if k not in _NOT_SHOWN and not k.endswith("_key") and isinstance(v, str) and v
            )
            for here in ends:
                tied = entries.get(here)
                if tied is None:
                    continue
                others = " and ".join(link(t, k) for t, k in ends if (t, k) != here)
                line = f"<li>{_esc(title(table))}{f' ({kind})' if kind else ''}: {others}"
                line += f" &mdash; {_esc(str(row.get('description') or ''))}</li>"
                (tied.secret if row.get(SECRET_LINK_COLUMN) else tied.public).append(line)

    folders = {name: foundry_id(seed, "folder", name) for name in FOLDERS}
    used = {folder_of(e.table) for e in entries.values()}
    sources: dict[str, dict[str, Any]] = {}
    for sort, name in enumerate(n for n in FOLDERS if n in used):
        sources[f"_folder-{slug(name)}.json"] = {
            "_id": folders[name],
            "_key": f"!folders!{folders[name]}",
            "name": name,
            "type": PACK_TYPE,
            "folder": None,
            "sorting": "a",
            "sort": (sort + 1) * 100000,
            "color": None,
        }
    for entry in entries.values():
        sources[f"{entry.table}--{entry.key}.json"] = _journal_entry(entry, folders[folder_of(entry.table)], players)
    label = str(campaign["name"]) + (" (players)" if players else "")
    manifest = {
        "id": module_id,
        "title": f"{label}: a worldgen world",
        "description": f"<p>{_esc(str(campaign.get('setting') or ''))}</p>",
        "version": f"1.0.{len(document.get('generations', []))}",
        "compatibility": COMPATIBILITY,
        "authors": [{"name": "worldgen"}],
        "packs": [{"name": PACK_NAME, "label": label, "path": f"packs/{PACK_NAME}", "type": PACK_TYPE}],
    }
    return FoundryModule(manifest, sources, {k: e.id for k, e in entries.items()})


def _journal_entry(entry: _Entry, folder_id: str, players: bool) -> dict[str, Any]:
    row = entry.row
    body = [f"<p>{_esc(line)}</p>" for line in str(row.get("description") or "").splitlines() if line]
    details = [
        f"<li><strong>{_esc(title(k))}</strong>: {_esc(_text(v))}</li>"
        for k, v in row.items()
        if k not in _NOT_SHOWN and not k.endswith("_key") and v not in (None, "", [], {})
    ]
    if details:
        body.append(f"<ul>{''.join(details)}</ul>")
    if entry.public:
        body.append(f"<h2>Links</h2><ul>{''.join(entry.public)}</ul>")
    pages = [_page(entry, "public", str(row.get("name") or entry.key), "".join(body), INHERIT, 100000)]
    notes = [f"<p>{_esc(line)}</p>" for line in str(row.get(GM_NOTES_COLUMN) or "").splitlines() if line]
    if entry.secret:
        notes.append(f"<h2>Secret links</h2><ul>{''.join(entry.secret)}</ul>")
    if notes and not players:  # the GM's page: ownership NONE hides it from every player
        pages.append(_page(entry, "gm", "GM notes", "".join(notes), NONE, 200000))
    return {
        "_id": entry.id,
        "_key": f"!journal!{entry.id}",
        "name": str(row.get("name") or entry.key),
        "folder": folder_id,
        "sort": 0,
        # A players module is for sharing: its entries are readable. A game master's entries stay
        # hidden until the GM shows one; then its first page shows, and the GM page still does not.
        "ownership": {"default": OBSERVER if players else NONE},
        "flags": {"worldgen": {"table": entry.table, "key": entry.key}},
        "pages": pages,
    }


def _page(entry: _Entry, kind: str, name: str, content: str, ownership: int, sort: int) -> dict[str, Any]:
    page_id = foundry_id(entry.id, kind)
    return {
        "_id": page_id,
        "_key": f"!journal.pages!{entry.id}.{page_id}",
        "name": name,
        "type": "text",
        "title": {"show": True, "level": 1},
        "text": {"format": HTML_FORMAT, "content": content},
        "ownership": {"default": ownership},
        "sort": sort,
    }


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value).replace("_", " ") if isinstance(value, str) and re.fullmatch(r"[a-z_]+", value) else str(value)


# ---------------------------------------------------------------- building the pack with Foundry's CLI


def pack_cli_command(cli_dir: Path) -> list[str]:
    """``node pack.mjs`` of the pinned Foundry CLI, or a one-line reason it cannot run here."""
    node = shutil.which("node")
    if node is None:
        raise FoundryExportError(
            "Node.js is not installed (no `node` on PATH): the Foundry module is built with Foundry's official CLI,"
            " which runs on Node 18 or later"
        )
    if not (cli_dir / "node_modules" / "@foundryvtt" / "foundryvtt-cli").is_dir():
        raise FoundryExportError("Foundry's CLI is not installed: run `make foundry-cli`")
    return [node, str(cli_dir / "pack.mjs")]


def run_pack_cli(cli_dir: Path, command: str, source: Path, target: Path) -> None:
    done = subprocess.run(
        [*pack_cli_command(cli_dir), command, str(source), str(target)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise FoundryExportError(f"Foundry's CLI could not {command} the pack: {last}")


def write_module(document: Mapping[str, Any], schema: Mapping[str, Any], folder: Path, cli_dir: Path) -> FoundryModule:
    """``folder``/module.json and ``folder``/packs/world, compiled by Foundry's CLI (it replaces what
    the pack held: a re-export updates the entries in place, by id)."""
    module = build_sources(document, schema)
    pack_cli_command(cli_dir)  # fail before writing anything
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="worldgen-foundry-") as scratch:
        sources = Path(scratch)
        for name, source in module.sources.items():
            (sources / name).write_text(json.dumps(source, indent=2, ensure_ascii=False) + "\n")
        run_pack_cli(cli_dir, "compile", sources, folder / "packs" / PACK_NAME)
    (folder / "module.json").write_text(json.dumps(module.manifest, indent=2, ensure_ascii=False) + "\n")
    return module
