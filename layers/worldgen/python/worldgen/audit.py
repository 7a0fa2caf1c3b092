"""worldgen audit: how well a generated world meets the quality bar (issue 11).

PC coverage (links per player character, by kind), orphans (rows nothing refers to and that refer to
nothing), NPC load (roles per NPC outside the relationship tables), relationship density,
description lengths, the rows partial success dropped, and continuity findings (``worldgen.continuity``:
level-band, name-clash, region-mismatch, foreign-temple). Everything is derived from the catalog's
foreign keys, so a new table is audited without a change here.
"""

from __future__ import annotations

import statistics
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from worldgen import continuity
from worldgen.continuity import Finding
from worldgen.db.catalog import foreign_key_edges
from worldgen.db.rows import campaign_rows
from worldgen.errors import CampaignNotFound
from worldgen.phases import RELATIONSHIP_TABLES, WORLD_TABLES
from worldgen.roles import ROLE_LIMIT

# What a reference to a table counts as, for a player character's links.
KIND_OF_TABLE = {
    "entities": "npc",
    "locations": "place",
    "dungeons": "place",
    "buildings": "place",
    "items": "item",
    "quest_hooks": "quest",
    "factions": "faction",
}
KINDS = ("npc", "place", "item", "quest", "faction")
REQUIRED_KINDS = ("npc", "place", "quest")  # the target: every PC has at least one of each
SHORT_DESCRIPTION = 80
CONTINUITY_LISTED = 20  # findings listed in the text report; --json has them all


@dataclass
class Audit:
    campaign_id: str
    generation_id: str | None
    pc_links: dict[str, dict[str, int]] = field(default_factory=dict)  # pc key -> kind -> links
    orphans: list[tuple[str, str]] = field(default_factory=list)  # (table, key)
    npc_roles: dict[str, int] = field(default_factory=dict)  # npc key -> roles outside 3C
    relationship_rows: int = 0
    entity_rows: int = 0
    world_rows: int = 0
    descriptions: dict[str, float] = field(default_factory=dict)
    dropped_rows: list[dict[str, str]] = field(default_factory=list)
    continuity: list[Finding] = field(default_factory=list)  # advisory: a world with findings succeeds

    @property
    def pcs_fully_linked(self) -> int:
        return sum(all(links.get(k, 0) for k in REQUIRED_KINDS) for links in self.pc_links.values())

    @property
    def overloaded_npcs(self) -> dict[str, int]:
        return {npc: n for npc, n in sorted(self.npc_roles.items()) if n > ROLE_LIMIT}

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "continuity": [f.as_dict() for f in self.continuity],
            "continuity_counts": continuity.counts(self.continuity),
            "pcs_fully_linked": self.pcs_fully_linked,
            "overloaded_npcs": self.overloaded_npcs,
            "relationships_per_npc": round(self.relationship_rows / max(1, self.entity_rows), 2),
        }

    def render(self) -> str:
        lines = [
            "  audit:",
            f"    PCs with an NPC, a place and a quest: {self.pcs_fully_linked}/{len(self.pc_links)}",
        ]
        for pc, links in sorted(self.pc_links.items()):
            counts = ", ".join(f"{kind} {links.get(kind, 0)}" for kind in KINDS)
            missing = [k for k in REQUIRED_KINDS if not links.get(k)]
            lines.append(f"      {pc}: {counts}" + (f"  (missing: {', '.join(missing)})" if missing else ""))
        lines.append(f"    orphans: {len(self.orphans)}" + _listing(f"{t}/{k}" for t, k in self.orphans))
        overloaded = self.overloaded_npcs
        busiest = max(self.npc_roles.values(), default=0)
        lines.append(
            f"    NPCs with more than {ROLE_LIMIT} roles: {len(overloaded)} (busiest: {busiest})"
            + _listing(f"{npc} {n}" for npc, n in overloaded.items())
        )
        lines.append(
            f"    relationships: {self.relationship_rows} rows, {self.relationship_rows / max(1, self.entity_rows):.1f}"
            f" per NPC, {self.relationship_rows / max(1, self.world_rows - self.relationship_rows):.2f} per world row"
        )
        if self.descriptions:
            d = self.descriptions
            lines.append(
                f"    descriptions: {int(d['count'])}, chars min {int(d['min'])} / median {int(d['median'])}"
                f" / max {int(d['max'])}, under {SHORT_DESCRIPTION}: {int(d['short'])}"
            )
        lines.append(f"    dropped rows: {len(self.dropped_rows)}")
        lines += [f"      {d['phase']} {d['table']}/{d['key']}: {d['reason']}" for d in self.dropped_rows]
        per_rule = ", ".join(f"{rule} {n}" for rule, n in continuity.counts(self.continuity).items())
        lines.append(f"    continuity: {len(self.continuity)} finding(s) ({per_rule})")
        lines += [f"      {f.render()}" for f in self.continuity[:CONTINUITY_LISTED]]
        if len(self.continuity) > CONTINUITY_LISTED:
            lines.append(f"      (+{len(self.continuity) - CONTINUITY_LISTED} more: worldgen audit --json lists all)")
        return "\n".join(lines)


def _listing(items: Any, limit: int = 8) -> str:
    shown = list(items)
    if not shown:
        return ""
    more = f" (+{len(shown) - limit} more)" if len(shown) > limit else ""
    return " (" + ", ".join(shown[:limit]) + ")" + more


def latest_generation(conn: psycopg.Connection[Any]) -> str | None:
    row = conn.execute("SELECT id FROM generations ORDER BY started_at DESC LIMIT 1").fetchone()
    return str(row["id"]) if row else None


def audit_world(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str) -> Audit:
    """The audit of the world of ``generation_id``'s campaign, and of what that generation dropped."""
    generation = conn.execute("SELECT id, campaign_id FROM generations WHERE id = %s", (str(generation_id),)).fetchone()
    if generation is None:
        raise CampaignNotFound(f"generation {generation_id} does not exist")
    campaign_id = str(generation["campaign_id"])
    report = Audit(campaign_id=campaign_id, generation_id=str(generation["id"]))

    rows = campaign_rows(conn, campaign_id, list(WORLD_TABLES))
    pcs = {
        str(r["id"]): r["key"]
        for r in conn.execute("SELECT id, key FROM player_characters WHERE campaign_id = %s", (campaign_id,))
    }
    report.pc_links = {key: {} for key in sorted(pcs.values())}
    edges = [
        (t, c, ref)
        for t, c, ref in foreign_key_edges(conn)
        if t in rows and (ref in rows or ref == "player_characters")
    ]
    by_table_column: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for table, column, ref in edges:
        by_table_column[table].append((column, ref))

    referenced: Counter[str] = Counter()
    roles: Counter[str] = Counter()
    refers: set[tuple[str, str]] = set()
    for table, table_rows in rows.items():
        for row in table_rows:
            targets = [(column, ref, row.get(column)) for column, ref in by_table_column[table] if row.get(column)]
            if targets:
                refers.add((table, str(row["id"])))
            for _column, ref, value in targets:
                referenced[str(value)] += 1
                if ref == "entities" and table not in RELATIONSHIP_TABLES:
                    roles[str(value)] += 1
                if ref == "player_characters" and str(value) in pcs:
                    _count_pc_link(report, pcs[str(value)], table, targets)

    keys = {str(r["id"]): r["key"] for table_rows in rows.values() for r in table_rows}
    report.npc_roles = {keys[i]: n for i, n in roles.items() if i in keys}
    report.orphans = sorted(
        (table, r["key"])
        for table, table_rows in rows.items()
        for r in table_rows
        if (table, str(r["id"])) not in refers and str(r["id"]) not in referenced
    )
    report.relationship_rows = sum(len(rows[t]) for t in RELATIONSHIP_TABLES)
    report.entity_rows = len(rows["entities"])
    report.world_rows = sum(len(r) for r in rows.values())
    lengths = [len(r["description"]) for t in rows.values() for r in t if isinstance(r.get("description"), str)]
    if lengths:
        report.descriptions = {
            "count": len(lengths), "min": min(lengths), "median": statistics.median(lengths), "max": max(lengths),
            "short": sum(n < SHORT_DESCRIPTION for n in lengths),
        }  # fmt: skip
    for run in conn.execute(
        "SELECT phase, dropped_rows FROM phase_runs WHERE generation_id = %s ORDER BY phase", (str(generation["id"]),)
    ):
        report.dropped_rows += [{"phase": run["phase"], **d} for d in run["dropped_rows"] or []]
    world, party = continuity.load_world(conn, campaign_id)
    report.continuity = continuity.findings(world, party)
    conn.commit()
    return report


def _count_pc_link(report: Audit, pc: str, table: str, targets: list[tuple[str, str, Any]]) -> None:
    links = report.pc_links.setdefault(pc, {})
    if table in RELATIONSHIP_TABLES:  # pc_connections: the kind of its one target
        kinds = [KIND_OF_TABLE[ref] for _, ref, _ in targets if ref in KIND_OF_TABLE]
    else:
        kinds = [KIND_OF_TABLE[table]] if table in KIND_OF_TABLE else []
    for kind in kinds:
        links[kind] = links.get(kind, 0) + 1
