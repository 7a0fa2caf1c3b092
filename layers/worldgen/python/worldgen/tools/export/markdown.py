"""An Obsidian-compatible vault: a note per row, an index note per table, a note per PC.

Notes live at ``<table>/<key>.md`` (keys are slugs, safe file names everywhere) and link with
``[[<table>/<key>|Name]]``, which Obsidian resolves by path. Every reference of a row and every row
referring to it is a link, so Obsidian's graph view shows the same web as the HTML report.

Each row's note opens with YAML frontmatter (Obsidian "Properties": kind, key, tags, aliases, the
PCs it serves), so Dataview queries (``FROM #worldgen/entities WHERE contains(pcs, "Isolde")``) and
graph filters work. A game master's vault shows a row's gm_notes in a folded callout
(``> [!secret]- GM notes``); a players vault is written from a document that has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from worldgen.contracts import GM_NOTES_COLUMN, SECRET_LINK_COLUMN
from worldgen.tools.export.graph import Node, WorldGraph, node_id, world_graph
from worldgen.tools.export.world import PC_TABLE

TAG_PREFIX = "worldgen"
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml's, when PyYAML was built with it


def title(table: str) -> str:
    return table.replace("_", " ").capitalize()


def link(node: Node) -> str:
    return f"[[{node.id}|{node.label.replace('|', '/').replace(']', ')')}]]"


def markdown_vault(document: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, str]:
    """file name -> note text."""
    graph = world_graph(document, schema)
    campaign = document["campaign"]
    notes: dict[str, str] = {}
    tables = [PC_TABLE, *(t for t, rows in document["world"].items() if rows)]
    index = [f"# {campaign['name']}", "", campaign["setting"], "", f"Tone: {campaign['tone']}", ""]
    index += ["## Player characters", ""]
    index += [f"- {link(graph.nodes[node_id(PC_TABLE, pc['key'])])}" for pc in document["player_characters"]]
    index += ["", "## Tables", ""]
    for table in tables:
        members = [n for n in graph.nodes.values() if n.table == table]
        index.append(f"- [[{table}|{title(table)}]] ({len(members)})")
        lines = [f"# {title(table)}", "", *(f"- {link(n)}" for n in sorted(members, key=lambda n: n.label))]
        notes[f"{table}.md"] = "\n".join(lines) + "\n"
    notes["index.md"] = "\n".join(index) + "\n"
    served = pcs_served(graph)
    for node in graph.nodes.values():
        notes[f"{node.id}.md"] = _note(node, graph, served.get(node.id, []))
    return notes


def pcs_served(graph: WorldGraph) -> dict[str, list[str]]:
    """node id -> the names of the player characters within two links of it (one walk per PC)."""
    served: dict[str, list[str]] = {}
    for pc in (n for n in graph.nodes.values() if n.table == PC_TABLE):
        for other in graph.connected(pc.id):
            served.setdefault(other, []).append(pc.label)
    return served


def frontmatter(node: Node, pcs: list[str]) -> str:
    """Obsidian properties: what kind of row, its key, tags, its name as an alias, the PCs it serves."""
    properties: dict[str, Any] = {
        "kind": node.table,
        "key": node.key,
        "tags": [f"{TAG_PREFIX}/{node.table}"],
        "aliases": [node.label],
        "pcs": pcs,
    }
    if node.row.get(SECRET_LINK_COLUMN):
        properties["secret"] = True
        properties["tags"].append(f"{TAG_PREFIX}/secret")
    text = yaml.dump(properties, Dumper=_DUMPER, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{text}---\n"


def _note(node: Node, graph: WorldGraph, pcs: list[str]) -> str:
    lines = [
        frontmatter(node, pcs).rstrip("\n"),
        f"# {node.label}",
        "",
        f"*{title(node.table)}* · key `{node.key}` · [[{node.table}|all {title(node.table).lower()}]]",
        "",
    ]
    for name, value in node.row.items():
        if name in ("name", "key", GM_NOTES_COLUMN, SECRET_LINK_COLUMN) or name.endswith("_key"):
            continue
        if value in (None, "", [], {}):
            continue
        text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        lines.append(f"**{name.replace('_', ' ')}**: {text}" if "\n" not in text else f"**{name}**:\n\n{text}\n")
    if node.row.get(GM_NOTES_COLUMN):
        lines += ["", "> [!secret]- GM notes", *(f"> {line}" for line in str(node.row[GM_NOTES_COLUMN]).splitlines())]
    links = graph.neighbours(node.id)
    if links:
        lines += ["", "## Links", ""]
        for edge, other in links:
            arrow = edge.field.removesuffix("_key").replace("_", " ")
            direction = "→" if edge.source == node.id else "←"
            lines.append(f"- {direction} {arrow}: {link(graph.nodes[other])}")
    if node.table == PC_TABLE:
        lines += ["", "## Everything connected", ""]
        for other in graph.connected(node.id):
            lines.append(f"- {link(graph.nodes[other])} ({title(graph.nodes[other].table).lower()})")
    return "\n".join(lines) + "\n"
