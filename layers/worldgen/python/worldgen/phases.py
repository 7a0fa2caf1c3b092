"""THE phase registry: the one place the generation phases are declared, per profile.

Two profiles (``PROFILES``) write the same tables: ``full`` in the 9 phases 1A..3C, ``quick`` (a lean
world in three calls, the customer's fallback) in Q1..Q3. Phase ids are distinct across profiles.

Everything else is derived from it: the state machine (``worldgen.tools.statemachine``), the CDK
functions (``infra/``), the tool schemas (``worldgen.schema``), test parametrization and the
README's phase table. ``tests/integration/test_phase_registry.py`` checks ``depends_on`` against
the foreign keys of the migrated catalog.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

# -- budgets -------------------------------------------------------------------------------------
# Every call is set up to finish inside its stream deadline, every Lambda to outlive its calls, and
# every state to outlive its Lambda (tests/unit/test_budgets.py checks the inequalities per phase).
# Numbers from `make bench-world` (the paced simulator at the real size of a generous world).
ASSUMED_OUTPUT_TOKENS_PER_SECOND = 45.0  # below the ~60 of Sonnet: a budget that survives a slow hour
FIRST_TOKEN_ALLOWANCE_SECONDS = 20.0  # first token, after reading a prompt of up to ~20K tokens
DEADLINE_MARGIN = 1.15  # the deadline over the time max_tokens takes at the assumed rate
MAX_TOKENS_HEADROOM = 1.3  # max_tokens over the expected answer of a generous world
SAVE_SECONDS = 40  # context read, validation and the save transaction, once per attempt
REPAIR_ROUNDS = 2  # at most; fewer when the rounds of a long answer do not fit in the Lambda
LAMBDA_MAX_SECONDS = 900  # AWS Lambda's limit
# An outline is keys and gists (issue 24): the simulator's largest (a generous 2A) is 1,675 tokens
# (keys alone: about 800); a model's full 12-word gists, a PC and a role take about 50 tokens a row,
# so ~60 rows about 3,000.
OUTLINE_MAX_TOKENS = 4000
PRIMER_MAX_TOKENS = 1  # the request that writes a phase's shared prefix to the prompt cache


def stream_deadline_seconds(max_tokens: int) -> int:
    """How long a stream of up to ``max_tokens`` may take: at the assumed rate, with a margin."""
    seconds = (max_tokens / ASSUMED_OUTPUT_TOKENS_PER_SECOND + FIRST_TOKEN_ALLOWANCE_SECONDS) * DEADLINE_MARGIN
    return math.ceil(seconds)


CORE_TABLES: tuple[str, ...] = (
    "campaigns",
    "player_characters",
    "generations",
    "phase_runs",
    "model_calls",
    "row_rerolls",
)


@dataclass(frozen=True)
class RowTarget:
    """How many rows a table should get: ``base`` plus ``per_pc`` for each player character."""

    base: int
    per_pc: float = 0.0
    note: str = ""  # what the rows are for, shown to the model next to the number
    # What the note (a rule of the prompt) needs: at least ``n`` rows per player character ("pc") or
    # per row of another table's target; tests/unit/test_row_targets.py checks it for 1 to 8 PCs.
    at_least: tuple[str, float] | None = None

    def rows(self, pc_count: int) -> int:
        return self.base + math.ceil(self.per_pc * pc_count)


# THE row targets: declared once, read by the prompt (``pipeline._size_hint``) and the tool
# description (``schema.tools.with_row_targets``). A table without an entry aims for 3.
ROW_TARGETS: dict[str, RowTarget] = {
    # 1A
    "calendar_systems": RowTarget(1, note="one calendar, a second only for a rival culture"),
    "planes": RowTarget(3),
    "geography_regions": RowTarget(2, 0.75, "every PC homeland among them", ("pc", 1)),
    "historical_periods": RowTarget(4),
    "economic_systems": RowTarget(2),
    "legal_systems": RowTarget(2),
    "celestial_bodies": RowTarget(3),
    # 1B
    "races": RowTarget(2, 0.75, "every PC's race among them", ("pc", 1)),
    "character_classes": RowTarget(2, 0.75, "every PC's class among them", ("pc", 1)),
    "feats": RowTarget(4),
    "backgrounds": RowTarget(2, 0.75, "one fitting each PC's backstory", ("pc", 1)),
    # 1C
    "languages": RowTarget(3),
    "cultures": RowTarget(3, 0.5),
    "factions": RowTarget(3, 1, "every house, order, guild or crew a backstory names", ("pc", 1)),
    "pantheons": RowTarget(1),
    "deities": RowTarget(4, 0.5, "every god a backstory names", ("pc", 1)),
    # 2A
    # The cast: about two roles per NPC for the rows below that need one (roles.cast_for_roles).
    "entities": RowTarget(12, 3, "2 per PC from their backstory, the rest the supporting cast", ("pc", 2)),
    # 2B
    "locations": RowTarget(6, 1.5, "a hierarchy: regions > cities > districts > sites"),
    "dungeons": RowTarget(2, 0.5),
    "buildings": RowTarget(3, 1),
    # 2C
    "items": RowTarget(3, 1.5, "at least one made for or sought by each PC", ("pc", 1)),
    "item_effects": RowTarget(3, 1),
    "sentient_item_properties": RowTarget(1, note="at most one per item"),
    # 3A
    "quest_hooks": RowTarget(2, 1.5, "at least one per PC", ("pc", 1)),
    "encounters": RowTarget(3, 1),
    # 3B
    "shops": RowTarget(3, 0.5),
    "taverns": RowTarget(2, 0.5),
    "temples": RowTarget(2, 0.5),
    # 3C
    "entity_relationships": RowTarget(4, 2),
    "entity_locations": RowTarget(12, 3, "every NPC somewhere", ("entities", 1)),
    "entity_factions": RowTarget(4, 1),
    "entity_items": RowTarget(2, 1),
    "entity_deities": RowTarget(2, 0.5),
    "faction_relationships": RowTarget(3, 0.5),
    "faction_locations": RowTarget(4, 0.5),
    "location_connections": RowTarget(4, 1),
    "quest_hook_entities": RowTarget(3, 1.5),
    "quest_hook_locations": RowTarget(3, 1.5),
    "pc_connections": RowTarget(0, 5, "per PC: an NPC, a place, an item, a quest and a faction", ("pc", 5)),
}
DEFAULT_ROW_TARGET = RowTarget(3)


# The quick profile's row targets: a lean world, about what the world checks need (every PC with an
# NPC, a place and a quest, nothing orphaned), so three calls fit in about 7K output tokens.
QUICK_ROW_TARGETS: dict[str, RowTarget] = {
    # Q1
    "calendar_systems": RowTarget(1),
    "planes": RowTarget(1),
    "geography_regions": RowTarget(1, 0.5, "the PCs' homelands among them, shared where stories allow", ("pc", 0.5)),
    "historical_periods": RowTarget(1),
    "economic_systems": RowTarget(1),
    "legal_systems": RowTarget(1),
    "celestial_bodies": RowTarget(1),
    "races": RowTarget(0, 1, "every PC's race among them (PCs may share one)", ("pc", 1)),
    "character_classes": RowTarget(0, 1, "every PC's class among them (PCs may share one)", ("pc", 1)),
    "feats": RowTarget(1),
    "backgrounds": RowTarget(1, 0.25),
    "languages": RowTarget(1),
    "cultures": RowTarget(1),
    "factions": RowTarget(2),
    "pantheons": RowTarget(1),
    "deities": RowTarget(1),
    # Q2
    "entities": RowTarget(2, 0.5, "one NPC per two PCs from their backstories, a ruler and a villain", ("pc", 0.5)),
    "locations": RowTarget(2, 0.25, "a city and its district or site"),
    "dungeons": RowTarget(1),
    "buildings": RowTarget(1),
    "items": RowTarget(1),
    "item_effects": RowTarget(1),
    "sentient_item_properties": RowTarget(1),
    # Q3
    "quest_hooks": RowTarget(0, 0.5, "one per two PCs", ("pc", 0.5)),
    "encounters": RowTarget(1),
    "shops": RowTarget(1),
    "taverns": RowTarget(1),
    "temples": RowTarget(1),
    "entity_relationships": RowTarget(1),
    "entity_locations": RowTarget(2, 0.5, "every NPC somewhere", ("entities", 1)),
    "entity_factions": RowTarget(1),
    "entity_items": RowTarget(1),
    "entity_deities": RowTarget(1),
    "faction_relationships": RowTarget(1),
    "faction_locations": RowTarget(1),
    "location_connections": RowTarget(1),
    "quest_hook_entities": RowTarget(1),
    "quest_hook_locations": RowTarget(1),
    "pc_connections": RowTarget(0, 5, "per PC: an NPC, a place, an item, a quest and a faction", ("pc", 5)),
}
PROFILE_ROW_TARGETS: dict[str, dict[str, RowTarget]] = {"full": ROW_TARGETS, "quick": QUICK_ROW_TARGETS}


def row_targets(profile: str = "full") -> dict[str, RowTarget]:
    return PROFILE_ROW_TARGETS[profile]


def row_target(table: str, pc_count: int, cap: int, profile: str = "full") -> int:
    """The number of rows to aim for in ``table`` for a party of ``pc_count``, at most ``cap``."""
    return min(cap, row_targets(profile).get(table, DEFAULT_ROW_TARGET).rows(pc_count))


@dataclass(frozen=True)
class Phase:
    id: str
    name: str
    tables: tuple[str, ...]  # insert order: a table's in-phase parents come first
    depends_on: tuple[str, ...]
    focus: str
    uses_player_characters: bool = True  # every phase sees the party (issue 11)
    # Output tokens of one call of a generous world (6 PCs), measured with `make bench-world`.
    expected_output_tokens: int = 8000
    memory_mb: int = 512
    max_rows_per_table: int = 40
    # Claude model unless settings override it (WORLDGEN_PHASE_MODELS / WORLDGEN_DEFAULT_MODEL).
    # Sonnet 5.5 (structured outputs): two thirds of Sonnet 4.6's cost per world (make bench-models).
    model: str = "claude-sonnet-5-5"
    # The rows a phase is told of the world so far, in characters / 4: at 10000 the compact tables
    # show a typical world's phases 2A-3B at least the rows 12000 showed as JSON lines (issue 22).
    context_token_budget: int = 10000
    # Parts: groups of the phase's tables, generated by concurrent calls from the same context,
    # then validated and saved together as one phase. Without an outline no group may refer to
    # another group's table; with one (``outline``) a first short call fixes every row's key and
    # name, so groups may refer to each other's rows, and a table listed in several groups has its
    # outline rows dealt out between them.
    parts: tuple[tuple[str, ...], ...] = ()
    outline: bool = False
    # A phase that ties earlier rows together (3C): its context shows every row of the tables its
    # tables refer to, in summary, and no other table, instead of the whole world cut to the budget;
    # one context for all its parts, so they share one cached prefix.
    shows_referenced_only: bool = False
    strict_tools: bool = False
    state_timeout_margin_seconds: int = 60
    profile: str = "full"  # the profile (PROFILES) whose state machine runs the phase

    @property
    def slug(self) -> str:
        return self.id.lower()

    @property
    def state_name(self) -> str:
        return "Phase" + self.id + re.sub(r"[^A-Za-z]", "", self.name.title())

    @property
    def function_id(self) -> str:
        """Logical id of the Lambda function (CDK) and stem of the ASL placeholder."""
        return f"Phase{self.id}Function"

    @property
    def table_groups(self) -> tuple[tuple[str, ...], ...]:
        """The tables of each call: the parts, or all tables in one call."""
        return self.parts or (self.tables,)

    def parts_writing(self, table: str) -> tuple[int, ...]:
        """The parts (indexes in ``table_groups``) that write ``table``: several for a long table dealt between them."""
        return tuple(i for i, group in enumerate(self.table_groups) if table in group)

    @property
    def planned_calls(self) -> int:
        """Model calls of a first attempt without repairs: the outline, if any, and one per part."""
        return len(self.table_groups) + (1 if self.outline else 0)

    @property
    def max_tokens(self) -> int:
        """The expected answer with headroom, in thousands."""
        return math.ceil(self.expected_output_tokens * MAX_TOKENS_HEADROOM / 1000) * 1000

    @property
    def stream_deadline_seconds(self) -> int:
        return stream_deadline_seconds(self.max_tokens)

    @property
    def outline_deadline_seconds(self) -> int:
        """The outline call's deadline (0 without an outline)."""
        return stream_deadline_seconds(OUTLINE_MAX_TOKENS) if self.outline else 0

    @property
    def primer_deadline_seconds(self) -> int:
        """The cache primer's deadline: parts without an outline send one first (0 otherwise)."""
        return stream_deadline_seconds(PRIMER_MAX_TOKENS) if self.primes_cache else 0

    @property
    def primes_cache(self) -> bool:
        """Parts sharing one prefix without an outline call to write it send a one-token primer first
        (a prefix is readable only once its writer has begun: parts sent at once would each pay the write)."""
        return len(self.table_groups) > 1 and not self.outline

    @property
    def round_seconds(self) -> int:
        """One round at its deadlines: the outline's call, if any, then the calls side by side."""
        return self.outline_deadline_seconds + self.stream_deadline_seconds

    @property
    def repair_rounds(self) -> int:
        """The repair rounds that fit in one Lambda after the first round (at most REPAIR_ROUNDS):
        the outline and the parts each get as many, one after the other."""
        fitting = (LAMBDA_MAX_SECONDS - SAVE_SECONDS - self.primer_deadline_seconds) // self.round_seconds - 1
        return max(0, min(REPAIR_ROUNDS, fitting))

    @property
    def lambda_timeout_seconds(self) -> int:
        """Every round's calls at their deadlines, the primer, and the save, rounded up to 10 s."""
        needed = self.round_seconds * (self.repair_rounds + 1) + self.primer_deadline_seconds + SAVE_SECONDS
        return min(LAMBDA_MAX_SECONDS, math.ceil(needed / 10) * 10)

    @property
    def state_timeout_seconds(self) -> int:
        # The state times out after the Lambda, so a retry never overlaps a running attempt.
        return self.lambda_timeout_seconds + self.state_timeout_margin_seconds

    @property
    def tool_name(self) -> str:
        return f"record_phase_{self.slug}"


PHASES: tuple[Phase, ...] = (
    Phase(
        id="1A",
        name="Core world systems",
        tables=(
            "calendar_systems",
            "planes",
            "geography_regions",
            "historical_periods",
            "economic_systems",
            "legal_systems",
            "celestial_bodies",
        ),
        depends_on=(),
        focus="the foundations: time, planes, geography, history, economy, law and the sky, with the PCs' homelands",
        expected_output_tokens=2000,  # per part: the largest of a generous world's (1,700 in 1A-3A)
        outline=True,
        parts=(
            ("calendar_systems",),
            ("planes",),
            ("planes",),
            ("geography_regions",),
            ("geography_regions",),
            ("historical_periods",),
            ("historical_periods",),
            ("economic_systems",),
            ("legal_systems",),
            ("celestial_bodies",),
            ("celestial_bodies",),
        ),
    ),
    Phase(
        id="1B",
        name="Character building systems",
        tables=("races", "character_classes", "feats", "backgrounds"),
        depends_on=("1A",),
        focus="character options rooted in phase 1A: every PC's race, class and background among them",
        expected_output_tokens=2000,
        outline=True,
        parts=(
            ("races",),
            ("races",),
            ("character_classes",),
            ("character_classes",),
            ("character_classes",),
            ("feats",),
            ("feats",),
            ("feats",),
            ("backgrounds",),
            ("backgrounds",),
            ("backgrounds",),
        ),
    ),
    Phase(
        id="1C",
        name="Social framework",
        tables=("languages", "cultures", "factions", "pantheons", "deities"),
        depends_on=("1A", "1B"),
        focus="religion and society on the races and regions, with every house, faction and god a backstory names",
        expected_output_tokens=2000,
        outline=True,
        parts=(
            ("languages",),
            ("languages",),
            ("cultures",),
            ("cultures",),
            ("factions",),
            ("factions",),
            ("factions",),
            ("pantheons",),
            ("deities",),
        ),
    ),
    Phase(
        id="2A",
        name="PC connected entities",
        tables=("entities",),
        depends_on=("1A", "1B", "1C"),
        focus="the NPCs of the PCs' backstories and the cast later phases need: rulers, villains, owners, priests",
        expected_output_tokens=2000,
        outline=True,
        parts=(("entities",),) * 8,
        uses_player_characters=True,
        max_rows_per_table=60,  # a generous world's cast: its 100 roles at two per NPC
    ),
    Phase(
        id="2B",
        name="PC connected locations",
        tables=("locations", "dungeons", "buildings"),
        depends_on=("1A", "1B", "1C", "2A"),
        focus="the places those stories need: a hierarchy of regions, cities, districts and sites",
        expected_output_tokens=2000,
        outline=True,
        parts=(
            ("locations",),
            ("locations",),
            ("locations",),
            ("locations",),
            ("locations",),
            ("dungeons",),
            ("buildings",),
            ("buildings",),
        ),
        uses_player_characters=True,
    ),
    Phase(
        id="2C",
        name="PC connected items",
        tables=("items", "item_effects", "sentient_item_properties"),
        depends_on=("2B",),
        focus="the equipment and artifacts the stories need, some made for a player character",
        expected_output_tokens=2000,
        outline=True,
        parts=(("items",),) * 4 + (("item_effects",),) * 3 + (("sentient_item_properties",),),
        uses_player_characters=True,
    ),
    Phase(
        id="3A",
        name="Quest hooks and encounters",
        tables=("quest_hooks", "encounters"),
        depends_on=("2C",),
        focus="adventures tying the characters, places and items together",
        expected_output_tokens=2000,
        outline=True,
        parts=(("quest_hooks",), ("quest_hooks",), ("quest_hooks",), ("encounters",), ("encounters",), ("encounters",)),
        uses_player_characters=True,
    ),
    Phase(
        id="3B",
        name="World population",
        tables=("shops", "taverns", "temples"),
        depends_on=("2B",),
        focus="businesses and services in the locations: shops, taverns and temples",
        expected_output_tokens=3500,
        parts=(("shops",), ("taverns",), ("temples",)),  # no references between them: no outline
        uses_player_characters=True,
    ),
    Phase(
        id="3C",
        name="Final relationships",
        tables=(
            "entity_relationships",
            "entity_locations",
            "entity_factions",
            "entity_items",
            "entity_deities",
            "faction_relationships",
            "faction_locations",
            "location_connections",
            "quest_hook_entities",
            "quest_hook_locations",
            "pc_connections",
        ),
        depends_on=("3A", "3B"),
        focus="the web of relationships between everything generated so far",
        expected_output_tokens=2500,  # per part: the largest of a generous world's (2,200 in 16 parts)
        uses_player_characters=True,
        max_rows_per_table=80,
        # The parts see every row they tie together, in summary (issue 24): NPCs, places, factions,
        # items, deities, temples and quests, in one context all the parts share (issue 22).
        shows_referenced_only=True,
        context_token_budget=17000,
        # A table per part; a long one dealt between parts by the rows of its first required reference
        # (parts.deal_anchors: entity_locations by NPC, pc_connections by PC).
        parts=(
            ("entity_relationships",),
            ("entity_relationships",),
            ("entity_locations",),
            ("entity_locations",),
            ("entity_locations",),
            ("entity_locations",),
            ("entity_factions",),
            ("entity_items",),
            ("entity_deities",),
            ("faction_relationships",),
            ("faction_locations",),
            ("location_connections",),
            ("quest_hook_entities",),
            ("quest_hook_locations",),
            ("pc_connections",),
            ("pc_connections",),
        ),
    ),
)


def _tables_of(*phase_ids: str) -> tuple[str, ...]:
    """The tables of full-profile phases, in their insert order."""
    return tuple(t for pid in phase_ids for t in next(p for p in PHASES if p.id == pid).tables)


# The quick profile (the customer's fallback): the same tables in three phases, a lean world (its own
# row targets, QUICK_ROW_TARGETS, and short descriptions); expected tokens from a generous (6-PC)
# quick world of `make bench-world`'s simulator. Grouped along the foreign keys: every table's
# parents are in its own phase or an earlier one. Q2 and Q3 are one call each; Q1 is an outline and
# two parts, since its tables in one request break the schema limits of the default model.
QUICK_PHASES: tuple[Phase, ...] = (
    Phase(
        id="Q1",
        name="Quick foundations",
        tables=_tables_of("1A", "1B", "1C"),
        depends_on=(),
        focus="the world's foundations in brief: geography, history, economy, law, sky, character options,"
        " cultures, factions and gods, with every PC's race and class, and the PCs' homelands and backgrounds",
        expected_output_tokens=2000,  # per part
        profile="quick",
        # In one request its 16 tables have 29 optional references: over the 24 that strict tools and
        # structured outputs (the default model) allow per request. An outline, then two parts.
        outline=True,
        parts=(_tables_of("1A"), _tables_of("1B", "1C")),
    ),
    Phase(
        id="Q2",
        name="Quick PC connected world",
        tables=_tables_of("2A", "2B", "2C"),
        depends_on=("Q1",),
        focus="the NPCs, places and items the PCs' backstories need, in brief",
        expected_output_tokens=1800,
        profile="quick",
    ),
    Phase(
        id="Q3",
        name="Quick population and relationships",
        tables=_tables_of("3A", "3B", "3C"),
        depends_on=("Q2",),
        focus="quests, services and the links that tie every PC to an NPC, a place and a quest",
        expected_output_tokens=5000,
        profile="quick",
        max_rows_per_table=80,
    ),
)

PROFILES: dict[str, tuple[Phase, ...]] = {"full": PHASES, "quick": QUICK_PHASES}
PROFILE_NAMES: tuple[str, ...] = tuple(PROFILES)
DEFAULT_PROFILE = "full"
ALL_PHASES: tuple[Phase, ...] = tuple(phase for phases in PROFILES.values() for phase in phases)
PHASES_BY_ID: dict[str, Phase] = {phase.id: phase for phase in PHASES}
ANY_PHASE_BY_ID: dict[str, Phase] = {phase.id: phase for phase in ALL_PHASES}
WORLD_TABLES: tuple[str, ...] = tuple(table for phase in PHASES for table in phase.tables)
# The relationship tables: rows that only tie two other rows together (3C's), never a role of an NPC.
RELATIONSHIP_TABLES: tuple[str, ...] = PHASES_BY_ID["3C"].tables
ALL_TABLES: tuple[str, ...] = CORE_TABLES + WORLD_TABLES


def profile_phases(profile: str) -> tuple[Phase, ...]:
    """The phases of ``profile``; KeyError naming the profiles when there is no such profile."""
    try:
        return PROFILES[profile]
    except KeyError:
        raise KeyError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}") from None


def get_phase(phase_id: str) -> Phase:
    """A phase of any profile by id."""
    try:
        return ANY_PHASE_BY_ID[phase_id.upper()]
    except KeyError:
        valid = ", ".join(ANY_PHASE_BY_ID)
        raise KeyError(f"unknown phase {phase_id!r}; valid phases: {valid}") from None


def phase_of_table(table: str) -> Phase | None:
    for phase in PHASES:
        if table in phase.tables:
            return phase
    return None


@cache
def ancestors(phase_id: str) -> frozenset[str]:
    """Every phase that must have succeeded before ``phase_id`` (transitive ``depends_on``)."""
    found: set[str] = set()
    for dep in ANY_PHASE_BY_ID[phase_id].depends_on:
        found.add(dep)
        found |= ancestors(dep)
    return frozenset(found)


def descendants(phase_id: str) -> list[str]:
    """``phase_id`` and every phase downstream of it in its profile, in registry order."""
    phases = PROFILES[ANY_PHASE_BY_ID[phase_id].profile]
    return [p.id for p in phases if p.id == phase_id or phase_id in ancestors(p.id)]


def topological_order(phases: Iterable[Phase] = PHASES) -> list[Phase]:
    """Kahn's algorithm over ``phases``; dependencies outside them count as met. ValueError on a cycle."""
    pending = {p.id: p for p in phases}
    given = set(pending)
    done: list[Phase] = []
    done_ids: set[str] = set()
    while pending:
        ready = [p for p in pending.values() if all(d in done_ids or d not in given for d in p.depends_on)]
        if not ready:
            raise ValueError(f"phase dependency cycle among {sorted(pending)}")
        for phase in ready:
            done.append(phase)
            done_ids.add(phase.id)
            del pending[phase.id]
    return done
