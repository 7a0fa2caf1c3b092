"""phase_context: what a phase is told about the world generated so far, within a token budget.

The sentences it is told in are in ``prompts/context.toml``."""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from worldgen import prompts
from worldgen.continuity import LEVEL_BAND, LEVELED_TABLES
from worldgen.db.rows import campaign_rows
from worldgen.db.save import rows_kept_on_regeneration
from worldgen.errors import CampaignNotFound
from worldgen.phases import ALL_PHASES, RELATIONSHIP_TABLES, Phase, ancestors
from worldgen.schema.spec import ColumnSpec, TableSpec

CHARS_PER_TOKEN = 4
FACTS_SHARE = 0.1  # of a context's budget, at most, for the region facts that displace rows
SUMMARY_CHARS = 160
# A table is told as a header of its columns, then one row per line of its values only: the names
# and quotes a JSON object repeats on every row were about a third of a row's characters.
CELL_SEPARATOR = " | "
EMPTY_CELL = "-"
_ESCAPED = re.compile(r"[\\|]")  # a backslash or a bar in a value, escaped so a cell cannot end early
_LINE_BREAK = re.compile(r"\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")  # whatever str.splitlines splits on
PC_COLUMNS = ("key", "name", "race", "character_class", "level", "backstory", "goals")  # load_player_characters


@dataclass
class PhaseContext:
    phase: str
    campaign: dict[str, Any]
    player_characters: list[dict[str, Any]]
    rows: dict[str, list[dict[str, Any]]]  # compact rows per dependency table, within the budget
    keys: dict[str, list[str]]  # every key per table a reference may name (never cut by the budget)
    omitted: dict[str, int] = field(default_factory=dict)
    # Rows of the phase's own tables a regeneration keeps (locked by the game master, or tied to a
    # locked row): the model must not recreate them or reuse their keys, and may refer to them.
    kept: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    omitted_keys: dict[str, list[str]] = field(default_factory=dict)  # the rows left out, by table
    npc_roles: dict[str, int] = field(default_factory=dict)  # every NPC's roles so far, by key (none cut)
    # Facts the continuity rules (worldgen.continuity) need, from every row (none cut for length), told
    # to the phases writing the tables they judge: the region hierarchy (locations, temples), where each
    # god is worshipped (temples), the party's level (quest hooks, encounters).
    region_parents: dict[str, str | None] = field(default_factory=dict)
    regions_told: bool = False  # the hierarchy is rendered whole; else only when region rows were left out
    left_out_regions_told: bool = False  # the left-out regions' parents, when they fit after the rows
    worshipped_in: dict[str, str] = field(default_factory=dict)  # deity key -> region of its pantheon's culture
    place_regions: dict[str, str] = field(default_factory=dict)  # location key -> its region, or its nearest parent's
    party_level: float | None = None
    # The columns each table is told with, in the schema's order: those of every row the phase could
    # be shown (``phase_context``), so a row's line is the same whichever other rows fit. A table not
    # named here has the union of its rows' columns.
    columns: dict[str, list[str]] = field(default_factory=dict)

    def render(self) -> str:
        parts = [prompts.text("context", "campaign", **self.campaign), prompts.text("context", "tables")]
        if self.player_characters:
            columns = union_of_columns(self.player_characters, PC_COLUMNS)
            parts += [prompts.text("context", "player_characters"), header_line(columns)]
            parts += [row_line(pc, columns) for pc in self.player_characters]
        for table, rows in self.rows.items():
            if rows:
                columns = self.columns.get(table) or union_of_columns(rows)
                parts.append(table_heading(table, columns))
                parts += [row_line(r, columns) for r in rows]
        for table, rows in self.kept.items():
            if rows:
                columns = self.columns.get(table) or union_of_columns(rows)
                parts += [prompts.text("context", "kept", table=table), header_line(columns)]
                parts += [row_line(r, columns) for r in rows]
        parts += self._continuity_facts()
        left_out = [f"{table} {count}" for table, count in self.omitted.items() if count]
        if left_out:
            parts.append(prompts.text("context", "left_out", tables=", ".join(left_out)))
        return "\n".join(parts)

    def told_region_parents(self) -> dict[str, str | None]:
        """The region hierarchy as the rendered context tells it: the regions' rows shown, and the
        facts' line (the whole hierarchy, or the parents of the regions left out, when it fits)."""
        shown = {r["key"]: r.get("parent_region_key") for r in self.rows.get("geography_regions", [])}
        left_out = self.omitted_keys.get("geography_regions", []) if self.left_out_regions_told else []
        told = self.region_parents if self.regions_told else {r: self.region_parents.get(r) for r in left_out}
        return {**shown, **told}

    def _continuity_facts(self) -> list[str]:
        lines = []
        # Whole for a phase writing temples; else only the regions whose rows were left out for length.
        left_out = self.omitted_keys.get("geography_regions", []) if self.left_out_regions_told else []
        told = self.region_parents if self.regions_told else set(left_out)
        inside = {r: p for r, p in self.region_parents.items() if p and r in told}
        if inside:
            lines.append(prompts.text("context", "region_parents", regions=json.dumps(inside, ensure_ascii=False)))
        if self.worshipped_in:
            worshipped_in = json.dumps(self.worshipped_in, ensure_ascii=False)
            lines.append(prompts.text("context", "worshipped_in", regions=worshipped_in))
        if self.place_regions:
            place_regions = json.dumps(self.place_regions, ensure_ascii=False)
            lines.append(prompts.text("context", "place_regions", regions=place_regions))
        if self.party_level is not None:
            low, high = max(1, math.ceil(self.party_level - LEVEL_BAND)), min(20, int(self.party_level + LEVEL_BAND))
            lines.append(prompts.text("context", "party_level", level=self.party_level, low=low, high=high))
        return lines

    @property
    def fingerprint(self) -> str:
        """What the model was shown of the world (rows, keys, kept/locked rows, PCs), hashed: work
        recorded against another fingerprint was written for another world and is not reused."""
        seen = {
            "pcs": self.player_characters,
            "rows": self.rows,
            "keys": self.keys,
            "kept": self.kept,
            "omitted_keys": self.omitted_keys,
        }
        return hashlib.sha256(json.dumps(seen, sort_keys=True, default=str).encode()).hexdigest()[:32]

    @property
    def estimated_tokens(self) -> int:
        return len(self.render()) // CHARS_PER_TOKEN


def table_heading(table: str, columns: list[str]) -> str:
    """A table's first lines: its name, then its columns (counted once, with its first row)."""
    return f"## {table}\n{header_line(columns)}"


def header_line(columns: list[str]) -> str:
    return CELL_SEPARATOR.join(columns)


def row_line(row: Mapping[str, Any], columns: list[str]) -> str:
    """A row's values under its table's header, one cell per column (``EMPTY_CELL`` where it has none)."""
    return CELL_SEPARATOR.join(_cell(row.get(column)) for column in columns)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return EMPTY_CELL
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    if text == EMPTY_CELL:
        return "\\" + EMPTY_CELL  # the value "-", not an empty cell
    return _LINE_BREAK.sub(r"\\n", _ESCAPED.sub(r"\\\g<0>", text))


def union_of_columns(rows: list[dict[str, Any]], order: Collection[str] = ()) -> list[str]:
    """Every column some row has: those of ``order`` in its order, then the others as first seen."""
    seen = {column: None for row in rows for column in row}
    return [c for c in order if c in seen] + [c for c in seen if c not in order]


def load_campaign(conn: psycopg.Connection[Any], campaign_id: uuid.UUID | str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT id, owner_id, name, setting, tone, status FROM campaigns WHERE id = %s", (str(campaign_id),)
    ).fetchone()
    if row is None:
        raise CampaignNotFound(f"campaign {campaign_id} does not exist")
    return dict(row)


def load_player_characters(conn: psycopg.Connection[Any], campaign_id: uuid.UUID | str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT key, name, race, character_class, level, backstory, goals FROM player_characters"
        " WHERE campaign_id = %s ORDER BY key",
        (str(campaign_id),),
    ).fetchall()
    return [{k: v for k, v in dict(r).items() if v is not None} for r in rows]


def _compact(
    row: dict[str, Any],
    spec: TableSpec,
    id_to_key: Mapping[str, str],
    *,
    full_text: bool = False,
    roles: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """A row as the model reads it: key, name, a summary (the whole description when ``full_text``),
    and for an NPC the roles it already holds (``roles``, by row id)."""
    compact: dict[str, Any] = {"key": row["key"]}
    if row.get("name"):
        compact["name"] = row["name"]
    if row.get("description"):
        text = row["description"]
        short = full_text or len(text) <= SUMMARY_CHARS
        compact["summary"] = text if short else text[: SUMMARY_CHARS - 1] + "…"
    for column in _told_columns(spec):
        value = row.get(column.name)
        if value is not None:
            compact[column.property_name] = id_to_key.get(str(value), str(value)) if column.references else value
    if roles and roles.get(str(row["id"])):
        compact["roles"] = roles[str(row["id"])]
    return compact


def _told_columns(spec: TableSpec) -> list[ColumnSpec]:
    """The columns of ``spec`` a compact row tells besides key, name and summary: its references
    (by key) and its enums, numbers and booleans."""
    return [
        c
        for c in spec.exposed_columns
        if c.name not in ("key", "name", "description")
        and (c.references or c.enum or c.pg_type in ("integer", "numeric", "boolean"))
    ]


def column_order(spec: TableSpec) -> list[str]:
    """Every column a compact row of ``spec`` may have, in the order a table of them is told."""
    return ["key", "name", "summary", *(c.property_name for c in _told_columns(spec)), "roles"]


def _npc_roles(raw: Mapping[str, list[dict[str, Any]]], specs: Mapping[str, TableSpec]) -> dict[str, int]:
    """Roles (ruler, boss, owner, quest giver, priest) each NPC holds in ``raw``, by entity id: every
    row counted, including rows the context leaves out for length, so a phase handing out roles
    sees each NPC's load (the audit's NPC load)."""
    roles: dict[str, int] = {}
    for table, rows in raw.items():
        if table in RELATIONSHIP_TABLES:
            continue
        columns = [c.name for c in specs[table].foreign_keys if c.references == "entities"]
        for row in rows:
            for value in (row.get(c) for c in columns):
                if value is not None:
                    roles[str(value)] = roles.get(str(value), 0) + 1
    return roles


def phase_context(
    conn: psycopg.Connection[Any],
    campaign_id: uuid.UUID | str,
    phase: Phase,
    specs: Mapping[str, TableSpec],
    token_budget: int | None = None,
) -> PhaseContext:
    """The compact world so far for ``phase``; PC-connected rows are kept first when cutting.

    A phase that ``shows_referenced_only`` (3C) is shown the rows of the tables its tables refer to
    (``referenced_tables``), every one in summary; the keys a reference may name stay those of every
    table."""
    campaign = load_campaign(conn, campaign_id)
    pcs = load_player_characters(conn, campaign_id)
    earlier = ancestors(phase.id)
    every = [t for p in ALL_PHASES if p.id in earlier for t in p.tables]
    raw = campaign_rows(conn, campaign_id, every)
    referenced = referenced_tables(phase, specs)
    tables = [t for t in every if t in referenced] if phase.shows_referenced_only else every
    id_to_key = {str(r["id"]): r["key"] for rows in raw.values() for r in rows}
    id_to_key.update(_pc_keys(conn, campaign_id))

    keys = {t: sorted(r["key"] for r in raw[t]) for t in every}
    keys["player_characters"] = [pc["key"] for pc in pcs]
    context = PhaseContext(
        phase=phase.id,
        campaign={k: campaign[k] for k in ("name", "setting", "tone")},
        player_characters=pcs if phase.uses_player_characters else [],
        rows={t: [] for t in tables},
        keys=keys,
    )
    context.kept = _kept_rows(conn, campaign_id, phase, specs, id_to_key)
    context.columns = {t: union_of_columns(rows, column_order(specs[t])) for t, rows in context.kept.items()}
    _continuity_facts(context, phase, raw, id_to_key, pcs)
    budget_chars = (token_budget or phase.context_token_budget) * CHARS_PER_TOKEN
    used = len(context.render())
    added: list[str] = []
    roles = _npc_roles(raw, specs)
    context.npc_roles = {r["key"]: roles.get(str(r["id"]), 0) for r in raw.get("entities", [])}
    # Every row it refers to in summary counts more than some in full.
    full = not phase.shows_referenced_only
    ranked, columns = _by_priority(tables, raw, specs, id_to_key, referenced, roles, pc_full_text=full)
    context.columns.update(columns)
    for table, row, line in ranked:
        # A table's heading (its name and columns) comes with its first row.
        heading = 0 if context.rows[table] else len(table_heading(table, context.columns[table])) + 1
        if used + heading + len(line) + 1 > budget_chars:
            _leave_out(context, table, row)
            continue
        context.rows[table].append(row)
        added.append(table)
        used += heading + len(line) + 1
    # The "left out" note takes room too: give back the last rows until it fits.
    while added and len(context.render()) > budget_chars:
        table = added.pop()
        _leave_out(context, table, context.rows[table].pop())
    # The parents of the regions left out (a place's region must lie in its parent's): a short line
    # worth more than the last rows, which give way to it, lowest priority first; told only when it
    # takes at most FACTS_SHARE of the budget (a tiny budget keeps its rows).
    without = len(context.render())
    context.left_out_regions_told = True
    if len(context.render()) - without > FACTS_SHARE * budget_chars:
        context.left_out_regions_told = False
    while context.left_out_regions_told and added and len(context.render()) > budget_chars:
        table = added.pop()
        _leave_out(context, table, context.rows[table].pop())
    return context


def _continuity_facts(
    context: PhaseContext,
    phase: Phase,
    raw: Mapping[str, list[dict[str, Any]]],
    id_to_key: Mapping[str, str],
    pcs: list[dict[str, Any]],
) -> None:
    """The facts the continuity rules judge a phase's rows by, for the phases writing those rows."""
    key = id_to_key
    if {"locations", "temples"} & set(phase.tables):
        context.regions_told = "temples" in phase.tables  # a phase writing locations has the regions' rows first
        context.region_parents = {
            r["key"]: key.get(str(r.get("parent_region_id"))) for r in raw.get("geography_regions", [])
        }
    if "temples" in phase.tables:
        region_of_culture = {str(r["id"]): key.get(str(r.get("region_id"))) for r in raw.get("cultures", [])}
        culture_of_pantheon = {str(r["id"]): str(r.get("culture_id")) for r in raw.get("pantheons", [])}
        places = {str(r["id"]): r for r in raw.get("locations", [])}
        for place in places.values():
            seen: set[str] = set()
            current: dict[str, Any] | None = place
            while current is not None and current["key"] not in seen and not current.get("region_id"):
                seen.add(current["key"])
                current = places.get(str(current.get("parent_location_id")))
            if current is not None and current.get("region_id") and str(current["region_id"]) in key:
                context.place_regions[place["key"]] = key[str(current["region_id"])]
        for deity in raw.get("deities", []):
            region = region_of_culture.get(culture_of_pantheon.get(str(deity.get("pantheon_id")), ""))
            if region:
                context.worshipped_in[deity["key"]] = region
    levels = [pc["level"] for pc in pcs if isinstance(pc.get("level"), int)]
    if set(LEVELED_TABLES) & set(phase.tables) and levels:
        context.party_level = round(sum(levels) / len(levels), 1)


def _kept_rows(
    conn: psycopg.Connection[Any],
    campaign_id: uuid.UUID | str,
    phase: Phase,
    specs: Mapping[str, TableSpec],
    id_to_key: Mapping[str, str],
) -> dict[str, list[dict[str, Any]]]:
    kept = rows_kept_on_regeneration(conn, campaign_id, phase, specs)
    if not any(kept.values()):
        return {}
    raw = campaign_rows(conn, campaign_id, list(phase.tables))
    id_to_key = {**id_to_key, **{str(r["id"]): r["key"] for rows in raw.values() for r in rows}}
    return {
        table: [_compact(r, specs[table], id_to_key) for r in raw[table] if r["key"] in kept[table]]
        for table in phase.tables
        if kept[table]
    }


def _leave_out(context: PhaseContext, table: str, row: dict[str, Any]) -> None:
    context.omitted[table] = context.omitted.get(table, 0) + 1
    context.omitted_keys.setdefault(table, []).append(row["key"])


def referenced_tables(phase: Phase, specs: Mapping[str, TableSpec]) -> set[str]:
    """The earlier tables the phase's rows point at (its foreign keys): the context it needs most."""
    return {c.references for t in phase.tables for c in specs[t].foreign_keys if c.references} - set(phase.tables)


def _by_priority(
    tables: list[str],
    raw: dict[str, list[dict[str, Any]]],
    specs: Mapping[str, TableSpec],
    id_to_key: Mapping[str, str],
    referenced: set[str] = frozenset(),  # type: ignore[assignment]
    roles: Mapping[str, int] | None = None,
    pc_full_text: bool = True,
) -> tuple[list[tuple[str, dict[str, Any], str]], dict[str, list[str]]]:
    """Relevance first: the tables the phase references (PC-connected rows first), then the other
    PC-connected rows, then the rest; within a tier, round-robin over tables by key. PC-connected
    rows keep their whole description (``pc_full_text``; a part's context shows every row in summary).

    Each row comes with its line as rendered under its table's columns (those of all its rows, which
    come with the rows), so its length is what it adds to the context."""
    order = [(True, True), (True, False), (False, True), (False, False)]  # (referenced, PC-connected)
    tiers: list[list[list[tuple[str, dict[str, Any]]]]] = []
    for wanted_referenced, wanted_pc in order:
        queues = []
        for table in tables:
            if (table in referenced) != wanted_referenced:
                continue
            pc_columns = [c.name for c in specs[table].foreign_keys if c.references == "player_characters"]
            chosen = [r for r in raw[table] if any(r.get(c) for c in pc_columns) == wanted_pc]
            queues.append(
                [
                    (table, _compact(r, specs[table], id_to_key, full_text=wanted_pc and pc_full_text, roles=roles))
                    for r in chosen
                ]
            )
        tiers.append(queues)
    every: dict[str, list[dict[str, Any]]] = {}
    for queues in tiers:
        for queue in queues:
            for table, row in queue:
                every.setdefault(table, []).append(row)
    columns = {table: union_of_columns(rows, column_order(specs[table])) for table, rows in every.items()}
    found: list[tuple[str, dict[str, Any], str]] = []
    for queues in tiers:
        while any(queues):
            for queue in queues:
                if queue:
                    table, row = queue.pop(0)
                    found.append((table, row, row_line(row, columns[table])))
    return found, columns


def _pc_keys(conn: psycopg.Connection[Any], campaign_id: uuid.UUID | str) -> dict[str, str]:
    with conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
        rows = cur.execute("SELECT id, key FROM player_characters WHERE campaign_id = %s", (str(campaign_id),))
        return {str(row_id): key for row_id, key in rows}
