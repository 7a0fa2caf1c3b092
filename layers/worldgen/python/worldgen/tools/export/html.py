"""One self-contained HTML file: PC pages, searchable tables, and an interactive relationship graph.

No CDN and nothing fetched: the page is ``report/report.html`` with its stylesheet, its script (the
graph drawn in SVG, laid out by d3-force), the layout library (inlined from its pinned npm tarballs,
with their licences: ``layout.py``) and the world's data inlined, so it opens from a file, offline,
anywhere.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

from worldgen.phases import PHASES
from worldgen.tools.export.graph import GM, RELATIONSHIP_TYPES, node_id, relationship_graph
from worldgen.tools.export.layout import inline_scripts
from worldgen.tools.export.world import PC_TABLE, reference_fields


def _shown_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row's fields worth showing: no key, name, timestamp, reference (those are links) or empty value."""
    return {
        k: v
        for k, v in row.items()
        if k not in ("key", "name", "created_at") and not k.endswith("_key") and v not in (None, "", [], {})
    }


def report_data(document: Mapping[str, Any], schema: Mapping[str, Any], audience: str = GM) -> dict[str, Any]:
    """What the page's script reads: the things (nodes, with their fields), the edges between them
    (a relationship row's with its type, fields and further ends; a reference's with its field),
    the tables. For the players, secret rows and GM notes are not in it at all (``for_audience``)."""
    graph = relationship_graph(document, schema, audience)
    tables = [PC_TABLE, *(t for t, rows in document["world"].items() if rows and t not in RELATIONSHIP_TYPES)]
    nodes = [
        {"id": n.id, "t": tables.index(n.table), "k": n.key, "l": n.label, "f": _shown_fields(n.row)}
        for n in graph.nodes.values()
    ]
    index = {n["id"]: i for i, n in enumerate(nodes)}
    references = reference_fields(schema)
    edges: list[dict[str, Any]] = []
    for e in graph.edges:
        edge: dict[str, Any] = {"s": index[e.source], "t": index[e.target], "l": e.label, "f": e.field}
        if e.relationship is not None:
            row = e.relationship
            edge["k"] = row["key"]
            edge["d"] = _shown_fields(row)
            # the row's references beyond its two ends (the temple of a worship), as links
            further = [
                [name.removesuffix("_key").replace("_", " "), index[node_id(target, row[name])]]
                for name, target in references[e.field].items()
                if row.get(name) is not None and node_id(target, row[name]) in index
            ]
            edge["x"] = [[name, other] for name, other in further if other not in (edge["s"], edge["t"])]
        edges.append(edge)
    # the legend's groups: the kinds each phase makes ("Core world systems"...), in the tables' order
    phase_of = {table: phase.name for phase in PHASES for table in phase.tables}
    groups: dict[str, list[int]] = {"Player characters": [0]}
    for number, table in enumerate(tables[1:], start=1):
        groups.setdefault(phase_of.get(table, "Other"), []).append(number)
    campaign = document["campaign"]
    generations = document["generations"]
    return {
        "campaign": {"name": campaign["name"], "setting": campaign["setting"], "tone": campaign["tone"]},
        "audience": audience,
        "models": sorted({g["model_provider"] for g in generations}),
        "cost": round(sum(float(g.get("total_cost_usd") or 0) for g in generations), 6),
        "tables": tables,
        "groups": [[name, kinds] for name, kinds in groups.items()],
        "nodes": nodes,
        "edges": edges,
    }


def _asset(name: str) -> str:
    return resources.files("worldgen.tools.export").joinpath("report", name).read_text()


def html_report(document: Mapping[str, Any], schema: Mapping[str, Any], audience: str = GM) -> str:
    data = json.dumps(report_data(document, schema, audience), ensure_ascii=False, separators=(",", ":"))
    # Inside <script>, only "</" can end the element early; JSON allows "<\/" for it.
    data = data.replace("</", "<\\/")
    return (
        _asset("report.html")
        .replace("{{TITLE}}", html.escape(document["campaign"]["name"]))
        .replace("{{STYLE}}", _asset("report.css"))
        .replace("{{LAYOUT}}", inline_scripts())
        .replace("{{SCRIPT}}", _asset("report.js"))
        .replace("{{DATA}}", data)
    )
