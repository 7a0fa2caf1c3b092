"""Continuity: what a game master would trip over at the table, found in a world's rows (issue 24).

Four rules, each finding naming its rows (table, key) and saying in a sentence what is wrong:
- ``level-band``: a quest hook or encounter meant for a level more than LEVEL_BAND from the party's
  average level;
- ``name-clash``: two rows of the world with the same name (case-insensitive, across tables), or a row
  named like a player character;
- ``region-mismatch``: a location whose region is neither its parent location's region nor inside it;
- ``foreign-temple``: a temple whose deity's pantheon belongs to a culture of a region that is neither
  the temple's region nor one containing it (when both are known).

The rules read a world by key (``KeyWorld``: references as the tool's ``*_key`` properties), so the
same code checks a saved world (``worldgen audit``) and a phase's answer before it is saved (the
rules a setting makes repairable, ``Settings.continuity_repair``). Findings are advisory: a world
with findings still succeeds.
"""

from __future__ import annotations

import statistics
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from worldgen.db.catalog import foreign_key_edges
from worldgen.db.problems import Problem
from worldgen.db.rows import campaign_rows
from worldgen.phases import WORLD_TABLES

LEVEL_BAND = 3  # levels from the party's average a quest or encounter may be meant for
RULES: tuple[str, ...] = ("level-band", "name-clash", "region-mismatch", "foreign-temple")
LEVELED_TABLES = ("quest_hooks", "encounters")
ROW_WORDS = {
    "quest_hooks": "quest hook",
    "encounters": "encounter",
    "locations": "location",
    "temples": "temple",
    "player_characters": "player character",
}

KeyWorld = dict[str, dict[str, dict[str, Any]]]  # table -> key -> row, references by key


@dataclass(frozen=True)
class Finding:
    """A continuity finding: the rule, the rows it concerns (table, key) and what a GM reads."""

    rule: str
    rows: tuple[tuple[str, str], ...]
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "rows": [{"table": t, "key": k} for t, k in self.rows], "message": self.message}

    def render(self) -> str:
        return f"[{self.rule}] {', '.join(f'{t}/{k}' for t, k in self.rows)}: {self.message}"


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    """Findings per rule, every rule present."""
    found = dict.fromkeys(RULES, 0)
    for finding in findings:
        found[finding.rule] += 1
    return found


def findings(world: KeyWorld, party: list[dict[str, Any]]) -> list[Finding]:
    """Every finding of ``world`` for ``party`` (player characters: key, name, level)."""
    return [*_level_band(world, party), *_name_clash(world, party), *_region_mismatch(world), *_foreign_temple(world)]


def _name(world: KeyWorld, table: str, key: str | None) -> str:
    row = world.get(table, {}).get(key or "")
    return str(row.get("name") or key) if row else str(key)


def _level_band(world: KeyWorld, party: list[dict[str, Any]]) -> list[Finding]:
    levels = [int(pc["level"]) for pc in party if isinstance(pc.get("level"), int)]
    if not levels:
        return []
    average = statistics.fmean(levels)
    found = []
    for table in LEVELED_TABLES:
        for key, row in world.get(table, {}).items():
            level = row.get("recommended_level")
            if isinstance(level, int) and abs(level - average) > LEVEL_BAND:
                found.append(
                    Finding(
                        "level-band",
                        ((table, key),),
                        f"{_name(world, table, key)} ({ROW_WORDS[table]}) is meant for level {level}, but the party's"
                        f" average level is {average:g}: more than {LEVEL_BAND} levels apart.",
                    )
                )
    return found


def _name_clash(world: KeyWorld, party: list[dict[str, Any]]) -> list[Finding]:
    named: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for table in WORLD_TABLES:
        for key, row in world.get(table, {}).items():
            name = row.get("name")
            if isinstance(name, str) and name.strip():
                named[name.strip().casefold()].append((table, key))
    found = []
    pcs = {str(pc["name"]).strip().casefold(): pc for pc in party if pc.get("name")}
    for folded, rows in named.items():
        name = _name(world, *rows[0])
        if folded in pcs:
            found.append(
                Finding(
                    "name-clash",
                    (("player_characters", str(pcs[folded]["key"])), *rows),
                    f"{name} is the name of a player character, and also of "
                    + _kinds(rows)
                    + ": players will take one for the other.",
                )
            )
        elif len(rows) > 1:
            found.append(
                Finding(
                    "name-clash",
                    tuple(rows),
                    f"{len(rows)} rows are named {name} ({_kinds(rows)}): at the table nobody can tell them apart.",
                )
            )
    return found


def _kinds(rows: list[tuple[str, str]]) -> str:
    return ", ".join(f"{ROW_WORDS.get(t, t.rstrip('s').replace('_', ' '))} {k}" for t, k in rows)


def _region_of_place(world: KeyWorld, location: str | None) -> tuple[str | None, str | None]:
    """The region of a location, or of the nearest place containing it that has one, and that place."""
    seen: set[str] = set()
    while location and location not in seen:
        seen.add(location)
        row = world.get("locations", {}).get(location)
        if row is None:
            return None, None
        if row.get("region_key"):
            return str(row["region_key"]), location
        location = row.get("parent_location_key")
    return None, None


def within(parents: Mapping[str, str | None], region: str, container: str) -> bool:
    """``region`` is ``container`` or lies inside it, through the regions' ``parents`` (region ->
    parent region); the offline model places its rows by the same rule."""
    seen: set[str] = set()
    current: str | None = region
    while current and current not in seen:
        if current == container:
            return True
        seen.add(current)
        current = parents.get(current)
    return False


def _inside(world: KeyWorld, region: str, container: str) -> bool:
    """``region`` is ``container`` or lies inside it (through the world's regions' parents)."""
    parents = {key: row.get("parent_region_key") for key, row in world.get("geography_regions", {}).items()}
    return within(parents, region, container)


def _region_mismatch(world: KeyWorld) -> list[Finding]:
    found = []
    for key, row in world.get("locations", {}).items():
        region, parent = row.get("region_key"), row.get("parent_location_key")
        if not region or not parent:
            continue
        parent_region, holder = _region_of_place(world, parent)
        if parent_region is None or _inside(world, region, parent_region):
            continue
        rows: tuple[tuple[str, str], ...] = (("locations", key), ("locations", str(parent)))
        found.append(
            Finding(
                "region-mismatch",
                rows,
                f"{_name(world, 'locations', key)} lies in {_name(world, 'geography_regions', region)}, but it belongs"
                f" to {_name(world, 'locations', parent)}, which lies in"
                f" {_name(world, 'geography_regions', parent_region)}"
                + (f" (through {_name(world, 'locations', holder)})" if holder != parent else "")
                + ", and the one is not part of the other.",
            )
        )
    return found


def _foreign_temple(world: KeyWorld) -> list[Finding]:
    found = []
    for key, temple in world.get("temples", {}).items():
        deity_key = temple.get("deity_key")
        deity = world.get("deities", {}).get(deity_key or "", {})
        pantheon = world.get("pantheons", {}).get(deity.get("pantheon_key") or "", {})
        culture_key = pantheon.get("culture_key")
        culture_region = world.get("cultures", {}).get(culture_key or "", {}).get("region_key")
        temple_region, _ = _region_of_place(world, temple.get("location_key"))
        if not culture_region or not temple_region or _inside(world, temple_region, culture_region):
            continue
        found.append(
            Finding(
                "foreign-temple",
                (("temples", key), ("deities", str(deity_key))),
                f"{_name(world, 'temples', key)} serves {_name(world, 'deities', deity_key)} of the pantheon"
                f" {_name(world, 'pantheons', deity.get('pantheon_key'))}, worshipped by"
                f" {_name(world, 'cultures', culture_key)} of {_name(world, 'geography_regions', culture_region)},"
                f" but the temple stands in {_name(world, 'geography_regions', temple_region)}, outside it:"
                " who built it, and who prays there?",
            )
        )
    return found


# -- reading a world ---------------------------------------------------------------------------


def by_key(
    rows: Mapping[str, list[dict[str, Any]]], edges: Iterable[tuple[str, str, str]], id_to_key: Mapping[str, str]
) -> KeyWorld:
    """Rows as stored (ids) as a KeyWorld: each foreign key ``x_id`` becomes ``x_key`` with the key."""
    references: dict[str, list[str]] = defaultdict(list)
    for table, column, _ref in edges:
        if column.endswith("_id") and column not in ("campaign_id", "generation_id"):
            references[table].append(column)
    world: KeyWorld = {}
    for table, table_rows in rows.items():
        world[table] = {}
        for row in table_rows:
            keyed = {c: v for c, v in row.items() if c not in references[table]}
            for column in references[table]:
                value = row.get(column)
                keyed[column[: -len("_id")] + "_key"] = id_to_key.get(str(value)) if value is not None else None
            world[table][row["key"]] = keyed
    return world


def load_world(conn: psycopg.Connection[Any], campaign_id: uuid.UUID | str) -> tuple[KeyWorld, list[dict[str, Any]]]:
    """The campaign's world by key, and its party (key, name, level)."""
    found = campaign_rows(conn, campaign_id, list(WORLD_TABLES))
    party = [
        dict(r)
        for r in conn.execute(
            "SELECT id, key, name, level FROM player_characters WHERE campaign_id = %s ORDER BY key",
            (str(campaign_id),),
        )
    ]
    id_to_key = {str(r["id"]): r["key"] for rows in found.values() for r in rows}
    id_to_key.update({str(pc["id"]): pc["key"] for pc in party})
    world = by_key(found, foreign_key_edges(conn), id_to_key)
    return world, [{k: pc[k] for k in ("key", "name", "level")} for pc in party]


def with_answer(world: KeyWorld, answer: Mapping[str, Any], tables: Iterable[str]) -> KeyWorld:
    """``world`` with ``tables`` as a phase's answer writes them (its rows replace the saved ones)."""
    merged = dict(world)
    for table in tables:
        rows = answer.get(table)
        merged[table] = {
            str(r["key"]): r for r in rows or [] if isinstance(rows, list) and isinstance(r, dict) and r.get("key")
        }
    return merged


def answer_problems(
    world: KeyWorld, party: list[dict[str, Any]], answer: Mapping[str, Any], tables: tuple[str, ...], rules: set[str]
) -> list[Problem]:
    """The findings of ``rules`` that a phase writing ``tables`` with ``answer`` can repair, as problems
    of its own rows: each goes to the last row of the answer it names (a clash with an earlier row is
    the new row's to fix, and of two new rows the second one's)."""
    if not rules:
        return []
    problems = []
    for finding in findings(with_answer(world, answer, tables), party):
        own = [(t, k) for t, k in finding.rows if t in tables]
        if finding.rule in rules and own:
            table, key = own[-1]
            problems.append(Problem(table, f"continuity ({finding.rule}): {finding.message} Change this row.", key=key))
    return problems
