"""The paced Claude simulator: the real SDK and run_phase against it, at real size, with faults."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.shared import one_row
from worldgen.errors import ConfigurationError, InvalidModelOutput, ModelOutputTruncated, ModelTimeout
from worldgen.local.simulator import SIZES, ClaudeSimulator, Fault, FaultPlan, Pace
from worldgen.model.procedural import ProceduralModel
from worldgen.model.simulated import SimulatedModel
from worldgen.phases import PHASES, get_phase
from worldgen.pipeline import run_phase
from worldgen.settings import get_settings

FAST = 100.0  # simulated seconds per real second: a 60 tokens/s answer of 6K tokens streams in 1 s


def make_generation(conn: psycopg.Connection[Any], phases: list[str], pcs: int = 4) -> str:
    campaign = conn.execute(
        "INSERT INTO campaigns (owner_id, name, setting, tone) VALUES (%s, %s, %s, %s) RETURNING id",
        ("user-1", "The Ashen Crown", "A low-magic archipelago ruled by rival merchant princes.", "grim"),
    ).fetchone()
    assert campaign is not None
    for index in range(pcs):
        conn.execute(
            "INSERT INTO player_characters (campaign_id, name, race, character_class, backstory)"
            " VALUES (%s, %s, 'human', 'fighter', 'A sailor who lost a ship to the merchant princes.')",
            (campaign["id"], f"Sailor {index + 1}"),
        )
    generation = conn.execute(
        "INSERT INTO generations (campaign_id, model_provider, phases) VALUES (%s, 'simulated', %s) RETURNING id",
        (campaign["id"], phases),
    ).fetchone()
    conn.commit()
    assert generation is not None
    return str(generation["id"])


@pytest.fixture
def simulator(request: pytest.FixtureRequest) -> Iterator[ClaudeSimulator]:
    faults = FaultPlan(request.param) if hasattr(request, "param") else None
    with ClaudeSimulator(Pace(time_factor=FAST), faults=faults, stall_seconds=600) as server:
        yield server


@pytest.fixture
def simulated_env(settings_env: str, simulator: ClaudeSimulator, monkeypatch: pytest.MonkeyPatch) -> ClaudeSimulator:
    for name, value in simulator.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WORLDGEN_SDK_MAX_RETRIES", "0")
    monkeypatch.setenv("WORLDGEN_REQUEST_TIMEOUT_SECONDS", "3000")  # 6 s real: room for the client's CPU time
    get_settings.cache_clear()
    return simulator


@pytest.fixture
def one_call_1a(monkeypatch: pytest.MonkeyPatch) -> None:
    """1A as one call (no outline, no parts) with its one-call budget: these tests are about a call."""
    import dataclasses

    import worldgen.pipeline as pipeline

    whole = dataclasses.replace(PHASES[0], parts=(), outline=False, expected_output_tokens=10000)
    monkeypatch.setattr(pipeline, "get_phase", lambda phase_id: whole if phase_id == "1A" else get_phase(phase_id))


def test_a_phase_answers_at_the_real_size_and_the_ledger_counts_what_was_streamed(
    simulated_env: ClaudeSimulator, conn: psycopg.Connection[Any]
) -> None:
    generation_id = make_generation(conn, ["1A"])
    outcome = run_phase(conn, generation_id, "1A")

    assert outcome.status == "succeeded"
    assert outcome.rows_per_table["geography_regions"] == SIZES["geography_regions"]
    assert outcome.rows_per_table["planes"] == SIZES["planes"]
    calls = conn.execute("SELECT * FROM model_calls WHERE generation_id = %s", (generation_id,)).fetchall()
    served = simulated_env.served
    assert len(calls) == len(served) == get_phase("1A").planned_calls  # the outline, then the parts
    assert all(call["provider"] == "simulated" for call in calls)
    # paired by what each call streamed (two parts may answer the same number of tokens)
    counted = ("output_tokens", "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    calls = sorted(calls, key=lambda c: tuple(c[k] for k in counted))
    served = sorted(served, key=lambda s: tuple(s.usage[k] for k in counted))
    assert [c["output_tokens"] for c in calls] == [s.usage["output_tokens"] for s in served]
    assert sum(c["output_tokens"] for c in calls) > 4000  # a real 1A answer, not 2 rows
    for call, answer in zip(calls, served, strict=True):
        assert call["input_tokens"] + call["cache_creation_input_tokens"] + call["cache_read_input_tokens"] == (
            answer.usage["input_tokens"]
            + answer.usage["cache_creation_input_tokens"]
            + answer.usage["cache_read_input_tokens"]
        )
        # latency is reported in simulated milliseconds: the first token, then the answer at 60 tokens/s
        assert call["latency_ms"] == int(answer.simulated_seconds * 1000)
        assert answer.simulated_seconds > 1.5 + answer.usage["output_tokens"] / 60
    # the parts read the phase's prompt and context from the cache the outline call wrote
    assert sum(c["cache_read_input_tokens"] > 0 for c in calls) == len(calls) - 1


def test_the_provider_refuses_to_start_without_a_simulator(settings_env: str) -> None:
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="WORLDGEN_SIMULATOR_URL"):
        SimulatedModel()


@pytest.mark.parametrize("simulator", [{("1A", 1): Fault("invalid_rows")}], indirect=True)
def test_invalid_rows_are_repaired_in_a_second_round(
    simulated_env: ClaudeSimulator, conn: psycopg.Connection[Any], one_call_1a: None
) -> None:
    generation_id = make_generation(conn, ["1A"])
    outcome = run_phase(conn, generation_id, "1A")

    assert outcome.model_calls == 2
    rounds = conn.execute(
        "SELECT round FROM model_calls WHERE generation_id = %s ORDER BY round", (generation_id,)
    ).fetchall()
    assert [r["round"] for r in rounds] == [1, 2]


@pytest.mark.parametrize("simulator", [{("1A", 1): Fault("max_tokens")}], indirect=True)
def test_an_answer_cut_at_max_tokens_is_asked_again_with_a_larger_budget(
    simulated_env: ClaudeSimulator, conn: psycopg.Connection[Any], one_call_1a: None
) -> None:
    generation_id = make_generation(conn, ["1A"])
    outcome = run_phase(conn, generation_id, "1A")

    assert outcome.status == "succeeded"
    assert [s.stop_reason for s in simulated_env.served] == ["max_tokens", "tool_use"]


def test_an_answer_longer_than_max_tokens_is_cut_there(
    simulated_env: ClaudeSimulator, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    import worldgen.pipeline as pipeline

    small = dataclasses.replace(PHASES[0], parts=(), outline=False, expected_output_tokens=300)  # max_tokens 1000
    monkeypatch.setattr(pipeline, "get_phase", lambda _id: small)
    generation_id = make_generation(conn, ["1A"])
    with pytest.raises(ModelOutputTruncated):
        run_phase(conn, generation_id, "1A")
    assert [s.usage["output_tokens"] for s in simulated_env.served] == [1000, 2000]


@pytest.mark.parametrize("simulator", [{("1A", 1): Fault("stall")}], indirect=True)
def test_a_stalled_stream_times_out_as_a_transient_error(
    simulated_env: ClaudeSimulator, conn: psycopg.Connection[Any], one_call_1a: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLDGEN_REQUEST_TIMEOUT_SECONDS", "100")  # 1 s of real time at x100: the stall lasts 6 s
    get_settings.cache_clear()
    generation_id = make_generation(conn, ["1A"])
    with pytest.raises(ModelTimeout):
        run_phase(conn, generation_id, "1A")


def test_fault_plan_from_a_seed_is_reproducible_and_scripts_every_kind() -> None:
    plan = FaultPlan.from_seed(3)

    assert plan == FaultPlan.from_seed(3)
    kinds = sorted(f.kind for f in plan.faults.values())
    assert kinds == ["invalid_rows", "max_tokens", "overloaded", "overloaded", "rate_limited", "stall"]
    assert json.dumps(sorted(map(list, plan.faults))) != json.dumps(sorted(map(list, FaultPlan.from_seed(4).faults)))


def test_a_deadline_reached_while_streaming_is_a_truncation_not_a_timeout(
    settings_env: str, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch, one_call_1a: None
) -> None:
    slow = Pace(output_tokens_per_second=10, time_factor=FAST)  # 1A's ~6K tokens take 600 s: past its deadline
    with ClaudeSimulator(slow) as server:
        for name, value in server.environment().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("WORLDGEN_REQUEST_TIMEOUT_SECONDS", "3000")
        get_settings.cache_clear()
        generation_id = make_generation(conn, ["1A"])
        with pytest.raises(ModelOutputTruncated, match="deadline"):
            run_phase(conn, generation_id, "1A")
    assert dataclasses.replace(PHASES[0], expected_output_tokens=10000).stream_deadline_seconds < 600
    failed = conn.execute("SELECT status, error_type FROM phase_runs WHERE generation_id = %s", (generation_id,))
    assert one_row(failed)["error_type"] == "ModelOutputTruncated"


@pytest.mark.parametrize("simulator", [{("1A", 1): Fault("invalid_rows")}], indirect=True)
def test_no_repair_round_starts_without_the_time_for_its_call_and_the_save(
    simulated_env: ClaudeSimulator, conn: psycopg.Connection[Any], one_call_1a: None
) -> None:
    generation_id = make_generation(conn, ["1A"])
    with pytest.raises(InvalidModelOutput, match="no time left for repair round 1"):
        run_phase(conn, generation_id, "1A", remaining_ms=lambda: 60_000)  # a minute: less than a round

    assert len(simulated_env.served) == 1
    recorded = one_row(
        conn.execute("SELECT status, error_type FROM phase_runs WHERE generation_id = %s", (generation_id,))
    )
    assert recorded["error_type"] == "InvalidModelOutput"


# 3B: parts sharing one cached prefix (3C's parts have contexts of their own, issue 24)
@pytest.mark.parametrize("simulator", [{("3B", 2): Fault("invalid_rows")}], indirect=True)  # 1: the primer
def test_a_phase_in_parts_repairs_the_failing_part_alone_and_saves_once(
    simulated_env: ClaudeSimulator, conn: psycopg.Connection[Any]
) -> None:
    generation_id = make_generation(conn, [p.id for p in PHASES])
    phase = get_phase("3B")
    for earlier in PHASES[: PHASES.index(phase)]:  # the world so far, quickly: the procedural model
        run_phase(conn, generation_id, earlier.id, ProceduralModel())
    outcome = run_phase(conn, generation_id, phase.id)

    parts = len(phase.parts)
    assert parts > 1
    assert outcome.model_calls == 1 + parts + 1  # the cache primer, every part once, the invalid one twice
    served = [s for s in simulated_env.served if s.phase == phase.id]
    assert len(served) == 1 + parts + 1
    assert served[0].stop_reason == "max_tokens" and served[0].usage["output_tokens"] == 1  # the primer
    assert all(s.usage["cache_read_input_tokens"] > 0 for s in served[1:])  # the parts read what it wrote
    assert set(outcome.rows_per_table) == set(phase.tables)
    for table, rows in outcome.rows_per_table.items():
        stored = conn.execute(f"SELECT count(*) AS n FROM {table} WHERE generation_id = %s", (generation_id,))
        assert one_row(stored)["n"] == rows > 0, table
