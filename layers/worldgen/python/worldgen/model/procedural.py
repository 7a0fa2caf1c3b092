"""The procedural model: a deterministic offline world generator that fills a phase's tool schema.

It is a real generator for demos, tests and load tests, not Claude: names come from seeded
syllables, text from the campaign's setting and tone and from the rows already generated, and
references are drawn from the keys available so that the nine phases form a connected world
(every PC gets NPCs, places, items, quests and pc_connections). Everything it writes is labelled
``procedural`` in generations, model_calls and the CLI.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections import Counter
from typing import Any

from worldgen.continuity import LEVEL_BAND, within
from worldgen.contracts import GM_NOTES_COLUMN, SECRET_LINK_COLUMN
from worldgen.model.base import ModelRequest, ModelResponse, ModelUsage
from worldgen.model.procedural_words import ADJECTIVES, CampaignWords, label_of, roman, slug
from worldgen.outline import GIST_WORDS
from worldgen.phases import RELATIONSHIP_TABLES, row_target
from worldgen.roles import ROLE_LIMIT, role_phases_beside

PROVIDER = "procedural"
MODEL_NAME = "procedural-v1"


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class ProceduralModel:
    provider = PROVIDER

    def __init__(self, seed: int | None = None, scale: float | None = None) -> None:
        self.seed = seed
        self.scale = scale

    def call(self, request: ModelRequest) -> ModelResponse:
        started = time.perf_counter()
        generator = _PhaseGenerator(request, self.seed, self.scale)
        tool_input = generator.generate()
        usage = ModelUsage(
            provider=PROVIDER,
            model=MODEL_NAME,
            latency_ms=int((time.perf_counter() - started) * 1000),
            stop_reason="tool_use",
        )
        tool_use_id = f"procedural_{request.phase.slug}_{request.round}"
        content = [{"type": "tool_use", "id": tool_use_id, "name": request.tool["name"], "input": tool_input}]
        return ModelResponse(tool_input, usage, content, tool_use_id)


class _PhaseGenerator:
    def __init__(self, request: ModelRequest, seed: int | None, scale: float | None) -> None:
        options = request.options
        self.request = request
        self.seed = seed if seed is not None else int(options.get("seed", 7))
        self.scale = scale if scale is not None else float(options.get("scale", 1.0))
        context = request.context
        self.campaign = context.campaign
        self.pcs = {pc["key"]: pc for pc in context.player_characters}
        levels = [pc["level"] for pc in context.player_characters if isinstance(pc.get("level"), int)]
        self.party_level = sum(levels) / len(levels) if levels else None
        self.names: dict[str, str] = {pc["key"]: pc["name"] for pc in context.player_characters}
        for rows in context.rows.values():
            for row in rows:
                self.names[row["key"]] = row.get("name") or row["key"].replace("-", " ")
        for rows in request.outline.values():  # an outline gives keys: a row's name says the same
            for row in rows:
                self.names.setdefault(row["key"], row["key"].replace("-", " ").title())
        self.words = CampaignWords(self.campaign, list(self.pcs.values()))
        self.generated: dict[str, list[dict[str, Any]]] = {}
        self.outline_roles: list[str] = []
        self.taken_names = {str(r["name"]).casefold() for rows in context.rows.values() for r in rows if r.get("name")}
        self.taken_names |= {str(pc["name"]).casefold() for pc in context.player_characters}
        self.outlined = {t: {r["key"]: r for r in rows} for t, rows in request.outline.items()}
        self.npc_roles = self._npc_roles_so_far()
        self.roles_before = Counter(self.npc_roles)
        self.phases_beside = sum(p != request.phase.id for p in role_phases_beside(request.phase.id))
        self.quota = Counter(request.role_npcs)
        # A part of a phase (some of its tables, or some rows) hands out roles from its own offset.
        own = [*request.tables, *(k for keys in request.assigned.values() for k in keys)]
        self.spread = int(hashlib.sha256("|".join(own).encode()).hexdigest(), 16) % 9973

    def _npc_roles_so_far(self) -> Counter[str]:
        """Roles (ruler, owner, priest, quest giver, ...) each NPC already holds in earlier phases, so
        this phase hands new roles to the least busy NPCs (the audit's NPC load): the context's count
        on each NPC (it covers rows left out for length), or the rows in the context if more."""
        rows = self.request.context.rows
        npcs = {row["key"] for row in rows.get("entities", [])}
        roles: Counter[str] = Counter()
        for table, table_rows in rows.items():
            if table in RELATIONSHIP_TABLES or table == "entities":
                continue
            for row in table_rows:
                roles.update(v for p, v in row.items() if p.endswith("_key") and p != "key" and v in npcs)
        for npc in rows.get("entities", []):
            roles[npc["key"]] = max(roles[npc["key"]], int(npc.get("roles", 0)))
        return roles

    # -- pools ---------------------------------------------------------------------------------

    def pool(self, table: str, prop: str, item_schema: dict[str, Any]) -> list[str]:
        anchored = self.request.anchors.get(table)
        if anchored is not None and anchored[0] == prop:  # a table split between parts: this part's rows
            return list(anchored[1])
        schema = item_schema["properties"][prop]
        if "enum" in schema:
            return list(schema["enum"])
        target = self.request.references.get(table, {}).get(prop)
        if target is None:
            return []
        if target not in self.generated and target in self.request.outline:  # another part's rows
            return [row["key"] for row in self.request.outline[target]]
        return [row["key"] for row in self.generated.get(target, [])]

    # -- tables --------------------------------------------------------------------------------

    def generate(self) -> dict[str, Any]:
        properties = self.request.tool["input_schema"]["properties"]
        outline = self.request.tool["name"].endswith("_outline")
        if outline:  # an outline asks for rows by key and gist: the rows the phase tool would get
            properties = self.request.tools[0]["input_schema"]["properties"]
        for table in self.request.phase.tables:
            if table in properties and (not self.request.tables or table in self.request.tables):
                # a part of a phase asks for some of its tables (an outlined one: for given rows)
                self.generated[table] = self.table_rows(table, properties[table])
        if outline:
            return {table: [self.outline_entry(table, row) for row in rows] for table, rows in self.generated.items()}
        return dict(self.generated)

    def outline_entry(self, table: str, row: dict[str, Any]) -> dict[str, str]:
        """A row as an outline gives it: key, a gist (at most GIST_WORDS words), the PC it serves and,
        for an NPC, its role (a PC's NPC: a tie from the backstory; the others: the cast's roles)."""
        label = label_of(table).replace("_", " ")
        words = f"{row.get('name') or row['key'].replace('-', ' ')}, a {self.words.tone_word} {label}".split()
        entry = {"key": row["key"], "gist": " ".join(words[:GIST_WORDS])}
        pc = next((v for p, v in row.items() if p.endswith("_key") and p != "key" and v in self.pcs), None)
        if pc is not None:
            entry["player_character_key"] = pc
        if table == "entities":
            ties = (
                ("mentor", "rival", "patron", "family", "debtor") if pc else ("ruler", "owner", "priest", "quest giver")
            )
            entry["role"] = ties[len(self.outline_roles) % len(ties)]
            self.outline_roles.append(entry["role"])
        return entry

    def table_rows(self, table: str, table_schema: dict[str, Any]) -> list[dict[str, Any]]:
        rng = _rng(self.seed, self.campaign["name"], table)
        item = table_schema["items"]
        refs = self.request.references.get(table, {})
        is_edge = "name" not in item["properties"]
        # An outline's request lists the phase tool as well: its rows follow the same rules.
        full = self.request.tools[0]["input_schema"]["properties"][table]["items"] if self.request.tools else item
        required_refs = [p for p in full["required"] if p in refs]
        optional_refs = [p for p in refs if p not in item["required"] and p in item["properties"]]
        pc_props = [p for p in refs if refs[p] == "player_characters"]

        count = max(1, round(rng.randint(3, 8) * self.scale))
        if table == "entities":  # the PCs' NPCs and the supporting cast later phases give roles to
            count = max(
                count,
                round(
                    row_target(table, len(self.pcs), table_schema.get("maxItems", 40), self.request.phase.profile)
                    * self.scale
                ),
            )
        if pc_props and self.pcs:
            count = max(count, len(self.pcs))
        if is_edge and required_refs:
            count = max(count, len(self.pool(table, required_refs[0], item)))
        profile = self.request.phase.profile
        if profile != "full":  # a lean profile: exactly its row targets, as the simulator sizes it
            target = row_target(table, len(self.pcs) or 4, table_schema.get("maxItems", 40), profile)
            count = max(1, round(target * self.scale))
        count = int(self.request.options.get("row_counts", {}).get(table, count))  # the simulator's sizes
        assigned = self.request.assigned.get(table)
        if assigned is not None:  # a part of an outlined phase: exactly the rows the outline gave it
            count = len(assigned)
        in_phase_required = [p for p in required_refs if refs[p] in self.request.phase.tables and refs[p] != table]
        for prop in in_phase_required if assigned is None else []:  # at most one child per parent row,
            count = min(count, len(self.pool(table, prop, full)))  # e.g. one mind per item (outline's count)
        count = min(count, table_schema.get("maxItems", count))

        rows: list[dict[str, Any]] = []
        existing = {row["key"]: row for row in self.request.context.rows.get(table, [])}  # a reroll's row
        kept = self.request.context.kept.get(table, [])  # locked rows from before: never recreated
        used_names: set[str] = {row["name"] for row in kept if "name" in row}
        used_keys: set[str] = {row["key"] for row in kept}
        used_edges: set[tuple[Any, ...]] = set()
        identity = required_refs + (optional_refs if len(required_refs) < 2 else [])
        used_edges |= {tuple(row.get(p) for p in identity) for row in kept}
        for index in range(count * 3):
            if len(rows) >= count:
                break
            row = self.row(table, item, refs, index, len(rows), rng, is_edge, optional_refs, rows)
            if row is None:
                continue
            current = existing.get(assigned[len(rows)]) if assigned is not None else None
            if current is not None:
                # A row the world already holds (a reroll, worldgen.reroll): this generator reads no
                # hint, so the row keeps what ties it to the world (its references and its values
                # from a closed vocabulary, such as its role); its words are written anew.
                row.update({p: v for p, v in current.items() if p in refs or "enum" in item["properties"].get(p, {})})
            if is_edge:
                # A pair is one edge whatever its type or extra columns; a link table with a single
                # required end (pc_connections) is identified by the one target it points at.
                edge = tuple(row.get(p) for p in identity)
                ends = [row[p] for p in required_refs if refs[p] == refs[required_refs[0]]]
                if edge in used_edges or len(ends) != len(set(ends)):
                    continue
                used_edges.add(edge)
            if assigned is not None:
                row["key"] = assigned[len(rows)]
                served = self.outlined.get(table, {}).get(row["key"], {}).get("player_character_key")
                if served in self.pcs:  # the outline dealt this row to a PC: the part keeps to it
                    for prop in pc_props:
                        row[prop] = served
                if "name" in row:
                    row["name"] = self.names.get(row["key"], row["name"])
                row["description"] = self.description(table, row, refs, rng)
                for _ in range(12):  # a reroll's words are new: another of the templates and sentences
                    if current is None or row["description"] != current.get("description"):
                        break
                    row["description"] = self.description(table, row, refs, rng)
                self.secrets(table, row, item["properties"])
                rows.append(row)
                continue
            name = row.get("name")
            if name is not None:  # continuity (name-clash): no name of the world so far, nor a PC's
                while name in used_names or slug(name) in used_keys or name.casefold() in self.taken_names:
                    name = f"{name} {roman(len(used_names) + 2)}"
                row["name"] = name
                used_names.add(name)
                self.taken_names.add(name.casefold())  # another table of this call: another name
                row["key"] = slug(name)
            while row["key"] in used_keys:
                row["key"] = f"{row['key']}-{len(used_keys) + 1}"
            used_keys.add(row["key"])
            self.names[row["key"]] = row.get("name") or row["key"]
            rows.append(row)
        return rows

    def row(
        self,
        table: str,
        item: dict[str, Any],
        refs: dict[str, str],
        attempt: int,
        position: int,
        rng: random.Random,
        is_edge: bool,
        optional_refs: list[str],
        done: list[dict[str, Any]],
    ) -> dict[str, Any] | None:
        row: dict[str, Any] = {}
        properties = item["properties"]
        first_required = next((p for p in item["required"] if p in refs), None)
        for prop, schema in properties.items():
            if prop in ("key", "name", "description", GM_NOTES_COLUMN, SECRET_LINK_COLUMN):
                continue
            if prop in refs:
                value = self.reference(table, prop, item, refs, attempt, position, rng, is_edge, done)
                if value is None and prop in item["required"]:
                    return None
                if value is not None:
                    row[prop] = value
                continue
            row[prop] = self.scalar(table, prop, schema, rng, row)
        if is_edge and optional_refs:
            # Link tables such as pc_connections point at exactly one of their optional targets.
            keep = optional_refs[(attempt + position) % len(optional_refs)]
            for prop in optional_refs:
                if prop != keep:
                    row.pop(prop, None)
            if keep not in row:
                return None
        self.keep_continuity(table, item, row, position)
        if "name" in properties:
            row["name"] = self.words.name(table, rng)
        row["key"] = slug(row.get("name") or self.edge_key(table, row, refs, first_required, position))
        row["description"] = self.description(table, row, refs, rng)
        self.secrets(table, row, properties)
        return row

    def secrets(self, table: str, row: dict[str, Any], properties: dict[str, Any]) -> None:
        """What only the game master reads: a row's gm_notes, a link's is_secret. Drawn from a
        generator of the row's own (its key), so the rest of the world stays what it was."""
        rng = _rng(self.seed, self.campaign["name"], table, row["key"], "secret")
        if SECRET_LINK_COLUMN in properties:
            # A link whose end's public text already names the other end is no secret (the players
            # export refuses such a world, tools/export/audience.py), so it stays public.
            row[SECRET_LINK_COLUMN] = rng.random() < 0.25 and not self._named_in_public(row)
        if GM_NOTES_COLUMN in properties:
            row[GM_NOTES_COLUMN] = self.gm_notes(table, row, rng)

    def _named_in_public(self, link: dict[str, Any]) -> bool:
        """Whether one end of a link names another end in the public text the context shows of it."""
        ends = [v for k, v in link.items() if k.endswith("_key") and isinstance(v, str)]
        texts = {
            row["key"]: f"{row.get('name') or ''} {row.get('summary') or row.get('description') or ''}".lower()
            for rows in self.request.context.rows.values()
            for row in rows
            if row.get("key") in ends
        }
        # The setting's own proper names (a port, a city) may appear in any public text, also past the
        # context's summary: a link to a row so named is never hidden.
        public_names = {name.lower() for name in self.words.proper_names}
        if any(self.names.get(end, end).lower() in public_names for end in ends):
            return True
        return any(
            self.names.get(other, other).lower() in text
            for end, text in texts.items()
            for other in ends
            if other != end
        )

    def gm_notes(self, table: str, row: dict[str, Any], rng: random.Random) -> str:
        """A secret in sentences the public description never uses (the players export checks it)."""
        label = label_of(table)
        name = row.get("name") or row["key"]
        truth = rng.choice(
            [
                f"Secretly, {name} answers to a patron nobody in {self.campaign['name']} suspects.",
                f"The truth behind this {label} is a debt of blood that {name} will not speak of.",
                f"What {name} hides: a {rng.choice(ADJECTIVES).lower()} bargain struck long ago.",
            ]
        )
        play = rng.choice(
            [
                "Reveal it only when the party has earned real trust, never at the first meeting.",
                "Let the party find one clue per session before the whole truth comes out.",
                "Play it straight at first; the mask slips only under pressure.",
            ]
        )
        return f"{truth} {play}"

    def reference(
        self,
        table: str,
        prop: str,
        item: dict[str, Any],
        refs: dict[str, str],
        attempt: int,
        position: int,
        rng: random.Random,
        is_edge: bool,
        done: list[dict[str, Any]],
    ) -> str | None:
        if refs[prop] == table:  # a hierarchy: the first row is a root, later rows hang under earlier ones
            parents = item["properties"][prop].get("enum")
            if parents:  # the parents are given (a reroll offers the table's other rows): one of them
                return str(parents[position % len(parents)])
            outlined = [row["key"] for row in self.request.outline.get(table, [])]
            if outlined and table in self.request.assigned:  # in the outline's order, across parts
                at = outlined.index(self.request.assigned[table][position])
                return outlined[(at - 1) // 2] if at else None
            return done[(position - 1) // 2]["key"] if done else None
        pool = self.pool(table, prop, item)
        if not pool:
            return None
        if refs[prop] == "entities" and not is_edge and table != "entities":
            return self.role_holder(pool, position, required=prop in item["required"])
        ends = [p for p in item["required"] if p in refs]
        if refs[prop] == "player_characters" or not is_edge or prop not in ends[1:]:
            return pool[self.outline_position(table, position) % len(pool)]
        # The first end walks its pool so every row of it gets an edge; the other ends step away
        # from it (a different row of the same table) and further on each retry.
        return pool[(position + ends.index(prop) * (1 + attempt)) % len(pool)]

    # -- continuity (worldgen.continuity): the answer a careful model gives --------------------

    def keep_continuity(self, table: str, item: dict[str, Any], row: dict[str, Any], position: int) -> None:
        """A place lies in its parent place's region or in one inside it (``region-mismatch``), and a
        temple serves a god worshipped where it stands (``foreign-temple``)."""
        if table == "locations" and "region_key" in row:
            region = self.place_region(self.outline_position(table, position), self.pool(table, "region_key", item))
            if region is not None:
                row["region_key"] = region
        if table == "temples" and row.get("deity_key") and row.get("location_key"):
            stands_in = self.region_of_place(str(row["location_key"]))
            if stands_in is None:
                return
            gods = self.pool(table, "deity_key", item)
            if self.worshipped_in(str(row["deity_key"]), stands_in):
                return
            here = [d for d in gods if self.worshipped_in(d, stands_in)]
            if here:
                row["deity_key"] = here[position % len(here)]
                return
            # no god of this place: a place and a god worshipped there
            pairs = [
                (god, place)
                for place in self.pool(table, "location_key", item)
                if (region := self.region_of_place(place)) is not None
                for god in gods
                if self.worshipped_in(god, region)
            ]
            if pairs:
                row["deity_key"], row["location_key"] = pairs[position % len(pairs)]

    def region_tree(self, pool: list[str]) -> dict[str, str | None]:
        """The regions of ``pool`` the context shows, each with its parent region."""
        return {k: parent for k, parent in self.request.context.told_region_parents().items() if k in pool}

    def place_region(self, at: int, pool: list[str]) -> str | None:
        """The region of the place at ``at`` in its table's hierarchy (``reference``: the parent of
        ``at`` is ``(at - 1) // 2``): the first top-level region for the root, then one inside the
        parent's region. A function of the position alone, so parts side by side agree on it."""
        tree = self.region_tree(pool)
        if not tree:
            return None
        if at <= 0:
            return sorted(k for k, parent in tree.items() if parent not in tree)[0]
        around = self.place_region((at - 1) // 2, pool)
        inside = sorted(k for k in tree if around is None or within(tree, k, around))
        return inside[at % len(inside)]

    def region_of_place(self, location: str) -> str | None:
        """The region of a location of the context, or of the nearest place containing it with one."""
        if location in self.request.context.place_regions:  # every place, none cut for length
            return self.request.context.place_regions[location]
        places = {r["key"]: r for r in self.request.context.rows.get("locations", [])}
        seen: set[str] = set()
        while location in places and location not in seen:
            seen.add(location)
            if places[location].get("region_key"):
                return str(places[location]["region_key"])
            location = str(places[location].get("parent_location_key") or "")
        return None

    def worshipped_in(self, deity: str, region: str) -> bool:
        """Whether ``deity``'s pantheon belongs to a culture of ``region`` or a region containing it
        (the context's ``worshipped_in``); True when the context does not tell."""
        home = self.request.context.worshipped_in.get(deity)
        return home is None or within(self.request.context.told_region_parents(), region, home)

    def outline_position(self, table: str, position: int) -> int:
        """A row's place in its whole table: in a part of an outlined phase, its place in the outline
        (the parts of a table side by side then walk a pool, e.g. the PCs, as one call would)."""
        assigned = self.request.assigned.get(table)
        outlined = [row["key"] for row in self.request.outline.get(table, [])]
        if assigned and position < len(assigned) and assigned[position] in outlined:
            return outlined.index(assigned[position])
        return position

    def role_holder(self, pool: list[str], position: int, *, required: bool) -> str | None:
        """The NPC for a role: the least busy one with room; an optional role stays empty when none has."""
        if self.request.role_npcs:  # the pipeline dealt out each NPC's room between the calls beside
            with_room = [key for key in pool if self.npc_roles[key] - self.roles_before[key] < self.quota[key]]
        else:
            with_room = [key for key in pool if self.npc_roles[key] < self.role_cap(key)]
        candidates = with_room or (pool if required else [])
        if not candidates:
            return None
        start = position + self.spread  # parts of a phase run side by side: each starts elsewhere
        npc = min(candidates, key=lambda key: (self.npc_roles[key], (pool.index(key) - start) % len(pool)))
        self.npc_roles[npc] += 1
        return npc

    def role_cap(self, npc: str) -> int:
        """The roles ``npc`` may hold after this phase: its room up to ROLE_LIMIT, shared evenly with
        the phases that hand out roles beside this one (3A and 3B cannot see each other's rows)."""
        before = self.roles_before[npc]
        return before + max(0, ROLE_LIMIT - before) // (1 + self.phases_beside)

    def scalar(self, table: str, prop: str, schema: dict[str, Any], rng: random.Random, row: dict[str, Any]) -> Any:
        kind = schema.get("type")
        if "enum" in schema:
            return rng.choice(schema["enum"])
        if prop == "recommended_level" and self.party_level is not None:  # continuity: level-band
            low, high = int(schema.get("minimum", 1)), int(schema.get("maximum", 20))
            band = range(
                max(low, math.ceil(self.party_level - LEVEL_BAND)), min(high, int(self.party_level + LEVEL_BAND)) + 1
            )
            return rng.choice(band) if band else rng.randint(low, high)
        if kind in ("integer", "number"):
            default_low = 0 if "population" in prop or ("gp" in prop and "price" not in prop) else 1
            if "exclusiveMinimum" in schema:
                default_low = int(schema["exclusiveMinimum"]) + 1
            low = schema.get("minimum", default_low)
            high = schema.get("maximum", low + 20)
            value: float = rng.randint(int(low), int(high))
            partner = prop.replace("max", "min")
            if partner != prop and isinstance(row.get(partner), (int, float)):
                value = max(value, row[partner])
            if "population" in prop:
                value *= 100
            elif "years" in prop or ("gp" in prop and "price" not in prop):
                value *= 10
            return value if kind == "integer" else float(value)
        if kind == "boolean":
            return rng.random() < 0.5
        if kind == "array":
            return rng.sample(self.words.setting_words, min(3, len(self.words.setting_words)))
        if kind == "object":
            return {}
        words = rng.sample(self.words.setting_words, min(2, len(self.words.setting_words)))
        return f"{' and '.join(words).capitalize()}, in the {self.words.tone_word} way of {self.campaign['name']}"

    def edge_key(self, table: str, row: dict[str, Any], refs: dict[str, str], first: str | None, i: int) -> str:
        ends = [str(row[p]) for p in refs if p in row][:2]
        return "-".join([*ends, str(i + 1)])[:60] if ends else f"{table}-{i + 1}"

    def display_name(self, key: str) -> str:
        """The name of a row by key; a row the context left out for length is named from its key."""
        return self.names.get(key) or key.replace("-", " ").title()

    def description(self, table: str, row: dict[str, Any], refs: dict[str, str], rng: random.Random) -> str:
        campaign, adjective = self.campaign["name"], self.words.tone_word
        pcs = [self.pcs[row[p]] for p in refs if p in row and refs[p] == "player_characters" and row[p] in self.pcs]
        if "name" not in row:
            ends = " and ".join([self.display_name(row[p]) for p in refs if p in row][:2]) or "these two"
            kinds = [str(v).replace("_", " ") for p, v in row.items() if isinstance(v, str) and p not in refs]
            kind = kinds[0] if kinds else "linked"
            text = rng.choice(
                [
                    f"{ends} are bound as {kind}: a {adjective} tie that matters in {campaign}.",
                    f"{kind.capitalize()}: {ends}, and everyone in {campaign} who matters knows it.",
                    f"Between {ends} runs a {adjective} thread of {kind}.",
                ]
            )
        else:
            linked = [self.display_name(row[p]) for p in refs if p in row and refs[p] != "player_characters"]
            label = label_of(table)
            ties = ""
            if linked:
                ties = " tied to " + (", ".join(linked[:-1]) + " and " + linked[-1] if len(linked) > 1 else linked[0])
            text = rng.choice(
                [
                    f"{row['name']} is a {adjective} {label} of {campaign}{ties}.",
                    f"A {adjective} {label}{ties}, {row['name']} is spoken of across {campaign}.",
                    f"{row['name']}: a {label} of {campaign}{ties}, {adjective} as the times.",
                ]
            )
            text += " " + rng.choice(self.words.setting_sentences)
        for pc in pcs:
            backstory = " ".join(pc.get("backstory", "").split()[:14])
            text += f" Rooted in {pc['name']}'s story: \u201c{backstory}\u2026\u201d"
        return text
