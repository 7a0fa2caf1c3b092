"""Rows of a regeneration may refer to the rows of its phase that the game master kept (issue 29):
a location locked before regenerating 2B is a valid reference for the parts' checks and for the
partial save, on the parts path and on the one-call path alike."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.integration.test_outlined_phases import Recording
from worldgen import state
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file
from worldgen.model.base import ModelRequest, ModelResponse
from worldgen.pipeline import run_phase
from worldgen.settings import get_settings


@pytest.fixture
def locked_city(settings_env: str, conn: Any) -> dict[str, Any]:
    """A world through 2B, one of its cities locked by the game master, and a regeneration of 2B."""
    campaign_id = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
    first = state.create_generation(conn, campaign_id, provider="procedural", phases=["1A", "1B", "1C", "2A", "2B"])
    for phase in ("1A", "1B", "1C", "2A", "2B"):
        run_phase(conn, first, phase)
    conn.execute("UPDATE generations SET status = 'succeeded', finished_at = now() WHERE id = %s", (first,))
    city = conn.execute(
        "SELECT id, key FROM locations WHERE campaign_id = %s ORDER BY (kind = 'city') DESC, key LIMIT 1",
        (campaign_id,),
    ).fetchone()
    conn.execute("UPDATE locations SET locked = true WHERE id = %s", (city["id"],))  # as Hasura does it
    conn.commit()
    regeneration = state.create_generation(conn, campaign_id, provider="procedural", phases=["2B"])
    return {"campaign_id": campaign_id, "generation_id": regeneration, "key": city["key"], "id": city["id"]}


def refer_to(key: str, spoil: bool = False) -> Any:
    """Every answer's first new dungeon in the kept city; with ``spoil``, its first new building is
    invalid in every round (an unknown type), so the phase ends in a partial save."""

    def tamper(request: ModelRequest, response: ModelResponse, number: int) -> None:
        answer = response.tool_input
        if request.tool["name"].endswith("_outline") or not isinstance(answer, dict):
            return
        if answer.get("dungeons"):
            answer["dungeons"][0]["location_key"] = key
        if spoil and answer.get("buildings"):
            answer["buildings"][0]["building_type"] = "spaceport"

    return tamper


def dungeons_in(conn: Any, generation_id: uuid.UUID, location_id: uuid.UUID) -> list[str]:
    rows = conn.execute(
        "SELECT key FROM dungeons WHERE generation_id = %s AND location_id = %s", (generation_id, location_id)
    ).fetchall()
    conn.commit()
    return [r["key"] for r in rows]


def dropped_rows(conn: Any, generation_id: uuid.UUID) -> list[dict[str, str]]:
    row = conn.execute(
        "SELECT dropped_rows FROM phase_runs WHERE generation_id = %s AND phase = '2B'", (generation_id,)
    ).fetchone()
    conn.commit()
    return list(row["dropped_rows"])


def test_a_part_may_refer_to_a_row_of_its_phase_the_game_master_kept(conn: Any, locked_city: dict[str, Any]) -> None:
    model = Recording(refer_to(locked_city["key"]))

    outcome = run_phase(conn, locked_city["generation_id"], "2B", model)

    assert outcome.status == "succeeded" and outcome.rows_dropped == 0
    assert dungeons_in(conn, locked_city["generation_id"], locked_city["id"])  # the new dungeon is in the kept city
    repairs = [r for r in model.requests if r.round > 1]
    assert not repairs, [str(r.messages[-1]["content"])[:300] for r in repairs]


@pytest.mark.parametrize("path", ["parts", "one call"])
def test_the_partial_save_keeps_a_row_that_refers_to_a_kept_row(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, conn: Any, locked_city: dict[str, Any], path: str
) -> None:
    if path == "one call":
        request.getfixturevalue("one_call_phases")
    monkeypatch.setenv("WORLDGEN_PARTIAL_SUCCESS_MAX_SHARE", "0.5")
    get_settings.cache_clear()
    model = Recording(refer_to(locked_city["key"], spoil=True))

    outcome = run_phase(conn, locked_city["generation_id"], "2B", model)

    assert outcome.status == "succeeded"
    dropped = dropped_rows(conn, locked_city["generation_id"])
    assert dropped and {d["table"] for d in dropped} == {"buildings"}, dropped
    assert not any(locked_city["key"] in d["reason"] for d in dropped), dropped
    assert dungeons_in(conn, locked_city["generation_id"], locked_city["id"])
