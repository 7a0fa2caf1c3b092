"""worldgen.state, the one owner of generation state: allowed transitions, one winner per race, the fence."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
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


ARN = "arn:aws:states:us-east-1:123456789012:execution:worldgen:generation-1"
RUN_0, RUN_1 = state.ExecutionRun(ARN, 0), state.ExecutionRun(ARN, 1)


def _redriven(conn: psycopg.Connection[Any], generation_id: uuid.UUID) -> state.Transition:
    """A redrive of the generation's execution, failed as the failure recorder leaves it (redrivable)."""
    conn.execute(
        "UPDATE generations SET execution_arn = %s, redrivable = true WHERE id = %s", (ARN, str(generation_id))
    )
    return state.redrive_generation(conn, generation_id, RUN_1)


def _generation(conn: psycopg.Connection[Any], generation_id: uuid.UUID) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM generations WHERE id = %s", (str(generation_id),)).fetchone()
    assert row is not None
    return dict(row)


def _failed_at_a_phase(conn: psycopg.Connection[Any], campaign_id: uuid.UUID) -> uuid.UUID:
    """A generation whose execution ran 1A, then failed at 1B (transient, past its retries)."""
    generation_id = state.create_generation(conn, campaign_id, provider="procedural")
    state.start_execution(conn, generation_id, ARN)
    state.start_phase_attempt(conn, generation_id, get_phase("1A"), run=RUN_0)
    state.start_phase_attempt(conn, generation_id, get_phase("1B"), run=RUN_0)
    failed = state.record_execution_end(conn, generation_id, "FAILED", "ModelUnavailable", "outage", execution_arn=ARN)
    assert failed.moved and _generation(conn, generation_id)["redrivable"]
    return generation_id


EVENTS = {
    "start": lambda conn, g: state.start_execution(conn, g, "arn:execution"),
    "resume": lambda conn, g: state.claim_resume(conn, g)[0],
    "succeed": lambda conn, g: state.complete_generation(conn, g, SUMMARY),
    "fail": lambda conn, g: state.fail_generation(conn, g, "Boom", "it broke", redrivable=True),
    "cancel": lambda conn, g: state.cancel_generation(conn, g),
    "revert": lambda conn, g: state.revert_generation(conn, g),
    "discard": lambda conn, g: state.discard_generation(conn, g),
    "redrive": _redriven,
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


def test_a_redriven_phase_takes_its_failed_generation_back_to_running_once(conn, campaign_id):
    generation_id = _failed_at_a_phase(conn, campaign_id)

    attempt = state.start_phase_attempt(conn, generation_id, get_phase("1B"), run=RUN_1)

    generation = _generation(conn, generation_id)
    assert (generation["status"], generation["redrive_count"], generation["redrivable"]) == ("running", 1, False)
    assert generation["error_type"] is None and generation["finished_at"] is None
    assert attempt == 2  # the failed attempt is superseded, and this one may commit
    with conn.transaction():
        state.fence_phase_commit(conn, generation_id, get_phase("1B"), attempt)
    status = conn.execute("SELECT status FROM campaigns WHERE id = %s", (str(campaign_id),)).fetchone()["status"]
    assert status == "generating"
    # The next phase of the same run goes on without another move.
    state.start_phase_attempt(conn, generation_id, get_phase("1C"), run=RUN_1)
    assert _generation(conn, generation_id)["redrive_count"] == 1


def test_a_run_without_a_higher_redrive_count_cannot_take_a_failed_generation_back(conn, campaign_id):
    generation_id = _failed_at_a_phase(conn, campaign_id)

    with pytest.raises(GenerationCancelled, match="is failed"):
        state.start_phase_attempt(conn, generation_id, get_phase("1B"), run=RUN_0)
    with pytest.raises(GenerationCancelled, match="execution changed"):
        state.start_phase_attempt(conn, generation_id, get_phase("1B"), run=state.ExecutionRun("arn:other", 1))

    assert _generation(conn, generation_id)["status"] == "failed"


@pytest.mark.parametrize("since", ["cancel", "resume", "newer generation", "rollback"])
def test_a_redrive_after_a_cancel_a_resume_or_a_newer_generation_changes_nothing(conn, campaign_id, since):
    generation_id = _failed_at_a_phase(conn, campaign_id)
    if since == "cancel":
        assert state.cancel_generation(conn, generation_id).moved
    elif since == "resume":
        assert state.claim_resume(conn, generation_id)[0].moved
        state.set_execution_arn(conn, generation_id, "arn:resumed")
    elif since == "newer generation":
        state.create_generation(conn, campaign_id, provider="procedural")
    else:  # a permanent error was caught and rolled back: the execution ended in its Fail state
        conn.execute("UPDATE generations SET redrivable = false WHERE id = %s", (str(generation_id),))
    before = _generation(conn, generation_id)

    with pytest.raises(GenerationCancelled):
        state.start_phase_attempt(conn, generation_id, get_phase("1B"), run=RUN_1)
    completed = state.complete_generation(conn, generation_id, SUMMARY, run=RUN_1)
    rolled_back = state.fail_generation(
        conn, generation_id, "GenerationCancelled", "", redrivable=False, execution_arn=ARN, redrive_count=1
    )

    assert not completed.moved
    assert _generation(conn, generation_id)["status"] == before["status"]
    assert _generation(conn, generation_id)["redrive_count"] == 0
    if since == "resume":  # the resumed run's generation stays running: the old run's rollback is fenced
        assert not rolled_back.moved and before["status"] == "running"


def test_a_redriven_complete_generation_completes_a_generation_failed_in_it(conn, campaign_id):
    generation_id = state.create_generation(conn, campaign_id, provider="procedural")
    state.start_execution(conn, generation_id, ARN)
    state.record_execution_end(conn, generation_id, "FAILED", "DatabaseUnavailable", "", execution_arn=ARN)

    assert not state.complete_generation(conn, generation_id, SUMMARY, run=RUN_0).moved
    completed = state.complete_generation(conn, generation_id, SUMMARY, run=RUN_1)

    assert completed.moved and completed.status == "succeeded"
    assert _generation(conn, generation_id)["redrive_count"] == 1


def test_the_recorder_ignores_a_late_event_of_the_run_before_a_redrive(conn, campaign_id):
    generation_id = _failed_at_a_phase(conn, campaign_id)
    state.start_phase_attempt(conn, generation_id, get_phase("1B"), run=RUN_1)

    late = state.record_execution_end(
        conn, generation_id, "FAILED", "ModelUnavailable", "outage", execution_arn=ARN, redrive_count=0
    )
    late_aborted = state.record_execution_end(
        conn, generation_id, "ABORTED", None, None, execution_arn=ARN, redrive_count=0
    )
    undated = state.record_execution_end(
        conn, generation_id, "FAILED", "X", "", execution_arn=ARN, ended_at=datetime.now(UTC) - timedelta(minutes=5)
    )
    assert not late.moved and not late_aborted.moved and not undated.moved
    assert _generation(conn, generation_id)["status"] == "running"

    # The redriven run's own failure is recorded.
    again = state.record_execution_end(conn, generation_id, "FAILED", "Boom", "", execution_arn=ARN, redrive_count=1)
    assert again.moved and _generation(conn, generation_id)["status"] == "failed"


def test_a_redrive_before_the_failure_was_recorded_makes_the_late_failure_event_harmless(conn, campaign_id):
    generation_id = state.create_generation(conn, campaign_id, provider="procedural")
    state.start_execution(conn, generation_id, ARN)
    state.start_phase_attempt(conn, generation_id, get_phase("1A"), run=RUN_0)

    state.start_phase_attempt(conn, generation_id, get_phase("1A"), run=RUN_1)  # the redrive came first
    late = state.record_execution_end(conn, generation_id, "FAILED", "Boom", "", execution_arn=ARN, redrive_count=0)

    assert not late.moved
    assert _generation(conn, generation_id)["status"] == "running"
    with pytest.raises(GenerationCancelled, match="superseded"):  # a zombie of the first run
        state.start_phase_attempt(conn, generation_id, get_phase("1B"), run=RUN_0)


def test_a_resume_after_a_redrive_runs_its_new_execution_and_fences_the_old_one(conn, campaign_id):
    generation_id = _failed_at_a_phase(conn, campaign_id)
    state.start_phase_attempt(conn, generation_id, get_phase("1B"), run=RUN_1)  # redriven...
    state.record_execution_end(conn, generation_id, "FAILED", "Boom", "", execution_arn=ARN, redrive_count=1)
    assert state.claim_resume(conn, generation_id)[0].moved  # ...failed again, then resumed

    resumed = state.ExecutionRun("arn:resumed", 0)
    with pytest.raises(GenerationCancelled, match="execution changed"):  # the old one, redriven again
        state.start_phase_attempt(conn, generation_id, get_phase("1B"), run=state.ExecutionRun(ARN, 2))
    state.start_phase_attempt(conn, generation_id, get_phase("1B"), run=resumed)  # before its ARN is set
    state.set_execution_arn(conn, generation_id, "arn:resumed")
    state.start_phase_attempt(conn, generation_id, get_phase("1C"), run=resumed)

    generation = _generation(conn, generation_id)
    assert (generation["status"], generation["execution_arn"], generation["redrive_count"]) == (
        "running",
        "arn:resumed",
        0,
    )
