"""save_phase_rows on a real PostgreSQL: one transaction per phase, keys resolved to ids, every
problem reported at once, and the database unchanged whenever a save is refused."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.shared import one_row
from worldgen.db.context import phase_context
from worldgen.db.save import save_phase_rows
from worldgen.errors import InvalidModelOutput
from worldgen.model.procedural import ProceduralModel
from worldgen.phases import PHASES, Phase, get_phase
from worldgen.pipeline import model_request, table_specs
from worldgen.schema.spec import TableSpec

Conn = psycopg.Connection[dict[str, Any]]
INJECTION = "'); drop table races; --"


@dataclass(frozen=True)
class Campaign:
    id: uuid.UUID
    generation_id: uuid.UUID


@pytest.fixture
def campaign(conn: Conn) -> Campaign:
    campaign_id = one_row(
        conn.execute(
            "INSERT INTO campaigns (owner_id, name, setting, tone) VALUES (%s, %s, %s, %s) RETURNING id",
            (
                "user-1",
                "The Ashen Crown",
                "A low-magic archipelago ruled by rival merchant princes. Storms wreck ships on the reefs.",
                "grim and political",
            ),
        )
    )["id"]
    conn.execute(
        "INSERT INTO player_characters (campaign_id, name, race, character_class, level, backstory)"
        " VALUES (%s, 'Lyra Ashdown', 'half-elf', 'ranger', 3, 'Lost her brother to the Gray Guild in Port Vell.'),"
        " (%s, 'Brother Tam', 'human', 'cleric', 2, 'Fled the drowned abbey with a stolen relic.')",
        (campaign_id, campaign_id),
    )
    generation_id = one_row(
        conn.execute(
            "INSERT INTO generations (campaign_id, phases) VALUES (%s, %s) RETURNING id",
            (campaign_id, [p.id for p in PHASES]),
        )
    )["id"]
    return Campaign(campaign_id, generation_id)


@pytest.fixture
def specs(conn: Conn) -> dict[str, TableSpec]:
    return table_specs(conn)


def procedural_input(conn: Conn, campaign: Campaign, phase: Phase, specs: dict[str, TableSpec]) -> dict[str, Any]:
    """A valid tool input for ``phase``, built the way pipeline.run_phase asks the model for one."""
    context = phase_context(conn, campaign.id, phase, specs)
    request = model_request(phase, context, specs)
    tool_input = ProceduralModel(seed=11).call(request).tool_input
    assert tool_input is not None
    return tool_input


def save(conn: Conn, campaign: Campaign, phase: Phase, tool_input: dict[str, Any], specs: dict[str, TableSpec]):
    return save_phase_rows(conn, campaign.id, campaign.generation_id, phase, tool_input, specs)


def save_world(conn: Conn, campaign: Campaign, specs: dict[str, TableSpec], through: str) -> dict[str, Any]:
    """Save procedural phases 1A..``through``; returns each phase's tool input."""
    inputs = {}
    for phase in PHASES:
        inputs[phase.id] = procedural_input(conn, campaign, phase, specs)
        save(conn, campaign, phase, inputs[phase.id], specs)
        if phase.id == through:
            return inputs
    raise AssertionError(f"no phase {through}")


def snapshot(conn: Conn, tables: tuple[str, ...]) -> dict[str, list[tuple[str, str]]]:
    """(key, id) of every row of ``tables``: equal snapshots mean no row was added, removed or replaced."""
    found = {}
    for table in tables:
        rows = conn.execute(sql.SQL("SELECT key, id::text AS id FROM {} ORDER BY key").format(sql.Identifier(table)))
        found[table] = [(r["key"], r["id"]) for r in rows.fetchall()]
    return found


def ids_by_key(conn: Conn, table: str) -> dict[str, uuid.UUID]:
    rows = conn.execute(sql.SQL("SELECT key, id FROM {}").format(sql.Identifier(table))).fetchall()
    return {r["key"]: r["id"] for r in rows}


def location(key: str, kind: str, parent: str | None = None, **extra: Any) -> dict[str, Any]:
    row = {"key": key, "name": key.replace("-", " ").title(), "description": f"The {kind} of {key}.", "kind": kind}
    if parent:
        row["parent_location_key"] = parent
    return {**row, **extra}


def empty_input(phase: Phase) -> dict[str, list[dict[str, Any]]]:
    return {table: [] for table in phase.tables}


# -- replacing, atomicity ---------------------------------------------------------------------


def test_saving_the_same_phase_twice_leaves_one_copy_with_new_ids(
    conn: Conn, campaign: Campaign, specs: dict[str, TableSpec]
) -> None:
    inputs = save_world(conn, campaign, specs, through="1B")
    phase = get_phase("1B")
    first = snapshot(conn, phase.tables)

    result = save(conn, campaign, phase, inputs["1B"], specs)

    second = snapshot(conn, phase.tables)
    assert result.rows_per_table == {t: len(inputs["1B"][t]) for t in phase.tables}
    for table in phase.tables:
        assert len(second[table]) == len(first[table]) == len(inputs["1B"][table]) > 0
        assert [k for k, _ in second[table]] == [k for k, _ in first[table]]
        assert {i for _, i in second[table]}.isdisjoint(i for _, i in first[table]), "rows were replaced"


def test_a_bad_reference_in_the_last_table_writes_nothing(
    conn: Conn, campaign: Campaign, specs: dict[str, TableSpec]
) -> None:
    inputs = save_world(conn, campaign, specs, through="1B")
    phase = get_phase("1C")
    assert phase.tables[-1] == "deities"
    bad = procedural_input(conn, campaign, phase, specs)
    bad["deities"][-1]["pantheon_key"] = "no-such-pantheon"
    assert all(bad[t] for t in phase.tables)

    with pytest.raises(InvalidModelOutput):
        save(conn, campaign, phase, bad, specs)

    assert snapshot(conn, phase.tables) == {t: [] for t in phase.tables}
    assert len(snapshot(conn, ("races",))["races"]) == len(inputs["1B"]["races"])


def test_a_refused_save_keeps_the_earlier_successful_save_of_the_phase_intact(
    conn: Conn, campaign: Campaign, specs: dict[str, TableSpec]
) -> None:
    inputs = save_world(conn, campaign, specs, through="1C")
    phase = get_phase("1C")
    before = snapshot(conn, phase.tables)
    bad = copy.deepcopy(inputs["1C"])
    bad["deities"][-1]["pantheon_key"] = "no-such-pantheon"

    with pytest.raises(InvalidModelOutput):
        save(conn, campaign, phase, bad, specs)

    assert snapshot(conn, phase.tables) == before


def test_a_database_error_in_the_last_table_rolls_back_the_tables_already_written(
    conn: Conn, campaign: Campaign, specs: dict[str, TableSpec]
) -> None:
    """The failure comes from COPY into the 11th table, after the first 10 were deleted and rewritten."""
    inputs = save_world(conn, campaign, specs, through="3C")
    phase = get_phase("3C")
    assert phase.tables[-1] == "pc_connections"
    before = snapshot(conn, phase.tables)
    bad = copy.deepcopy(inputs["3C"])
    target = bad["pc_connections"][-1]
    target.update(entity_key=inputs["2A"]["entities"][0]["key"], location_key=inputs["2B"]["locations"][0]["key"])

    with pytest.raises(InvalidModelOutput):
        save(conn, campaign, phase, bad, specs)

    assert snapshot(conn, phase.tables) == before


# -- keys become ids ------------------------------------------------------------------------------


def test_a_location_hierarchy_resolves_to_the_right_parent_ids(
    conn: Conn, campaign: Campaign, specs: dict[str, TableSpec]
) -> None:
    phase = get_phase("2B")
    tool_input = empty_input(phase)
    # Children before parents: the ids are made up front, so input order does not matter.
    tool_input["locations"] = [
        location("harbour-ward", "district", parent="port-vell"),
        location("port-vell", "city", parent="north-reach", population=12000),
        location("north-reach", "region"),
    ]
    tool_input["dungeons"] = [
        {"key": "drowned-vault", "name": "Drowned Vault", "description": "Flooded.", "location_key": "harbour-ward",
         "difficulty": "hard", "recommended_min_level": 3, "recommended_max_level": 5},
    ]  # fmt: skip

    save(conn, campaign, phase, tool_input, specs)

    rows = conn.execute(
        "SELECT l.key, p.key AS parent FROM locations l LEFT JOIN locations p ON p.id = l.parent_location_id"
    ).fetchall()
    assert {r["key"]: r["parent"] for r in rows} == {
        "north-reach": None,
        "port-vell": "north-reach",
        "harbour-ward": "port-vell",
    }
    dungeon = conn.execute(
        "SELECT l.key FROM dungeons d JOIN locations l ON l.id = d.location_id WHERE d.key = 'drowned-vault'"
    ).fetchone()
    assert dungeon == {"key": "harbour-ward"}


def test_in_phase_and_earlier_phase_references_resolve_to_the_right_ids(
    conn: Conn, campaign: Campaign, specs: dict[str, TableSpec]
) -> None:
    inputs = save_world(conn, campaign, specs, through="1C")
    pantheon_ids = ids_by_key(conn, "pantheons")
    plane_ids = ids_by_key(conn, "planes")
    stored = {
        r["key"]: r
        for r in conn.execute("SELECT key, pantheon_id, plane_id FROM deities WHERE campaign_id = %s", (campaign.id,))
    }

    deities = inputs["1C"]["deities"]
    assert deities
    for deity in deities:
        assert stored[deity["key"]]["pantheon_id"] == pantheon_ids[deity["pantheon_key"]]
        if "plane_key" in deity:
            assert stored[deity["key"]]["plane_id"] == plane_ids[deity["plane_key"]]
    assert any("plane_key" in d for d in deities), "an earlier-phase reference was exercised"


def test_sql_in_a_value_is_stored_verbatim(conn: Conn, campaign: Campaign, specs: dict[str, TableSpec]) -> None:
    save_world(conn, campaign, specs, through="1A")
    phase = get_phase("1B")
    tool_input = procedural_input(conn, campaign, phase, specs)
    race = tool_input["races"][0]
    race["name"] = INJECTION
    race["description"] = f'{INJECTION} "quoted" \\ back\\slash\ttab\nnewline'
    race["traits"] = [INJECTION, "{braces}", 'a"b']

    save(conn, campaign, phase, tool_input, specs)

    stored = conn.execute("SELECT name, description, traits FROM races WHERE key = %s", (race["key"],)).fetchone()
    assert stored == {"name": race["name"], "description": race["description"], "traits": race["traits"]}
    assert conn.execute("SELECT to_regclass('public.races') IS NOT NULL AS exists").fetchone() == {"exists": True}
    assert one_row(conn.execute("SELECT count(*) AS n FROM races"))["n"] == len(tool_input["races"])


# -- every problem at once ------------------------------------------------------------------------


def test_a_bad_input_yields_one_error_listing_every_problem_and_changes_nothing(
    conn: Conn, campaign: Campaign, specs: dict[str, TableSpec]
) -> None:
    phase = get_phase("2B")
    good = empty_input(phase)
    good["locations"] = [location("north-reach", "region")]
    save(conn, campaign, phase, good, specs)
    before = snapshot(conn, phase.tables)

    bad = empty_input(phase)
    bad["locations"] = [
        location("north-reach", "region"),
        location("port-vell", "city", region_key="atlantis"),  # unknown key of an earlier phase
        location("port-vell", "town"),  # duplicate key
        location("mistmoor", "metropolis"),  # not one of the kinds
        location("gallows-hill", "site", mayor="Old Mara"),  # unknown field
    ]
    bad["dungeons"] = [
        {"key": "drowned-vault", "name": "Drowned Vault", "description": "Flooded.", "location_key": "north-reach"}
    ]  # difficulty missing
    bad["buildings"] = [
        {"key": f"hut-{n}", "name": f"Hut {n}", "description": "A hut.", "location_key": "north-reach",
         "building_type": "residence"}
        for n in range(phase.max_rows_per_table + 1)
    ]  # fmt: skip

    with pytest.raises(InvalidModelOutput) as raised:
        save(conn, campaign, phase, bad, specs)

    problems = raised.value.details["problems"]
    expected = [
        "locations[key=port-vell].region_key: no geography_regions row has key 'atlantis'",
        "locations[key=port-vell].key: duplicate key in this table",
        "locations[key=mistmoor].kind: 'metropolis' is not one of",
        "locations[key=gallows-hill].mayor: unknown field",
        "dungeons[key=drowned-vault].difficulty: required field missing",
        f"buildings: {phase.max_rows_per_table + 1} rows; at most {phase.max_rows_per_table}",
    ]
    for text in expected:
        assert any(p.startswith(text) for p in problems), f"{text!r} not in {problems}"
    assert len(problems) == len(expected)
    assert snapshot(conn, phase.tables) == before


def test_a_missing_table_and_a_table_of_another_phase_are_both_reported(
    conn: Conn, campaign: Campaign, specs: dict[str, TableSpec]
) -> None:
    phase = get_phase("2B")
    bad: dict[str, Any] = empty_input(phase)
    del bad["buildings"]
    bad["races"] = []

    with pytest.raises(InvalidModelOutput) as raised:
        save(conn, campaign, phase, bad, specs)

    problems = raised.value.details["problems"]
    assert "races: not a table of this phase" in problems
    assert "buildings: missing: give an array of rows (it may be empty)" in problems


# -- rules only the database knows ----------------------------------------------------------------


def test_a_pc_connection_with_two_targets_is_refused_before_the_database_by_key(
    conn: Conn, campaign: Campaign, specs: dict[str, TableSpec]
) -> None:
    inputs = save_world(conn, campaign, specs, through="3B")
    phase = get_phase("3C")
    tool_input = empty_input(phase)
    tool_input["pc_connections"] = [
        {"key": "lyra-and-the-port", "description": "Both her brother and her home.",
         "player_character_key": "lyra-ashdown", "connection_type": "family",
         "entity_key": inputs["2A"]["entities"][0]["key"], "location_key": inputs["2B"]["locations"][0]["key"]},
    ]  # fmt: skip

    with pytest.raises(InvalidModelOutput) as raised:
        save(conn, campaign, phase, tool_input, specs)

    assert raised.value.__cause__ is None  # checked before the save, from the catalog's CHECK
    assert raised.value.details["problems"] == [
        "pc_connections[key=lyra-and-the-port]: give exactly one of entity_key, location_key, item_key,"
        " faction_key, quest_hook_key (given: ['entity_key', 'location_key'])"
    ]
    assert one_row(conn.execute("SELECT count(*) AS n FROM pc_connections"))["n"] == 0


def test_a_dungeon_whose_min_level_exceeds_its_max_is_refused_before_the_database_by_key(
    conn: Conn, campaign: Campaign, specs: dict[str, TableSpec]
) -> None:
    phase = get_phase("2B")
    tool_input = empty_input(phase)
    tool_input["locations"] = [location("north-reach", "region")]
    tool_input["dungeons"] = [
        {"key": "drowned-vault", "name": "Drowned Vault", "description": "Flooded.", "location_key": "north-reach",
         "difficulty": "hard", "recommended_min_level": 9, "recommended_max_level": 4},
    ]  # fmt: skip

    with pytest.raises(InvalidModelOutput) as raised:
        save(conn, campaign, phase, tool_input, specs)

    assert raised.value.__cause__ is None
    assert raised.value.details["problems"] == [
        "dungeons[key=drowned-vault]: recommended_min_level must not exceed recommended_max_level"
    ]
    assert snapshot(conn, phase.tables) == {t: [] for t in phase.tables}


# -- values the database rejects but validation lets through (library bugs, see the report) ------


def test_an_integer_beyond_the_column_range_becomes_invalid_model_output(
    conn: Conn, campaign: Campaign, specs: dict[str, TableSpec]
) -> None:
    """A continent of three billion people is plausible model output; `population` is a 4-byte integer."""
    phase = get_phase("2B")
    tool_input = empty_input(phase)
    tool_input["locations"] = [location("the-mainland", "continent", population=3_000_000_000)]

    with pytest.raises(InvalidModelOutput) as raised:
        save(conn, campaign, phase, tool_input, specs)

    assert any("population" in p for p in raised.value.details["problems"])


def test_a_nul_character_in_text_becomes_invalid_model_output(
    conn: Conn, campaign: Campaign, specs: dict[str, TableSpec]
) -> None:
    phase = get_phase("2B")
    tool_input = empty_input(phase)
    tool_input["locations"] = [location("north-reach", "region", description="Cold\u0000 and grey.")]

    with pytest.raises(InvalidModelOutput) as raised:
        save(conn, campaign, phase, tool_input, specs)

    assert any("description" in p for p in raised.value.details["problems"])


def test_a_fraction_above_an_exclusive_zero_bound_of_a_numeric_column_is_accepted(
    conn: Conn, campaign: Campaign, specs: dict[str, TableSpec]
) -> None:
    """economic_systems.gold_piece_value is `numeric CHECK (gold_piece_value > 0)`, and its own comment
    gives 0.1 as an example; the database accepts 0.1, so the saver must too."""
    phase = get_phase("1A")
    tool_input = empty_input(phase)
    tool_input["economic_systems"] = [
        {"key": "crown-standard", "name": "Crown Standard", "description": "Silver crowns.",
         "economy_type": "coin", "gold_piece_value": 0.1},
    ]  # fmt: skip

    save(conn, campaign, phase, tool_input, specs)

    stored = conn.execute("SELECT gold_piece_value::text AS v FROM economic_systems").fetchone()
    assert stored == {"v": "0.1"}


# -- model output the database must never see: sizes, NaN, surrogates, cycles (issue 17) ---------


def first_phase_input(conn: Conn, campaign: Campaign, specs: dict[str, TableSpec]) -> dict[str, Any]:
    return procedural_input(conn, campaign, get_phase("1A"), specs)


def problems_of(conn: Conn, campaign: Campaign, phase: Phase, tool_input: dict[str, Any], specs) -> list[str]:
    with pytest.raises(InvalidModelOutput) as raised:
        save(conn, campaign, phase, tool_input, specs)
    return list(raised.value.details["problems"])


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_are_rejected_naming_the_row_and_field(
    conn: Conn, campaign: Campaign, specs: dict[str, TableSpec], number: float
) -> None:
    tool_input = first_phase_input(conn, campaign, specs)
    economy = tool_input["economic_systems"][0]
    economy["gold_piece_value"] = number

    problems = problems_of(conn, campaign, get_phase("1A"), tool_input, specs)

    assert problems == [
        f"economic_systems[key={economy['key']}].gold_piece_value: {number} is not a number PostgreSQL stores here;"
        " give a finite number"
    ]


def test_a_region_that_is_its_own_grandparent_is_a_cycle_named_to_the_model(
    conn: Conn, campaign: Campaign, specs: dict[str, TableSpec]
) -> None:
    tool_input = first_phase_input(conn, campaign, specs)
    regions = tool_input["geography_regions"]
    assert len(regions) >= 2
    a, b = regions[0], regions[1]
    a["parent_region_key"], b["parent_region_key"] = b["key"], a["key"]

    problems = problems_of(conn, campaign, get_phase("1A"), tool_input, specs)

    cycles = [p for p in problems if "a cycle:" in p]
    assert len(cycles) == 1, problems
    assert cycles[0].startswith("geography_regions[key=") and ".parent_region_key: a cycle:" in cycles[0]
    assert a["key"] in cycles[0] and b["key"] in cycles[0]


def test_keys_names_and_texts_beyond_their_limits_are_rejected_with_the_limit(
    conn: Conn, campaign: Campaign, specs: dict[str, TableSpec]
) -> None:
    from worldgen.db.validation import MAX_KEY_LENGTH, MAX_NAME_LENGTH, MAX_TEXT_LENGTH

    tool_input = first_phase_input(conn, campaign, specs)
    planes = tool_input["planes"]
    planes[0]["key"] = "k" * 1_000_000
    planes[1]["name"] = "N" * (MAX_NAME_LENGTH + 1)
    planes[2]["description"] = "d" * (MAX_TEXT_LENGTH + 1)

    problems = problems_of(conn, campaign, get_phase("1A"), tool_input, specs)

    key_problems = [p for p in problems if ".key: " in p]
    assert (
        len(key_problems) == 1
        and f"a key has at most {MAX_KEY_LENGTH} characters; this one has 1000000" in key_problems[0]
    )
    assert any(f"[key={planes[1]['key']}].name: at most {MAX_NAME_LENGTH} characters" in p for p in problems)
    assert any(f"[key={planes[2]['key']}].description: at most {MAX_TEXT_LENGTH} characters" in p for p in problems)
    assert max(len(p) for p in problems) <= 400


def test_a_lone_surrogate_is_rejected_before_the_database_sees_it(
    conn: Conn, campaign: Campaign, specs: dict[str, TableSpec]
) -> None:
    tool_input = first_phase_input(conn, campaign, specs)
    tool_input["planes"][0]["description"] = "half a character: \ud83d"

    problems = problems_of(conn, campaign, get_phase("1A"), tool_input, specs)

    assert any(".description: text cannot contain a lone UTF-16 surrogate" in p for p in problems), problems


def test_ten_thousand_bad_rows_give_a_bounded_error(
    conn: Conn, campaign: Campaign, specs: dict[str, TableSpec]
) -> None:
    tool_input = first_phase_input(conn, campaign, specs)
    tool_input["planes"] = [{"key": f"p-{n}", "name": "x" * 5000} for n in range(10_000)]

    with pytest.raises(InvalidModelOutput) as raised:
        save(conn, campaign, get_phase("1A"), tool_input, specs)

    assert raised.value.details["problem_count"] > 10_000
    assert len(raised.value.details["problems"]) <= 50
    assert len(str(raised.value)) < 8_000
    assert len(repr(raised.value.details)) < 32_000


def test_a_row_the_database_cannot_index_is_invalid_model_output_naming_table_and_key(
    conn: Conn, campaign: Campaign, specs: dict[str, TableSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Program limit (SQLSTATE 54000, an OperationalError in psycopg) is the rows' fault, not an outage:
    the key length limit is lifted so that the 1 MB key reaches PostgreSQL's btree index."""
    from worldgen.db import validation

    monkeypatch.setattr(validation, "MAX_KEY_LENGTH", 10_000_000)
    tool_input = first_phase_input(conn, campaign, specs)
    big, old = "k" * 1_000_000, tool_input["planes"][1]["key"]
    tool_input["planes"][1]["key"] = big
    for rows in tool_input.values():
        for row in rows:
            if row.get("plane_key") == old:
                row["plane_key"] = big

    with pytest.raises(InvalidModelOutput) as raised:
        save(conn, campaign, get_phase("1A"), tool_input, specs)

    assert isinstance(raised.value.__cause__, psycopg.errors.ProgramLimitExceeded)
    (problem,) = raised.value.details["problems"]
    assert problem.startswith("planes[key=kkkk") and "more characters)]" in problem
    assert len(problem) <= 400
