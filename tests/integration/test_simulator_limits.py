"""The paced simulator over HTTP: the default model's parts share the cache the outline call wrote,
and a tier's rate limits answer 429 with retry-after, which the phase waits out (never fatal)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from worldgen import state
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file
from worldgen.local.simulator import ClaudeSimulator, Pace, Tier
from worldgen.phases import get_phase
from worldgen.pipeline import run_phase
from worldgen.settings import get_settings

FAST = 100.0


def simulated(monkeypatch: pytest.MonkeyPatch, simulator: ClaudeSimulator, **settings: str) -> None:
    for name, value in {**simulator.environment(), "WORLDGEN_REQUEST_TIMEOUT_SECONDS": "3000", **settings}.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


def generation(conn: psycopg.Connection[Any]) -> str:
    campaign_id = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
    return str(state.create_generation(conn, campaign_id, provider="simulated", phases=["1A"]))


def calls(conn: psycopg.Connection[Any], generation_id: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT * FROM model_calls WHERE generation_id = %s", (generation_id,)).fetchall()
    conn.commit()
    return [dict(r) for r in rows]


def test_on_the_default_model_the_parts_read_the_prefix_the_outline_call_wrote(
    settings_env: str, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with ClaudeSimulator(Pace(time_factor=FAST)) as simulator:
        simulated(monkeypatch, simulator, WORLDGEN_SIMULATOR_MODEL="claude-sonnet-5-5")
        generation_id = generation(conn)

        assert run_phase(conn, generation_id, "1A").status == "succeeded"

    ledger = calls(conn, generation_id)
    outline = [c for c in ledger if c["part"] == "outline"]
    parts = [c for c in ledger if c["part"] != "outline"]
    assert len(outline) == 1 and outline[0]["cache_creation_input_tokens"] > 0
    assert len(parts) == len(get_phase("1A").table_groups)
    assert all(c["cache_read_input_tokens"] == outline[0]["cache_creation_input_tokens"] for c in parts)
    assert all(c["cache_creation_input_tokens"] == 0 for c in parts)
    assert {c["model"] for c in ledger} == {"claude-sonnet-5-5"}


def test_a_tier_too_small_for_the_parts_at_once_answers_429_and_the_phase_waits_it_out(
    settings_env: str, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    small = Tier("small", 1_000, 10_000_000, 12_000)  # two parts of 1A (5,000 max_tokens each) at a time
    with ClaudeSimulator(Pace(time_factor=FAST), tier=small) as simulator:
        simulated(monkeypatch, simulator, WORLDGEN_SDK_MAX_RETRIES="8", WORLDGEN_RATE_LIMIT_MAX_WAIT_SECONDS="600")
        generation_id = generation(conn)

        outcome = run_phase(conn, generation_id, "1A")

        refused = [s for s in simulator.served if s.status == 429]
    assert outcome.status == "succeeded"
    assert refused and simulator.limits is not None and simulator.limits.refused == len(refused)


def test_a_retry_after_beyond_the_cap_fails_the_call_as_rate_limited_for_the_state_machine(
    settings_env: str, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from worldgen.errors import ModelRateLimited

    tiny = Tier("tiny", 1_000, 10_000_000, 6_000)  # one part at a time, a refill takes ~50 s
    with ClaudeSimulator(Pace(time_factor=FAST), tier=tiny) as simulator:
        simulated(monkeypatch, simulator, WORLDGEN_SDK_MAX_RETRIES="8", WORLDGEN_RATE_LIMIT_MAX_WAIT_SECONDS="5")
        generation_id = generation(conn)

        with pytest.raises(ModelRateLimited):
            run_phase(conn, generation_id, "1A")
