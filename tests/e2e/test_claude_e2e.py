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
from support.standin import StandIn

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


def test_full_generation_with_claude_fills_every_table_and_records_every_call(
    settings_env: str, standin: StandIn
) -> None:
    with psycopg.connect(settings_env, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        campaign_id: uuid.UUID = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
    environment = {
        "WORLDGEN_DATABASE_URL": settings_env,
        "WORLDGEN_MODEL_PROVIDER": "anthropic",
        "WORLDGEN_ANTHROPIC_API_KEY": "sk-ant-test",
        "WORLDGEN_ANTHROPIC_BASE_URL": standin.url,
        "WORLDGEN_SDK_MAX_RETRIES": "0",
    }
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
    calls = query(settings_env, "SELECT * FROM model_calls WHERE generation_id = %s", body["generation_id"])
    served: dict[str, list[dict[str, int]]] = {}  # tool -> usages (a phase in parts calls its tool once per part)
    for request in standin.message_requests:
        served.setdefault(request.body["tools"][0]["name"], []).append(request.usage)
    assert len(calls) == len(standin.message_requests) == sum(len(p.table_groups) for p in PHASES)
    for call in calls:
        usages = served[f"record_phase_{call['phase'].lower()}"]
        usage = next(u for u in usages if {k: call[k] for k in u} == u)
        assert (call["provider"], call["model"], call["stop_reason"]) == ("anthropic", "claude-sonnet-4-6", "tool_use")
        assert {k: call[k] for k in usage} == usage
        priced = cost_usd(call["model"], ModelUsage("anthropic", call["model"], **usage))  # type: ignore[arg-type]
        assert float(call["cost_usd"]) == pytest.approx(priced, abs=1e-6)
    generation = query(settings_env, "SELECT * FROM generations WHERE id = %s", body["generation_id"])[0]
    assert float(generation["total_cost_usd"]) == pytest.approx(sum(float(c["cost_usd"]) for c in calls), abs=1e-5)
