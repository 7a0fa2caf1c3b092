"""Continuity findings (issue 24): each rule reported with its rows on a world where it is planted,
none on the demo world, and the repairable rules sent back to the phase that wrote the row."""

from __future__ import annotations

import json
import threading
from typing import Any

import psycopg
import pytest

from tests.shared import one_row
from tests.support.worlds import generate_sample_world
from worldgen import continuity, state
from worldgen.audit import audit_world
from worldgen.continuity import Finding
from worldgen.errors import ConfigurationError
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file
from worldgen.model.base import ModelRequest, ModelResponse
from worldgen.model.procedural import ProceduralModel
from worldgen.phases import get_phase
from worldgen.pipeline import run_phase
from worldgen.settings import get_settings

Conn = psycopg.Connection[dict[str, Any]]


def generation_of(conn: Conn, campaign: Any) -> Any:
    return one_row(conn.execute("SELECT id FROM generations WHERE campaign_id = %s", (campaign,)))["id"]


def by_rule(findings: list[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.rule == rule]


@pytest.fixture
def sample_world(settings_env: str, conn: Conn) -> dict[str, Any]:
    campaign = generate_sample_world(conn)
    conn.commit()
    return {"campaign": campaign, "generation": generation_of(conn, campaign)}


def test_the_demo_world_has_no_continuity_findings(conn: Conn, sample_world: dict[str, Any]) -> None:
    report = audit_world(conn, sample_world["generation"])

    assert "\n".join(f.render() for f in report.continuity) == ""
    assert "continuity: 0 finding(s) (level-band 0, name-clash 0, region-mismatch 0, foreign-temple 0)" in (
        report.render()
    )


def first_key(conn: Conn, table: str, campaign: Any, where: str = "TRUE") -> dict[str, Any]:
    return one_row(
        conn.execute(f"SELECT * FROM {table} WHERE campaign_id = %s AND {where} ORDER BY key LIMIT 1", (campaign,))
    )


def test_each_rule_planted_in_a_real_world_is_reported_with_its_rows(conn: Conn, sample_world: dict[str, Any]) -> None:
    campaign = sample_world["campaign"]
    # level-band: a quest for level 18 in a party of level 3
    quest = first_key(conn, "quest_hooks", campaign)
    conn.execute("UPDATE quest_hooks SET recommended_level = 18 WHERE id = %s", (quest["id"],))
    # name-clash: an NPC named like a location, and another like a player character
    npcs = conn.execute("SELECT * FROM entities WHERE campaign_id = %s ORDER BY key LIMIT 2", (campaign,)).fetchall()
    place = first_key(conn, "locations", campaign)
    conn.execute("UPDATE entities SET name = upper(%s) WHERE id = %s", (place["name"], npcs[0]["id"]))
    conn.execute("UPDATE entities SET name = 'Isolde Marrow' WHERE id = %s", (npcs[1]["id"],))
    # region-mismatch: a child place in a region of its own, outside its parent's region
    child = first_key(conn, "locations", campaign, "parent_location_id IS NOT NULL")
    parent = one_row(conn.execute("SELECT * FROM locations WHERE id = %s", (child["parent_location_id"],)))
    far, near = (
        one_row(conn.execute("INSERT INTO geography_regions (campaign_id, generation_id, key, name, description,"
                             " region_type) VALUES (%s, %s, %s, %s, 'A region.', 'island') RETURNING id",
                             (campaign, sample_world["generation"], key, key.replace("-", " ").title())))["id"]
        for key in ("far-isles", "near-coast")
    )  # fmt: skip
    conn.execute("UPDATE locations SET region_id = %s WHERE id = %s", (near, parent["id"]))
    conn.execute("UPDATE locations SET region_id = %s WHERE id = %s", (far, child["id"]))
    # foreign-temple: the temple's deity is worshipped by a culture of a region elsewhere
    temple = first_key(conn, "temples", campaign)
    deity = one_row(conn.execute("SELECT * FROM deities WHERE id = %s", (temple["deity_id"],)))
    pantheon = one_row(conn.execute("SELECT * FROM pantheons WHERE id = %s", (deity["pantheon_id"],)))
    culture = first_key(conn, "cultures", campaign)
    conn.execute("UPDATE pantheons SET culture_id = %s WHERE id = %s", (culture["id"], pantheon["id"]))
    conn.execute("UPDATE cultures SET region_id = %s WHERE id = %s", (far, culture["id"]))
    conn.execute("UPDATE locations SET region_id = %s WHERE id = %s", (near, temple["location_id"]))
    conn.commit()

    report = audit_world(conn, sample_world["generation"])

    level = by_rule(report.continuity, "level-band")
    assert [f.rows for f in level] == [(("quest_hooks", quest["key"]),)]
    assert "level 18" in level[0].message and "average level is 3" in level[0].message
    clashes = {f.rows for f in by_rule(report.continuity, "name-clash")}
    assert (("player_characters", "isolde-marrow"), ("entities", npcs[1]["key"])) in clashes
    assert any({("entities", npcs[0]["key"]), ("locations", place["key"])} <= set(rows) for rows in clashes)
    mismatch = by_rule(report.continuity, "region-mismatch")
    assert (("locations", child["key"]), ("locations", parent["key"])) in [f.rows for f in mismatch]
    temples = by_rule(report.continuity, "foreign-temple")
    assert [f.rows for f in temples if f.rows[0] == ("temples", temple["key"])] == [
        (("temples", temple["key"]), ("deities", deity["key"]))
    ]
    assert "Far Isles" in temples[0].message and "Near Coast" in temples[0].message
    # in text and in JSON, counted per rule
    text = report.render()
    assert f"[level-band] quest_hooks/{quest['key']}:" in text
    counted = report.as_dict()["continuity_counts"]
    assert counted["level-band"] == 1 and counted["region-mismatch"] >= 1 and counted["foreign-temple"] >= 1
    listed = json.loads(json.dumps(report.as_dict(), default=str))["continuity"]
    assert {"rule": "level-band", "rows": [{"table": "quest_hooks", "key": quest["key"]}],
            "message": level[0].message} in listed  # fmt: skip


def test_a_region_inside_the_parent_s_region_is_no_mismatch() -> None:
    world: continuity.KeyWorld = {
        "geography_regions": {"realm": {"key": "realm"}, "shire": {"key": "shire", "parent_region_key": "realm"}},
        "locations": {
            "capital": {"key": "capital", "name": "Capital", "region_key": "realm"},
            "village": {"key": "village", "name": "Village", "region_key": "shire", "parent_location_key": "capital"},
            "hut": {"key": "hut", "name": "Hut", "region_key": "realm", "parent_location_key": "village"},
        },
    }

    found = continuity.findings(world, [])

    assert [f.rows for f in found] == [(("locations", "hut"), ("locations", "village"))]  # realm is not in shire


class Planting:
    """The offline model, with a quest for level 18 planted in the first answer of each quest part."""

    provider = "procedural"

    def __init__(self) -> None:
        self.inner = ProceduralModel()
        self.requests: list[ModelRequest] = []
        self.lock = threading.Lock()

    def call(self, request: ModelRequest) -> ModelResponse:
        with self.lock:
            self.requests.append(request)
        response = self.inner.call(request)
        answer = response.tool_input
        writes = "quest_hooks" in request.assigned or not request.assigned  # a part, or the one call
        if request.round == 1 and writes and isinstance(answer, dict) and answer.get("quest_hooks"):
            answer["quest_hooks"][0]["recommended_level"] = 18
        return response


@pytest.fixture
def up_to_3a(settings_env: str, conn: Conn) -> Any:
    campaign = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
    generation = state.create_generation(conn, campaign, provider="procedural")
    for phase in ("1A", "1B", "1C", "2A", "2B", "2C"):
        run_phase(conn, generation, phase)
    return generation


def quest_levels(conn: Conn, generation: Any) -> list[int]:
    rows = conn.execute("SELECT recommended_level FROM quest_hooks WHERE generation_id = %s", (generation,))
    levels = [r["recommended_level"] for r in rows]
    conn.commit()
    return levels


def test_a_finding_is_advisory_unless_its_rule_is_made_repairable(conn: Conn, up_to_3a: Any) -> None:
    model = Planting()
    outcome = run_phase(conn, up_to_3a, "3A", model)

    assert outcome.status == "succeeded" and max(quest_levels(conn, up_to_3a)) == 18  # saved as answered
    assert all(r.round == 1 for r in model.requests)  # no repair round for a finding
    quest_parts = len(get_phase("3A").parts_writing("quest_hooks"))
    assert [f.rule for f in audit_world(conn, up_to_3a).continuity] == ["level-band"] * quest_parts  # one a part


def test_a_repairable_rule_s_finding_goes_back_to_the_part_that_wrote_the_row(
    conn: Conn, up_to_3a: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLDGEN_CONTINUITY_REPAIR", '["level-band"]')
    get_settings.cache_clear()
    model = Planting()

    outcome = run_phase(conn, up_to_3a, "3A", model)

    repaired = [r for r in model.requests if r.round == 2]
    assert outcome.status == "succeeded" and repaired and all("quest_hooks" in r.assigned for r in repaired)
    told = json.dumps(repaired[0].messages)
    assert "continuity (level-band)" in told and "meant for level 18" in told
    assert max(quest_levels(conn, up_to_3a)) <= 6  # the repaired answers, within 3 of level 3
    assert audit_world(conn, up_to_3a).continuity == []


def test_a_phase_in_one_call_repairs_a_repairable_finding_too(
    conn: Conn, up_to_3a: Any, monkeypatch: pytest.MonkeyPatch, one_call_phases: None
) -> None:
    monkeypatch.setenv("WORLDGEN_CONTINUITY_REPAIR", '["level-band", "name-clash"]')
    get_settings.cache_clear()
    model = Planting()

    assert run_phase(conn, up_to_3a, "3A", model).status == "succeeded"

    assert [r.round for r in model.requests] == [1, 2]  # the one call, then its repair round
    assert "continuity (level-band)" in json.dumps(model.requests[1].messages)
    assert max(quest_levels(conn, up_to_3a)) <= 6


def test_an_unknown_repairable_rule_is_a_one_line_configuration_error(
    settings_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLDGEN_CONTINUITY_REPAIR", '["level-bnad"]')
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match=r"unknown continuity rule.*level-bnad.*valid rules: level-band"):
        get_settings()


def test_the_phases_writing_judged_rows_are_told_the_facts_the_rules_use(
    conn: Conn, sample_world: dict[str, Any]
) -> None:
    from worldgen.db.context import phase_context
    from worldgen.phases import get_phase
    from worldgen.pipeline import table_specs

    campaign, specs = sample_world["campaign"], table_specs(conn)
    world, _ = continuity.load_world(conn, campaign)

    temples = phase_context(conn, campaign, get_phase("3B"), specs)
    quests = phase_context(conn, campaign, get_phase("3A"), specs)
    # A budget that leaves some regions out while rows of lower priority remain to make room.
    budgets = [phase_context(conn, campaign, get_phase("2B"), specs, token_budget=b) for b in range(3500, 8000, 250)]
    places = next(c for c in budgets if c.omitted_keys.get("geography_regions"))
    conn.commit()

    assert "Where each god is worshipped" in temples.render() and temples.worshipped_in
    for deity, region in temples.worshipped_in.items():  # every god whose culture's region is known
        pantheon = world["pantheons"][world["deities"][deity]["pantheon_key"]]
        assert world["cultures"][pantheon["culture_key"]]["region_key"] == region
    assert set(temples.place_regions) == set(world["locations"])  # every place, none cut
    assert "The party's average level is 3: quests and encounters are for levels 1 to 6." in quests.render()
    assert "average level" not in temples.render()
    left_out = places.omitted_keys.get("geography_regions", [])  # a small budget: regions left out,
    assert left_out and places.left_out_regions_told  # and the parents of those told instead
    told = places.told_region_parents()
    assert all(told[r] == world["geography_regions"][r].get("parent_region_key") for r in left_out)
