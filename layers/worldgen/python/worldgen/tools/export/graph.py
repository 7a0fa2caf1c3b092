"""The world as a graph, built from an export document and the export schema alone (no database).

Two pictures of the same rows:

- ``world_graph`` (the Markdown vault): a node per row, an edge per reference. A relationship row
  of phase 3C (an NPC's tie to a place) is a row like any other: a node with an edge to each end.
- ``relationship_graph`` (the HTML report): a node per thing of the world (a player character, a
  world row that is not a relationship), and a relationship row is an *edge* between the two rows
  it ties, labelled with its type (rival, member, owes a debt...); a reference between rows (an
  NPC's faction, a location's parent) is an edge too, of the other kind. It is built for an
  audience: the players' picture has neither the secret rows nor the GM's notes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from worldgen.tools.export.world import PC_TABLE, reference_fields

_NOT_WORLD = frozenset({"generations"})  # the audit, not part of the world's web

# The relationship tables (phase 3C's): table -> (the field naming the tie, the word when it is empty).
# A row's two ends are its first two references in schema order (an NPC and the deity it worships;
# a further one, the temple, is a detail of the edge). A pc_connection names exactly one target.
RELATIONSHIP_TYPES: dict[str, tuple[str, str]] = {
    "entity_relationships": ("relationship_type", "related"),
    "entity_locations": ("role", "at"),
    "entity_factions": ("rank", "member"),
    "entity_items": ("relation", "has"),
    "entity_deities": ("devotion", "worships"),
    "faction_relationships": ("stance", "relation"),
    "faction_locations": ("presence", "present"),
    "location_connections": ("route_type", "route"),
    "quest_hook_entities": ("role", "involved"),
    "quest_hook_locations": ("role", "set in"),
    "pc_connections": ("connection_type", "connection"),
}

# Who a picture is for: the game master sees everything; the players' copy leaves out, from the data
# itself, every row marked secret and every GM-only field (not merely hidden by the page).
GM = "gm"
PLAYERS = "players"
AUDIENCES = (GM, PLAYERS)
SECRET_FIELD = "is_secret"
GM_ONLY_FIELDS = frozenset({"gm_notes"})


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
    field: str  # the reference field, or the relationship table of a relationship row
    label: str = ""  # what the edge says: "rival", "member", "faction"
    relationship: Mapping[str, Any] | None = None  # the relationship row an edge stands for


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


def for_audience(document: Mapping[str, Any], audience: str) -> Mapping[str, Any]:
    """The document as ``audience`` may see it: for the players, without the rows whose
    ``is_secret`` is true, and without any GM-only field or the ``is_secret`` flag itself (where a
    table has them)."""
    if audience not in AUDIENCES:
        raise ValueError(f"unknown audience {audience!r}: one of {', '.join(AUDIENCES)}")
    if audience == GM:
        return document

    def public(row: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if k not in GM_ONLY_FIELDS and k != SECRET_FIELD}

    def shown(rows: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return [public(row) for row in rows if row.get(SECRET_FIELD) is not True]

    return {
        **document,
        "campaign": public(document["campaign"]),
        "player_characters": shown(document["player_characters"]),
        "world": {table: shown(rows) for table, rows in document["world"].items()},
    }


def relationship_label(table: str, row: Mapping[str, Any]) -> str:
    field_name, empty = RELATIONSHIP_TYPES[table]
    return str(row.get(field_name) or empty).replace("_", " ")


def relationship_graph(document: Mapping[str, Any], schema: Mapping[str, Any], audience: str = GM) -> WorldGraph:
    """Things as nodes; relationship rows and references as labelled edges (see the module doc).

    An edge whose end the audience does not see (a secret row) is left out with it."""
    document = for_audience(document, audience)
    references = reference_fields(schema)
    graph = WorldGraph()
    for pc in document["player_characters"]:
        graph.nodes[node_id(PC_TABLE, pc["key"])] = Node(
            node_id(PC_TABLE, pc["key"]), PC_TABLE, pc["key"], label(pc), pc
        )
    for table, rows in document["world"].items():
        if table not in RELATIONSHIP_TYPES:
            for row in rows:
                graph.nodes[node_id(table, row["key"])] = Node(
                    node_id(table, row["key"]), table, row["key"], label(row), row
                )
    for table, rows in document["world"].items():
        fields = {name: target for name, target in references[table].items() if target not in _NOT_WORLD}
        for row in rows:
            ends = [(name, node_id(target, row[name])) for name, target in fields.items() if row.get(name) is not None]
            if table in RELATIONSHIP_TYPES:
                if len(ends) >= 2 and ends[0][1] in graph.nodes and ends[1][1] in graph.nodes:
                    graph.edges.append(
                        Edge(ends[0][1], ends[1][1], table, relationship_label(table, row), relationship=row)
                    )
                continue
            source = node_id(table, row["key"])
            for name, target in ends:
                if target in graph.nodes:
                    graph.edges.append(Edge(source, target, name, name.removesuffix("_key").replace("_", " ")))
    return graph
