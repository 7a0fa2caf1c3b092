"""A generation's cost cap: checked before each call against the ledger and the call's worst case,
a stop as CostCapReached at a phase boundary, and a resume with a higher cap."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from support.standin import StandIn

from worldgen import state
from worldgen.cost_cap import CappedModel, spent_usd, worst_case_usd
from worldgen.errors import CostCapReached
from worldgen.local.progress import generation_report
from worldgen.model.base import ModelUsage
from worldgen.phases import get_phase
from worldgen.pipeline import run_phase
from worldgen.settings import get_settings


@pytest.fixture
def claude_env(settings_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIn]:
    with StandIn() as standin:
        monkeypatch.setenv("WORLDGEN_ANTHROPIC_API_KEY", "sk-ant-test")
        monkeypatch.setenv("WORLDGEN_ANTHROPIC_BASE_URL", standin.url)
        monkeypatch.setenv("WORLDGEN_SDK_MAX_RETRIES", "0")
        monkeypatch.setenv("WORLDGEN_DEFAULT_MODEL", "claude-sonnet-4-6")
        get_settings.cache_clear()
        yield standin


def make_generation(conn: psycopg.Connection[Any], options: dict[str, Any]) -> str:
    campaign = conn.execute(
        "INSERT INTO campaigns (owner_id, name, setting, tone) VALUES ('user-1', 'Ashen Crown', 'isles', 'grim')"
        " RETURNING id"
    ).fetchone()
    assert campaign is not None
    generation = conn.execute(
        "INSERT INTO generations (campaign_id, model_provider, phases, options)"
        " VALUES (%s, 'anthropic', %s, %s) RETURNING id",
        (campaign["id"], ["1A", "1B"], json.dumps(options)),
    ).fetchone()
    conn.commit()
    assert generation is not None
    return str(generation["id"])


def failed_run(conn: psycopg.Connection[Any], generation_id: str, phase: str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT status, error_type FROM phase_runs WHERE generation_id = %s AND phase = %s ORDER BY attempt DESC",
        (generation_id, phase),
    ).fetchone()
    conn.commit()
    assert row is not None
    return dict(row)


def test_a_phase_whose_first_call_could_pass_the_cap_stops_before_sending_it(
    claude_env: StandIn, conn: psycopg.Connection[Any]
) -> None:
    generation_id = make_generation(conn, {"max_cost_usd": 0.01})

    with pytest.raises(CostCapReached, match=r"\$0\.01 cap"):
        run_phase(conn, generation_id, "1A")

    assert claude_env.message_requests == []  # nothing was spent
    assert failed_run(conn, generation_id, "1A") == {"status": "failed", "error_type": "CostCapReached"}


def test_a_generation_stops_at_a_phase_boundary_and_resumes_with_a_higher_cap(
    claude_env: StandIn, conn: psycopg.Connection[Any]
) -> None:
    generation_id = make_generation(conn, {"max_cost_usd": 100.0})
    assert run_phase(conn, generation_id, "1A").status == "succeeded"
    spent = spent_usd(conn, generation_id)
    state.set_cost_cap(conn, generation_id, spent + 0.001)  # 1A paid for; not a whole call more
    sent = len(claude_env.message_requests)

    with pytest.raises(CostCapReached):
        run_phase(conn, generation_id, "1B")
    assert len(claude_env.message_requests) == sent and spent_usd(conn, generation_id) == spent

    state.set_cost_cap(conn, generation_id, 100.0)  # what resumeGeneration's max_cost_usd does
    assert run_phase(conn, generation_id, "1B").status == "succeeded"
    assert "of a $100.00 cap" in generation_report(conn, generation_id)


class Recording:
    provider = "anthropic"

    def __init__(self) -> None:
        self.sent = 0

    def model_id(self, phase: object) -> str:
        return "claude-sonnet-4-6"

    def call(self, request: Any) -> Any:
        self.sent += 1
        return None


def test_each_call_is_checked_against_the_spent_the_in_flight_and_its_own_worst_case() -> None:
    from worldgen.db.context import PhaseContext
    from worldgen.model.base import ModelRequest
    from worldgen.schema.tools import load_tool

    phase = get_phase("1A")
    context = PhaseContext("1A", {"name": "x"}, [], {}, {})
    request = ModelRequest(phase, "system", [{"role": "user", "content": "go"}], load_tool(phase), 10_000, context)
    worst = worst_case_usd(request, "claude-sonnet-4-6")
    assert worst > 10_000 * 15.0 / 1_000_000  # max_tokens at the output price, and the prompt
    inner = Recording()
    calls = [ModelUsage("anthropic", "claude-sonnet-4-6", cost_usd=0.5)]
    capped = CappedModel(inner, phase, cap=0.5 + 2 * worst - 0.0001, spent=0.0, calls=calls)

    capped.call(request)
    capped._in_flight = worst  # another part still streaming
    with pytest.raises(CostCapReached):
        capped.call(request)

    assert inner.sent == 1
