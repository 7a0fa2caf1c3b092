"""The real pipeline (run_phase, real PostgreSQL) with the anthropic model pointed at the stand-in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from support.standin import Answer, StandIn, forbidden_settings, requests_for

from worldgen.errors import ModelRefused
from worldgen.model.base import ModelUsage
from worldgen.model.pricing import cost_usd
from worldgen.phases import PHASES, get_phase, topological_order
from worldgen.pipeline import run_phase
from worldgen.settings import get_settings

PCS = [
    ("Lyra Ashdown", "half-elf", "ranger", "Raised by smugglers on the Salt Coast; her father vanished at the Ford."),
    ("Brannoc Vey", "dwarf", "cleric", "Exiled priest of a drowned god, hunting the relic stolen from his temple."),
]


SONNET_5_5 = "claude-sonnet-5-5"


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server
    assert [forbidden_settings(r.body) for r in server.message_requests if forbidden_settings(r.body)] == []


@pytest.fixture
def claude_env(settings_env: str, standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    monkeypatch.setenv("WORLDGEN_ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("WORLDGEN_ANTHROPIC_BASE_URL", standin.url)
    monkeypatch.setenv("WORLDGEN_SDK_MAX_RETRIES", "0")
    monkeypatch.setenv("WORLDGEN_REQUEST_TIMEOUT_SECONDS", "10")
    monkeypatch.setenv("WORLDGEN_DEFAULT_MODEL", "claude-sonnet-4-6")  # the forced-tool dialect
    get_settings.cache_clear()
    return standin


@pytest.fixture
def sonnet_5_5_env(claude_env: StandIn, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    monkeypatch.setenv("WORLDGEN_DEFAULT_MODEL", SONNET_5_5)
    get_settings.cache_clear()
    return claude_env


def make_generation(conn: psycopg.Connection[Any], phases: list[str]) -> str:
    campaign = conn.execute(
        "INSERT INTO campaigns (owner_id, name, setting, tone) VALUES (%s, %s, %s, %s) RETURNING id",
        ("user-1", "The Ashen Crown", "A low-magic archipelago ruled by rival merchant princes.", "grim"),
    ).fetchone()
    assert campaign is not None
    for name, race, klass, backstory in PCS:
        conn.execute(
            "INSERT INTO player_characters (campaign_id, name, race, character_class, backstory)"
            " VALUES (%s, %s, %s, %s, %s)",
            (campaign["id"], name, race, klass, backstory),
        )
    generation = conn.execute(
        "INSERT INTO generations (campaign_id, model_provider, phases) VALUES (%s, 'anthropic', %s) RETURNING id",
        (campaign["id"], phases),
    ).fetchone()
    conn.commit()
    assert generation is not None
    return str(generation["id"])


def ledger(conn: psycopg.Connection[Any], generation_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT * FROM model_calls WHERE generation_id = %s ORDER BY created_at, round", (generation_id,)
    ).fetchall()
    conn.commit()
    return list(rows)


def expected_cost(model: str, usage: dict[str, int]) -> Decimal:
    counts = ModelUsage("anthropic", model, **usage)  # type: ignore[arg-type]
    return Decimal(str(cost_usd(model, counts))).quantize(Decimal("0.000001"))


def test_invalid_tool_input_is_sent_back_as_an_error_tool_result_then_saved(
    claude_env: StandIn, conn: psycopg.Connection[Any], one_call_phases: None
) -> None:
    generation_id = make_generation(conn, ["1A"])
    claude_env.script(Answer.with_input({"calendar_systems": [{"key": "Not A Slug"}]}), Answer.valid())

    outcome = run_phase(conn, generation_id, "1A")

    assert outcome.status == "succeeded" and outcome.model_calls == 2
    first, second = (r.body for r in claude_env.message_requests)
    assert second["messages"][0] == first["messages"][0]
    assistant, user = second["messages"][1:]
    tool_use = assistant["content"][0]
    assert assistant["role"] == "assistant"
    assert tool_use["type"] == "tool_use" and tool_use["name"] == "record_phase_1a"
    assert tool_use["input"] == {"calendar_systems": [{"key": "Not A Slug"}]}
    (result,) = user["content"]
    assert user["role"] == "user"
    assert result["type"] == "tool_result" and result["is_error"] is True
    assert result["tool_use_id"] == tool_use["id"]
    assert "planes" in result["content"] and "calendar_systems[key=not-a-slug]" in result["content"]  # keys slugged
    # The repair round re-sends the same tool and system prompt, so it reads them from the cache.
    usages = [r.usage for r in claude_env.message_requests]
    assert usages[0]["cache_creation_input_tokens"] > 0 and usages[0]["cache_read_input_tokens"] == 0
    assert usages[1]["cache_read_input_tokens"] == usages[0]["cache_creation_input_tokens"]


def test_ledger_has_one_row_per_call_with_tokens_cost_and_stop_reason(
    claude_env: StandIn, conn: psycopg.Connection[Any], one_call_phases: None
) -> None:
    generation_id = make_generation(conn, ["1A"])
    claude_env.script(Answer.text_only(), Answer.valid())

    run_phase(conn, generation_id, "1A")

    rows = ledger(conn, generation_id)
    served = [r.usage for r in claude_env.message_requests]
    assert len(rows) == len(served) == 2
    assert [r["round"] for r in rows] == [1, 2]
    assert [r["stop_reason"] for r in rows] == ["end_turn", "tool_use"]
    for row, usage in zip(rows, served, strict=True):
        assert (row["provider"], row["model"]) == ("anthropic", "claude-sonnet-4-6")
        assert {k: row[k] for k in usage} == usage
        assert row["cost_usd"] == expected_cost("claude-sonnet-4-6", usage) > 0
        assert row["error_type"] is None


def test_a_refusal_fails_the_phase_permanently(claude_env: StandIn, conn: psycopg.Connection[Any]) -> None:
    generation_id = make_generation(conn, ["1A"])
    claude_env.script(Answer.refusal())

    with pytest.raises(ModelRefused):
        run_phase(conn, generation_id, "1A")

    run = conn.execute(
        "SELECT status, error_type FROM phase_runs WHERE generation_id = %s", (generation_id,)
    ).fetchone()
    assert run is not None and (run["status"], run["error_type"]) == ("failed", "ModelRefused")


def test_phase_models_setting_picks_the_model_per_phase(
    claude_env: StandIn, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch, one_call_phases: None
) -> None:
    monkeypatch.setenv("WORLDGEN_PHASE_MODELS", '{"1A": "claude-haiku-4-5"}')
    get_settings.cache_clear()
    generation_id = make_generation(conn, ["1A"])

    run_phase(conn, generation_id, "1A")

    assert claude_env.message_requests[0].body["model"] == "claude-haiku-4-5"
    (row,) = ledger(conn, generation_id)
    assert row["model"] == "claude-haiku-4-5"
    assert row["cost_usd"] == expected_cost("claude-haiku-4-5", claude_env.message_requests[0].usage)


def test_all_nine_phases_fill_every_table_with_one_ledger_row_per_call(
    claude_env: StandIn, conn: psycopg.Connection[Any]
) -> None:
    phases = [p.id for p in topological_order(PHASES)]
    generation_id = make_generation(conn, phases)

    outcomes = [run_phase(conn, generation_id, phase) for phase in phases]

    calls = {p.id: requests_for(p) for p in PHASES}  # the outline or the cache primer, and the parts
    assert all(o.status == "succeeded" and o.model_calls == calls[o.phase] for o in outcomes)
    for phase in PHASES:
        for table in phase.tables:
            count = conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()
            assert count is not None and count["n"] > 0, table
    rows = ledger(conn, generation_id)
    assert len(rows) == len(claude_env.message_requests) == sum(calls.values())
    assert sorted(r["phase"] for r in rows) == sorted(p for p in phases for _ in range(calls[p]))
    usages = [request.usage for request in claude_env.message_requests]  # parts answer in any order
    for row in rows:
        usage = {k: row[k] for k in usages[0]}
        assert usage in usages
        assert row["cost_usd"] == expected_cost("claude-sonnet-4-6", usage)


# -- Sonnet 5.5: structured outputs ------------------------------------------------------------


def test_a_rejected_json_answer_is_sent_back_then_a_user_turn_lists_the_problems(
    sonnet_5_5_env: StandIn, conn: psycopg.Connection[Any], one_call_phases: None
) -> None:
    generation_id = make_generation(conn, ["1A"])
    sonnet_5_5_env.script(Answer.with_input({"calendar_systems": [{"key": "Not A Slug"}]}), Answer.valid())

    outcome = run_phase(conn, generation_id, "1A")

    assert outcome.status == "succeeded" and outcome.model_calls == 2
    first, second = (r.body for r in sonnet_5_5_env.message_requests)
    assert second["output_config"] == first["output_config"] and "tools" not in second
    assert second["messages"][0] == first["messages"][0]
    assistant, user = second["messages"][1:]
    assert assistant == {"role": "assistant", "content": [{"type": "text", "text": json.dumps(
        {"calendar_systems": [{"key": "Not A Slug"}]})}]}  # fmt: skip
    assert user["role"] == "user" and isinstance(user["content"], str)
    assert user["content"].startswith("Your JSON answer was rejected")
    assert "planes" in user["content"] and "not-a-slug" in user["content"]  # forgiving keys: the problem names the slug
    # The repair round re-sends the same schema and system prompt, so it reads them from the cache.
    usages = [r.usage for r in sonnet_5_5_env.message_requests]
    assert usages[0]["cache_creation_input_tokens"] > 0 and usages[0]["cache_read_input_tokens"] == 0
    assert usages[1]["cache_read_input_tokens"] == usages[0]["cache_creation_input_tokens"]
    rows = ledger(conn, generation_id)
    assert [(r["model"], r["stop_reason"]) for r in rows] == [(SONNET_5_5, "end_turn")] * 2
    for row, usage in zip(rows, usages, strict=True):
        assert row["cost_usd"] == expected_cost(SONNET_5_5, usage) > 0


def test_an_answer_that_is_not_json_gets_a_repair_round_naming_the_parse_error(
    sonnet_5_5_env: StandIn, conn: psycopg.Connection[Any], one_call_phases: None
) -> None:
    generation_id = make_generation(conn, ["1A"])
    sonnet_5_5_env.script(Answer.text_only("Here is your world, in prose."), Answer.valid())

    outcome = run_phase(conn, generation_id, "1A")

    assert outcome.model_calls == 2
    user = sonnet_5_5_env.message_requests[1].body["messages"][-1]
    assert "the answer was not valid JSON" in user["content"] and "call the tool" not in user["content"]


def test_a_sonnet_5_5_refusal_fails_the_phase_permanently_and_is_in_the_ledger(
    sonnet_5_5_env: StandIn, conn: psycopg.Connection[Any]
) -> None:
    generation_id = make_generation(conn, ["1A"])
    sonnet_5_5_env.script(Answer.refusal())

    with pytest.raises(ModelRefused):
        run_phase(conn, generation_id, "1A")

    (row,) = ledger(conn, generation_id)
    assert (row["model"], row["stop_reason"], row["error_type"]) == (SONNET_5_5, "refusal", "ModelRefused")


def test_per_phase_override_mixes_dialects_in_one_generation(
    sonnet_5_5_env: StandIn, conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch, one_call_phases: None
) -> None:
    monkeypatch.setenv("WORLDGEN_PHASE_MODELS", '{"1B": "claude-haiku-4-5"}')
    get_settings.cache_clear()
    generation_id = make_generation(conn, ["1A", "1B"])

    run_phase(conn, generation_id, "1A")
    run_phase(conn, generation_id, "1B")

    first, second = (r.body for r in sonnet_5_5_env.message_requests)
    assert first["model"] == SONNET_5_5 and "output_config" in first and "tool_choice" not in first
    assert second["model"] == "claude-haiku-4-5" and second["tool_choice"]["type"] == "tool"


def test_all_nine_phases_on_sonnet_5_5_fill_every_table_without_a_forced_tool(
    sonnet_5_5_env: StandIn, conn: psycopg.Connection[Any]
) -> None:
    phases = [p.id for p in topological_order(PHASES)]
    generation_id = make_generation(conn, phases)

    outcomes = [run_phase(conn, generation_id, phase) for phase in phases]

    assert all(o.status == "succeeded" and o.model_calls == requests_for(get_phase(o.phase)) for o in outcomes)
    for phase in PHASES:
        for table in phase.tables:
            count = conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()
            assert count is not None and count["n"] > 0, table
    for request in sonnet_5_5_env.message_requests:
        assert request.body["model"] == SONNET_5_5
        assert "tool_choice" not in request.body  # never a forced tool
        assert request.body["thinking"] == {"type": "between_tools"}
        # a phase in parts: the same tools for every call, the model chooses; one call: a format
        assert ("tools" in request.body) != ("format" in request.body["output_config"])
        assert request.rejected == []
    rows = ledger(conn, generation_id)
    assert sorted(r["phase"] for r in rows) == sorted(p for p in phases for _ in range(requests_for(get_phase(p))))
    usages = [request.usage for request in sonnet_5_5_env.message_requests]  # parts answer in any order
    for row in rows:
        usage = {k: row[k] for k in usages[0]}
        assert usage in usages and row["cost_usd"] == expected_cost(SONNET_5_5, usage)
