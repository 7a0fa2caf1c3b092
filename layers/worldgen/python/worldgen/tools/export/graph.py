"""The world as a graph: a node per row (player characters and world rows), an edge per reference.

Built from an export document and the export schema alone, so the Markdown vault and the HTML
report need no database. A relationship row of phase 3C (an NPC's tie to a place) is a row like
any other: a node with an edge to each end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from worldgen.tools.export.world import PC_TABLE, reference_fields

_NOT_WORLD = frozenset({"generations"})  # the audit, not part of the world's web


@dataclass(frozen=True)
class Node:
    id: str  # "<table>/<key>": unique across tables
    table: str
    key: str
    label: str
    row: Mapping[str, Any]


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    field: str


@dataclass
class WorldGraph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def neighbours(self, node_id: str) -> list[tuple[Edge, str]]:
        """(edge, the node at its other end), outgoing references first."""
        outgoing = [(e, e.target) for e in self.edges if e.source == node_id]
        incoming = [(e, e.source) for e in self.edges if e.target == node_id]
        return outgoing + incoming

    def connected(self, node_id: str, hops: int = 2) -> list[str]:
        """Every node within ``hops`` links, nearest first (what a PC's page lists)."""
        adjacency: dict[str, list[str]] = {}
        for edge in self.edges:
            adjacency.setdefault(edge.source, []).append(edge.target)
            adjacency.setdefault(edge.target, []).append(edge.source)
        seen, frontier, found = {node_id}, [node_id], []
        for _ in range(hops):
            following = []
            for current in frontier:
                for other in adjacency.get(current, []):
                    if other not in seen:
                        seen.add(other)
                        following.append(other)
                        found.append(other)
            frontier = following
        return found


def node_id(table: str, key: str) -> str:
    return f"{table}/{key}"


def label(row: Mapping[str, Any]) -> str:
    return str(row.get("name") or row.get("key"))


def world_graph(document: Mapping[str, Any], schema: Mapping[str, Any]) -> WorldGraph:
    graph = WorldGraph()
    for pc in document["player_characters"]:
        graph.nodes[node_id(PC_TABLE, pc["key"])] = Node(
            node_id(PC_TABLE, pc["key"]), PC_TABLE, pc["key"], label(pc), pc
        )
    for table, rows in document["world"].items():
        for row in rows:
            graph.nodes[node_id(table, row["key"])] = Node(
                node_id(table, row["key"]), table, row["key"], label(row), row
            )
    for table, references in reference_fields(schema).items():
        for row in document["world"].get(table, []):
            for name, target in references.items():
                if target not in _NOT_WORLD and row.get(name) is not None:
                    graph.edges.append(Edge(node_id(table, row["key"]), node_id(target, row[name]), name))
    return graph
