"""run_phase: dependencies, repair loop, idempotence, zombie guard, ledger."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from worldgen import state
from worldgen.errors import GenerationCancelled, InvalidModelOutput, PhaseDependencyMissing
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file
from worldgen.model.base import ModelRequest, ModelResponse
from worldgen.model.procedural import ProceduralModel
from worldgen.phases import PHASES, get_phase
from worldgen.pipeline import run_phase


class FirstInvalidThenValid:
    """A fake WorldModel: answers the first call with a broken tool input, then with a valid one."""

    provider = "procedural"

    def __init__(self) -> None:
        self.requests: list[ModelRequest] = []
        self.inner = ProceduralModel()

    def call(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        response = self.inner.call(request)
        if len(self.requests) == 1:
            assert response.tool_input is not None
            races = response.tool_input["races"]
            races[0]["size"] = "gargantuan"  # not in the CHECK list
            races[1]["homeland_region_key"] = "atlantis"  # no such region
            races.append(dict(races[2]))  # duplicate key
        return response


@pytest.fixture
def generation(settings_env: str, conn: Any) -> dict[str, Any]:
    campaign_id = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
    generation_id = state.create_generation(conn, campaign_id, provider="procedural")
    return {"campaign_id": campaign_id, "generation_id": generation_id}


def test_repair_loop_sends_every_problem_back_and_saves_the_repaired_answer(conn, generation, one_call_phases):
    run_phase(conn, generation["generation_id"], "1A")
    model = FirstInvalidThenValid()
    outcome = run_phase(conn, generation["generation_id"], "1B", model)

    assert outcome.status == "succeeded"
    assert len(model.requests) == 2
    repair = model.requests[1].messages
    assert repair[1]["role"] == "assistant" and repair[1]["content"][0]["type"] == "tool_use"
    result = repair[2]["content"][0]
    assert result["type"] == "tool_result" and result["is_error"] is True
    assert result["tool_use_id"] == repair[1]["content"][0]["id"]
    for expected in ("gargantuan", "atlantis", "duplicate key"):
        assert expected in result["content"]
    calls = conn.execute(
        "SELECT round FROM model_calls WHERE generation_id = %s AND phase = '1B' ORDER BY round",
        (generation["generation_id"],),
    ).fetchall()
    assert [c["round"] for c in calls] == [1, 2]


def test_a_phase_that_already_succeeded_returns_its_recorded_result_without_a_model_call(conn, generation):
    first = run_phase(conn, generation["generation_id"], "1A")
    model = FirstInvalidThenValid()
    again = run_phase(conn, generation["generation_id"], "1A", model)

    assert model.requests == []
    assert again.replayed is True
    assert again.rows_total == first.rows_total
    rows = conn.execute(
        "SELECT count(*) AS n FROM planes WHERE campaign_id = %s", (generation["campaign_id"],)
    ).fetchone()
    assert rows["n"] == first.rows_per_table["planes"]


def test_a_phase_before_its_dependencies_raises_phase_dependency_missing(conn, generation):
    with pytest.raises(PhaseDependencyMissing) as raised:
        run_phase(conn, generation["generation_id"], "1B")
    assert raised.value.details == {"phase": "1B", "missing": "1A"}


def test_still_invalid_after_the_repair_rounds_is_invalid_model_output_and_recorded(conn, generation):
    class AlwaysEmpty:
        provider = "procedural"

        def call(self, request: ModelRequest) -> ModelResponse:
            response = ProceduralModel().call(request)
            response.tool_input = {"calendar_systems": "nope"}
            return response

    with pytest.raises(InvalidModelOutput):
        run_phase(conn, generation["generation_id"], "1A", AlwaysEmpty())
    run = conn.execute(
        "SELECT status, error_type FROM phase_runs WHERE generation_id = %s", (generation["generation_id"],)
    ).fetchone()
    assert run == {"status": "failed", "error_type": "InvalidModelOutput"}
    calls = conn.execute("SELECT count(*) AS n FROM model_calls").fetchone()
    assert calls["n"] == get_phase("1A").repair_rounds + 1  # the rounds its budget holds (phases.py)


def test_a_cancelled_generation_runs_no_phase(conn, generation):
    conn.execute("UPDATE generations SET status = 'cancelled' WHERE id = %s", (generation["generation_id"],))
    with pytest.raises(GenerationCancelled):
        run_phase(conn, generation["generation_id"], "1A")


def test_an_unknown_generation_is_campaign_not_found(conn, settings_env):
    from worldgen.errors import CampaignNotFound

    with pytest.raises(CampaignNotFound):
        run_phase(conn, uuid.uuid4(), "1A")


def test_the_whole_chain_of_phases_runs_in_registry_order(conn, generation):
    outcomes = [run_phase(conn, generation["generation_id"], phase.id) for phase in PHASES]
    assert all(o.status == "succeeded" and o.rows_total > 0 for o in outcomes)


def test_ten_thousand_bad_rows_make_a_bounded_repair_prompt_and_a_bounded_error(conn, generation, one_call_phases):
    """Issue 17: 10,000 bad rows made a 2.4 MB repair prompt and an error over Step Functions' 256 KB."""

    class TenThousandBadRows:
        provider = "procedural"

        def __init__(self) -> None:
            self.requests: list[ModelRequest] = []

        def call(self, request: ModelRequest) -> ModelResponse:
            self.requests.append(request)
            response = ProceduralModel().call(request)
            assert response.tool_input is not None
            response.tool_input["planes"] = [
                {"key": f"plane-{n}", "name": "x" * 300, "plane_type": "nowhere " * 40} for n in range(10_000)
            ]
            return response

    model = TenThousandBadRows()
    with pytest.raises(InvalidModelOutput) as raised:
        run_phase(conn, generation["generation_id"], "1A", model)

    repair = model.requests[1].messages[-1]["content"][0]["content"]
    assert "more problem(s) of the same kinds" in repair
    assert len(repair) < 40_000
    assert len(str(raised.value)) < 8_000
    assert raised.value.details["problem_count"] > 10_000
