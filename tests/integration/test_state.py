"""worldgen.state, the one owner of generation state: allowed transitions, one winner per race, the fence."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg
import pytest

from worldgen import state
from worldgen.db.connection import connect
from worldgen.errors import AttemptSuperseded, GenerationCancelled
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file
from worldgen.phases import get_phase

STATUSES = ("pending", "running", "succeeded", "failed", "cancelled", "reverted", "discarded")
SUMMARY = {"rows_total": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "phases": [], "model_calls": []}


@pytest.fixture
def campaign_id(conn: psycopg.Connection[dict[str, Any]]) -> uuid.UUID:
    return insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))


def _generation_in(conn: psycopg.Connection[Any], campaign_id: uuid.UUID, status: str) -> uuid.UUID:
    generation_id = state.create_generation(conn, campaign_id, provider="procedural")
    conn.execute("UPDATE generations SET status = %s WHERE id = %s", (status, str(generation_id)))
    return generation_id


EVENTS = {
    "start": lambda conn, g: state.start_execution(conn, g, "arn:execution"),
    "resume": lambda conn, g: state.claim_resume(conn, g)[0],
    "succeed": lambda conn, g: state.complete_generation(conn, g, SUMMARY),
    "fail": lambda conn, g: state.fail_generation(conn, g, "Boom", "it broke", redrivable=True),
    "cancel": lambda conn, g: state.cancel_generation(conn, g),
    "revert": lambda conn, g: state.revert_generation(conn, g),
    "discard": lambda conn, g: state.discard_generation(conn, g),
}


@pytest.mark.parametrize("event", sorted(EVENTS))
@pytest.mark.parametrize("status", STATUSES)
def test_each_event_moves_a_generation_only_from_the_statuses_the_table_allows(conn, campaign_id, event, status):
    generation_id = _generation_in(conn, campaign_id, status)
    allowed, target = state.GENERATION_TRANSITIONS[event]

    moved = EVENTS[event](conn, generation_id)

    now = conn.execute("SELECT status FROM generations WHERE id = %s", (str(generation_id),)).fetchone()["status"]
    assert moved.moved is (status in allowed)
    assert now == (target if status in allowed else status)


def test_cancel_racing_completion_has_exactly_one_winner_and_a_consistent_campaign(db_url, campaign_id):
    for _ in range(10):
        with connect(db_url) as setup:
            generation_id = _generation_in(setup, campaign_id, "running")
        results: dict[str, state.Transition] = {}
        barrier = threading.Barrier(2)

        def run(
            name: str,
            action: Any,
            generation_id: uuid.UUID = generation_id,
            barrier: threading.Barrier = barrier,
            results: dict[str, state.Transition] = results,
        ) -> None:
            with connect(db_url) as own:
                barrier.wait()
                results[name] = action(own, generation_id)

        threads = [
            threading.Thread(target=run, args=("complete", EVENTS["succeed"])),
            threading.Thread(target=run, args=("cancel", EVENTS["cancel"])),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(r.moved for r in results.values()) == [False, True]
        with connect(db_url) as check:
            generation = check.execute("SELECT status FROM generations WHERE id = %s", (str(generation_id),)).fetchone()
            campaign = check.execute("SELECT status FROM campaigns WHERE id = %s", (str(campaign_id),)).fetchone()
        assert generation is not None and campaign is not None
        winner = next(name for name, r in results.items() if r.moved)
        assert generation["status"] == ("succeeded" if winner == "complete" else "cancelled")
        assert campaign["status"] in ("generated", "draft")
        if winner == "complete":
            assert campaign["status"] == "generated"


def test_a_phase_of_a_cancelled_generation_can_neither_start_nor_commit(conn, campaign_id):
    generation_id = _generation_in(conn, campaign_id, "running")
    phase = get_phase("1A")
    attempt = state.start_phase_attempt(conn, generation_id, phase)
    state.cancel_generation(conn, generation_id)

    with pytest.raises(GenerationCancelled), conn.transaction():
        state.fence_phase_commit(conn, generation_id, phase, attempt)
    with pytest.raises(GenerationCancelled):
        state.start_phase_attempt(conn, generation_id, get_phase("1B"))


def test_an_older_attempt_cannot_commit_after_a_newer_one_started(conn, campaign_id):
    generation_id = _generation_in(conn, campaign_id, "running")
    phase = get_phase("1A")
    first = state.start_phase_attempt(conn, generation_id, phase)
    second = state.start_phase_attempt(conn, generation_id, phase)

    with pytest.raises(AttemptSuperseded), conn.transaction():
        state.fence_phase_commit(conn, generation_id, phase, first)
    with conn.transaction():
        state.fence_phase_commit(conn, generation_id, phase, second)


def test_an_ended_executions_late_event_does_not_fail_the_run_a_resume_started(conn, campaign_id):
    generation_id = _generation_in(conn, campaign_id, "failed")
    conn.execute("UPDATE generations SET execution_arn = 'arn:first' WHERE id = %s", (str(generation_id),))
    assert state.claim_resume(conn, generation_id)[0].moved
    state.set_execution_arn(conn, generation_id, "arn:second")

    late = state.record_execution_end(conn, generation_id, "FAILED", "Boom", "old", execution_arn="arn:first")

    assert not late.moved
    assert late.status == "running"
