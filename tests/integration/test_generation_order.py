"""One order of generations per campaign (issue 29): an older generation is resumed, cancelled,
reverted or discarded only while no newer generation of its campaign has started; completing a
generation never touches another's snapshot; an absent snapshot is never restored as an empty world."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tests.e2e.test_cli import assert_one_clean_error
from tests.e2e.test_first_hour import worldgen
from worldgen import state
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file
from worldgen.local.runtime import LocalRuntime

STATUSES = ("pending", "running", "succeeded", "failed", "cancelled", "reverted", "discarded")
SUMMARY = {"rows_total": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "phases": [], "model_calls": []}
ORDERED = {
    "resume": lambda conn, g: state.claim_resume(conn, g)[0],
    "cancel": lambda conn, g: state.cancel_generation(conn, g),
    "revert": lambda conn, g: state.revert_generation(conn, g),
    "discard": lambda conn, g: state.discard_generation(conn, g),
}
SNAPSHOT = {"locations": [{"id": str(uuid.uuid4()), "key": "location-old"}]}


def _generation_in(
    conn: psycopg.Connection[Any], campaign_id: uuid.UUID, status: str, *, snapshot: bool = True
) -> uuid.UUID:
    """A generation in ``status``; with ``snapshot`` one that replaced a world (else the empty one it found)."""
    generation_id = state.create_generation(conn, campaign_id, provider="procedural")
    conn.execute("UPDATE generations SET status = %s WHERE id = %s", (status, str(generation_id)))
    if snapshot:
        conn.execute(
            "UPDATE generations SET replaced_world = %s WHERE id = %s",
            (psycopg.types.json.Jsonb(SNAPSHOT), str(generation_id)),
        )
    return generation_id


def _row(conn: psycopg.Connection[Any], generation_id: uuid.UUID) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM generations WHERE id = %s", (str(generation_id),)).fetchone()
    assert row is not None
    return dict(row)


@pytest.mark.parametrize("event", sorted(ORDERED))
def test_an_older_generation_does_not_move_once_a_newer_one_started_for_every_pair_of_statuses(conn, event):
    pairs = [
        (older, newer)
        for older in STATUSES
        for newer in STATUSES
        if not (older in state.ACTIVE_STATUSES and newer in state.ACTIVE_STATUSES)  # one active per campaign
    ]
    allowed = state.GENERATION_TRANSITIONS[event][0]
    for older_status, newer_status in pairs:
        campaign_id = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
        older = _generation_in(conn, campaign_id, "failed")
        newer = _generation_in(conn, campaign_id, newer_status)
        conn.execute("UPDATE generations SET status = %s WHERE id = %s", (older_status, str(older)))
        before = (_row(conn, older), _row(conn, newer))

        moved = ORDERED[event](conn, older)

        pair = (event, older_status, newer_status)
        assert not moved.moved, pair
        assert (_row(conn, older), _row(conn, newer)) == before, pair  # neither generation nor snapshot changed
        if older_status in allowed:  # refused by the order, and the refusal names the newer one
            assert moved.newer_generation == str(newer), pair
            assert str(newer) in moved.detail, pair


@pytest.mark.parametrize("event", sorted(ORDERED))
def test_the_latest_generation_still_moves_when_an_older_one_exists(conn, event):
    campaign_id = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
    _generation_in(conn, campaign_id, "failed")
    latest = _generation_in(conn, campaign_id, "failed", snapshot=False)

    assert ORDERED[event](conn, latest).moved


def test_completing_a_generation_leaves_every_other_generations_snapshot_alone(conn):
    campaign_id = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
    older = _generation_in(conn, campaign_id, "failed")
    newer = _generation_in(conn, campaign_id, "running")

    assert state.complete_generation(conn, newer, SUMMARY).moved

    assert _row(conn, older)["replaced_world"] == SNAPSHOT
    assert _row(conn, newer)["replaced_world"] is None  # a succeeded generation is no way back


def test_reverting_without_a_snapshot_is_refused_and_never_restores_an_empty_world(conn):
    campaign_id = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
    generation_id = _generation_in(conn, campaign_id, "failed")
    conn.execute("UPDATE generations SET replaced_world = NULL WHERE id = %s", (str(generation_id),))

    moved = state.revert_generation(conn, generation_id)

    assert not moved.moved and "snapshot" in moved.detail
    assert _row(conn, generation_id)["status"] == "failed"


def test_a_first_generation_replaces_nothing_and_reverts_to_the_empty_world_it_found(conn):
    campaign_id = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
    generation_id = state.create_generation(conn, campaign_id, provider="procedural")
    conn.execute("UPDATE generations SET status = 'failed' WHERE id = %s", (str(generation_id),))

    assert _row(conn, generation_id)["replaced_world"] == {}
    assert state.revert_generation(conn, generation_id).moved


@pytest.mark.parametrize(
    ("action", "command"),
    [("resumeGeneration", "resume"), ("cancelGeneration", "cancel"), ("revertGeneration", "revert"),
     ("discardGeneration", "discard")],
)  # fmt: skip
def test_the_action_answers_409_and_the_cli_one_line_naming_the_newer_generation(settings_env, action, command):
    with psycopg.connect(settings_env, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        campaign_id = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
        older = _generation_in(conn, campaign_id, "failed")
        newer = _generation_in(conn, campaign_id, "failed")

    with LocalRuntime(environment={"WORLDGEN_DATABASE_URL": settings_env}) as runtime:
        status, body = runtime.action(action, {"generation_id": str(older)}, user_id="demo-game-master")
    cli = worldgen(command, str(older), database_url=settings_env)

    assert status == 409
    assert body["extensions"]["code"] == "newer-generation"
    assert str(newer) in body["message"]
    assert_one_clean_error(cli, f"generation {newer} of its campaign started after it")
    with psycopg.connect(settings_env) as conn:
        assert conn.execute("SELECT status FROM generations WHERE id = %s", (str(older),)).fetchone() == ("failed",)
