"""A world with a cost cap through the committed state machine: it stops at its cap as failed
(CostCapReached, a permanent error: no retry) and resumes with a higher cap to completion."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from support.standin import StandIn

from worldgen.functions_registry import START_FUNCTION
from worldgen.local.aws_objects import function_url_event
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file
from worldgen.local.runtime import LocalRuntime

OWNER = "demo-game-master"


@pytest.fixture
def runtime(settings_env: str) -> Iterator[tuple[LocalRuntime, StandIn]]:
    with StandIn() as standin:
        environment = {
            "WORLDGEN_DATABASE_URL": settings_env,
            "WORLDGEN_MODEL_PROVIDER": "anthropic",
            "WORLDGEN_ANTHROPIC_API_KEY": "sk-ant-test",
            "WORLDGEN_ANTHROPIC_BASE_URL": standin.url,
            "WORLDGEN_DEFAULT_MODEL": "claude-haiku-4-5",
            "WORLDGEN_SDK_MAX_RETRIES": "0",
        }
        with LocalRuntime(environment=environment) as local:
            yield local, standin


def act(runtime: LocalRuntime, name: str, data: dict[str, Any], role: str = "user") -> tuple[int, dict[str, Any]]:
    session = {"x-hasura-role": role, "x-hasura-user-id": OWNER}
    body = json.dumps({"action": {"name": name}, "input": data, "session_variables": session, "request_query": ""})
    response = runtime.invoke(START_FUNCTION, function_url_event(body, runtime.action_secret))
    return response["statusCode"], json.loads(response["body"])


def generation(conn: psycopg.Connection[Any], generation_id: str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT g.status, g.error_type, g.options, (SELECT coalesce(sum(cost_usd), 0) FROM model_calls m"
        " WHERE m.generation_id = g.id) AS spent FROM generations g WHERE g.id = %s",
        (generation_id,),
    ).fetchone()
    conn.commit()
    assert row is not None
    return dict(row)


def test_a_world_stops_at_its_cost_cap_and_resumes_with_a_higher_one(
    runtime: tuple[LocalRuntime, StandIn], conn: psycopg.Connection[Any]
) -> None:
    local, _ = runtime
    campaign_id = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))

    status, started = act(local, "generateWorld", {"campaign_id": str(campaign_id), "max_cost_usd": 0.15})
    assert status == 200
    local.wait(started["execution_arn"], timeout=300)
    stopped = generation(conn, started["generation_id"])
    assert (stopped["status"], stopped["error_type"]) == ("failed", "CostCapReached")
    assert 0 < float(stopped["spent"]) <= 0.15 and stopped["options"]["max_cost_usd"] == 0.15

    status, resumed = act(local, "resumeGeneration", {"generation_id": started["generation_id"], "max_cost_usd": 50})
    assert status == 200
    local.wait(resumed["execution_arn"], timeout=300)
    finished = generation(conn, started["generation_id"])
    assert finished["status"] == "succeeded" and finished["options"]["max_cost_usd"] == 50


def test_a_cost_cap_that_is_not_a_positive_amount_is_refused_in_hasuras_shape(
    runtime: tuple[LocalRuntime, StandIn], conn: psycopg.Connection[Any]
) -> None:
    campaign_id = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))

    status, answer = act(runtime[0], "generateWorld", {"campaign_id": str(campaign_id), "max_cost_usd": -1})

    assert status == 400 and answer["extensions"]["code"] == "validation-failed" and "max_cost_usd" in answer["message"]
