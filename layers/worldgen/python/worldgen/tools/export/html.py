"""One self-contained HTML file: PC pages, searchable tables, and an interactive relationship graph.

No CDN and no third-party JavaScript: the page is ``report/report.html`` with its stylesheet, its
script (a small force-directed layout drawn in SVG) and the world's data inlined, so it opens from
a file, offline, anywhere.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

from worldgen.tools.export.graph import world_graph
from worldgen.tools.export.world import PC_TABLE


def report_data(document: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """What the page's script reads: nodes (with their fields), edges, the PCs and the tables."""
    graph = world_graph(document, schema)
    tables = [PC_TABLE, *(t for t, rows in document["world"].items() if rows)]
    nodes = [
        {
            "id": n.id,
            "t": tables.index(n.table),
            "k": n.key,
            "l": n.label,
            "f": {
                k: v
                for k, v in n.row.items()
                if k not in ("key", "name", "created_at") and not k.endswith("_key") and v not in (None, "", [], {})
            },
        }
        for n in graph.nodes.values()
    ]
    index = {n["id"]: i for i, n in enumerate(nodes)}
    edges = [[index[e.source], index[e.target], e.field.removesuffix("_key")] for e in graph.edges]
    campaign = document["campaign"]
    generations = document["generations"]
    return {
        "campaign": {"name": campaign["name"], "setting": campaign["setting"], "tone": campaign["tone"]},
        "models": sorted({g["model_provider"] for g in generations}),
        "cost": round(sum(float(g.get("total_cost_usd") or 0) for g in generations), 6),
        "tables": tables,
        "nodes": nodes,
        "edges": edges,
    }


def _asset(name: str) -> str:
    return resources.files("worldgen.tools.export").joinpath("report", name).read_text()


def html_report(document: Mapping[str, Any], schema: Mapping[str, Any]) -> str:
    data = json.dumps(report_data(document, schema), ensure_ascii=False, separators=(",", ":"))
    # Inside <script>, only "</" can end the element early; JSON allows "<\/" for it.
    data = data.replace("</", "<\\/")
    return (
        _asset("report.html")
        .replace("{{TITLE}}", html.escape(document["campaign"]["name"]))
        .replace("{{STYLE}}", _asset("report.css"))
        .replace("{{SCRIPT}}", _asset("report.js"))
        .replace("{{DATA}}", data)
    )
