"""A whole generation through the local state machine with the anthropic model at the stand-in.

It lives with the Claude integration tests (the stand-in is theirs) but is an e2e run: moto executes
the committed ASL and the real handlers run in-process.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from support.standin import Answer, StandIn, forbidden_settings, requests_for

from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file
from worldgen.local.runtime import LocalRuntime
from worldgen.model.base import ModelUsage
from worldgen.model.pricing import cost_usd
from worldgen.phases import PHASES, WORLD_TABLES
from worldgen.settings import get_settings

pytestmark = pytest.mark.xdist_group("e2e")
OWNER = "demo-game-master"


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


def query(url: str, text: str, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(text, params).fetchall()


@pytest.mark.parametrize(
    ("model", "dialect"), [("claude-sonnet-4-6", "forced_tool"), ("claude-sonnet-5-5", "structured_output")]
)
def test_full_generation_fills_every_table_with_a_repair_round_and_records_every_call(
    settings_env: str, standin: StandIn, model: str, dialect: str
) -> None:
    with psycopg.connect(settings_env, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        campaign_id: uuid.UUID = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
    environment = {
        "WORLDGEN_DATABASE_URL": settings_env,
        "WORLDGEN_MODEL_PROVIDER": "anthropic",
        "WORLDGEN_DEFAULT_MODEL": model,
        "WORLDGEN_ANTHROPIC_API_KEY": "sk-ant-test",
        "WORLDGEN_ANTHROPIC_BASE_URL": standin.url,
        "WORLDGEN_SDK_MAX_RETRIES": "0",
    }
    # Phase 1A (the first, alone) answers invalid rows once: a repair round in either dialect.
    standin.script(Answer.with_input({"calendar_systems": [{"key": "Not A Slug"}]}))
    get_settings.cache_clear()
    with LocalRuntime(environment=environment) as runtime:
        get_settings.cache_clear()
        status, body = runtime.action("generateWorld", {"campaign_id": str(campaign_id)}, user_id=OWNER)
        assert status == 200, body
        execution = runtime.wait(body["execution_arn"], timeout=120)
    get_settings.cache_clear()

    assert execution["status"] == "SUCCEEDED"
    for table in WORLD_TABLES:
        statement = sql.SQL("SELECT count(*) AS n FROM {} WHERE campaign_id = %s").format(sql.Identifier(table))
        with psycopg.connect(settings_env, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
            row = conn.execute(statement, (str(campaign_id),)).fetchone()
        assert row is not None and row["n"] > 0, table
    calls = query(
        settings_env, "SELECT * FROM model_calls WHERE generation_id = %s ORDER BY created_at, round",
        body["generation_id"],
    )  # fmt: skip
    requests = standin.message_requests
    # every phase in parts (an outline first where declared), and 1A's outline repaired once
    assert len(calls) == len(requests) == sum(requests_for(p) for p in PHASES) + 1
    rounds = [c["round"] for c in calls if c["phase"] == "1A"]
    assert sorted(rounds) == list(range(1, requests_for(PHASES[0]) + 2))
    for request in requests:
        assert request.body["model"] == model and forbidden_settings(request.body) == [] and not request.rejected
        if dialect == "forced_tool":
            assert request.body["tool_choice"]["type"] == "tool" and "output_config" not in request.body
        else:
            assert "tool_choice" not in request.body  # never forced
            # a phase in parts: the same tools for every call, no format (one cached prefix per phase)
            assert ("tools" in request.body) != ("format" in request.body["output_config"])
            assert request.body["thinking"] == {"type": "between_tools"}
            assert not {"temperature", "top_p", "top_k"} & set(request.body)
    repair = requests[1].body["messages"]
    assert [m["role"] for m in repair] == ["user", "assistant", "user"]
    served = sorted(tuple(sorted(r.usage.items())) for r in requests)
    recorded = sorted(tuple(sorted((k, call[k]) for k in requests[0].usage)) for call in calls)
    assert recorded == served
    # a call answers the JSON text of its format (end_turn), or by calling a tool (tool_use)
    formats = sum("format" in (r.body.get("output_config") or {}) for r in requests)
    assert sorted(c["stop_reason"] for c in calls) == ["end_turn"] * formats + ["tool_use"] * (len(calls) - formats)
    assert dialect == "structured_output" or formats == 0
    for call in calls:
        assert (call["provider"], call["model"]) == ("anthropic", model)
        usage = {k: call[k] for k in requests[0].usage}
        priced = cost_usd(call["model"], ModelUsage("anthropic", call["model"], **usage))
        assert float(call["cost_usd"]) == pytest.approx(priced, abs=1e-6) and priced > 0
    generation = query(settings_env, "SELECT * FROM generations WHERE id = %s", body["generation_id"])[0]
    assert float(generation["total_cost_usd"]) == pytest.approx(sum(float(c["cost_usd"]) for c in calls), abs=1e-5)
