"""The relationships of ``infra/hasura/metadata``, derived from the catalog's foreign keys.

Every foreign key ``source.<role>_id -> target`` gives two relationships:

- an **object relationship** on ``source`` named ``<role>`` (the column without ``_id``):
  ``ruler_entity_id`` -> ``ruler_entity``;
- an **array relationship** on ``target`` named by :func:`array_relationship_name`: after the
  source table when the column only names the target (``buildings.location_id`` ->
  ``locations.buildings``), after what the link means when the column qualifies it
  (``locations.ruler_entity_id`` -> ``entities.ruled_locations``).

``worldgen hasura-metadata`` rewrites only the relationship keys of each table file; permissions
and everything else in the files are kept as they are.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from worldgen.repository.paths import REPO_ROOT

TABLES_DIR = REPO_ROOT / "infra" / "hasura" / "metadata" / "databases" / "default" / "tables"

# What a qualified foreign key makes of the rows that point at the target, keyed by the qualifier
# (the column's words before the target's own name). {table}: the source table; {rest}: the source
# table without a leading "<target>_" ("location_connections" -> "connections").
ROLE_NAMES = {
    "boss": "boss_of_{table}",  # dungeons.boss_entity_id -> entities.boss_of_dungeons
    "builder": "built_{table}",
    "controlling": "controlled_{table}",
    "from": "outgoing_{rest}",
    "high_priest": "high_priest_of_{table}",
    "home": "native_{table}",
    "homeland": "native_{table}",
    "loot": "loot_in_{table}",
    "made_for": "{table}_made_for",
    "origin": "originating_{table}",
    "other": "related_by",
    "owner": "owned_{table}",
    "parent": "child_{table}",
    "power_source": "powered_{table}",
    "primary": "primary_in_{table}",
    "quest_giver": "given_{table}",
    "related": "related_by",
    "required": "required_by_{table}",
    "reward": "rewarded_{table}",
    "ruler": "ruled_{table}",
    "to": "incoming_{rest}",
}


class UnnamedRelationship(ValueError):
    """A foreign key column whose qualifier has no entry in ROLE_NAMES."""


def singular(table: str) -> str:
    if table.endswith("ies"):
        return table[:-3] + "y"
    if table.endswith("sses"):
        return table[:-2]
    return table.removesuffix("s")


def qualifier(column: str, target: str) -> str:
    """The words of ``column`` (without ``_id``) before the target's name: ``ruler`` of ``ruler_entity_id``.

    The target's name may be shortened to its last words (``origin_region_id`` -> geography_regions).
    Empty when the column only names the target (``entity_id``, ``region_id``).
    """
    role = column.removesuffix("_id").split("_")
    noun = singular(target).split("_")
    shared = 0
    while shared < min(len(role), len(noun)) and role[-1 - shared] == noun[-1 - shared]:
        shared += 1
    if shared == 0:
        raise UnnamedRelationship(f"{column} -> {target}: the column does not end with the target's name")
    return "_".join(role[: len(role) - shared])


def array_relationship_name(source: str, column: str, target: str, *, links_to_target: int = 1) -> str:
    """The array relationship on ``target`` for the foreign key ``source.column -> target``.

    ``links_to_target``: how many foreign keys ``source`` has to ``target``; when several, a plain
    column's relationship drops the ``<target>_`` prefix (``entity_relationships.entity_id`` ->
    ``entities.relationships``, beside ``related_by``).
    """
    rest = source.removeprefix(singular(target) + "_")
    role = qualifier(column, target)
    if not role:
        return rest if links_to_target > 1 else source
    if role not in ROLE_NAMES:
        raise UnnamedRelationship(f"{source}.{column} -> {target}: no name for the role {role!r}; add it to ROLE_NAMES")
    return ROLE_NAMES[role].format(table=source, rest=rest)


def object_relationship_name(column: str) -> str:
    return column.removesuffix("_id")


def relationships(edges: Iterable[tuple[str, str, str]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Table -> {"object_relationships": [...], "array_relationships": [...]}, each sorted by name."""
    edges = sorted(edges)
    links = Counter((source, target) for source, _, target in edges)
    tables: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for source, column, target in edges:
        tables.setdefault(source, {}).setdefault("object_relationships", []).append(
            {"name": object_relationship_name(column), "using": {"foreign_key_constraint_on": column}}
        )
        name = array_relationship_name(source, column, target, links_to_target=links[(source, target)])
        tables.setdefault(target, {}).setdefault("array_relationships", []).append(
            {
                "name": name,
                "using": {
                    "foreign_key_constraint_on": {"column": column, "table": {"name": source, "schema": "public"}}
                },
            }
        )
    for kinds in tables.values():
        for rels in kinds.values():
            rels.sort(key=lambda rel: rel["name"])
    return tables


class _Dumper(yaml.SafeDumper):
    """Block lists indented under their key, as the Hasura CLI exports them."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def dump(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


def with_relationships(document: dict[str, Any], rels: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The table document with its relationship keys replaced, in Hasura's key order."""
    rest = {k: v for k, v in document.items() if k not in ("table", "object_relationships", "array_relationships")}
    out: dict[str, Any] = {"table": document["table"]}
    for kind in ("object_relationships", "array_relationships"):
        if rels.get(kind):
            out[kind] = rels[kind]
    return out | rest


def write(edges: Iterable[tuple[str, str, str]], tables_dir: Path = TABLES_DIR) -> list[Path]:
    """Rewrite the relationships of every tracked table file; returns the files that changed."""
    derived = relationships(edges)
    changed = []
    for path in sorted(tables_dir.glob("public_*.yaml")):
        document = yaml.safe_load(path.read_text())
        text = dump(with_relationships(document, derived.get(document["table"]["name"], {})))
        if text != path.read_text():
            path.write_text(text)
            changed.append(path)
    return changed
