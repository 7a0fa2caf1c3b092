"""A whole real-size world on the paced Claude simulator, through the state machine, with faults."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql

from worldgen.local.runtime import LocalRuntime
from worldgen.local.simulator import ClaudeSimulator, Fault, FaultPlan, Pace
from worldgen.phases import PHASES, WORLD_TABLES, get_phase
from worldgen.settings import get_settings

from .conftest import fast_retry_definition, start_and_wait

pytestmark = pytest.mark.xdist_group("e2e")

# A phase's requests are numbered from 1 across its attempts: 1 is the outline of an outlined
# phase, the next ones its parts (in whatever order the threads send them).
FAULTS = FaultPlan(
    {
        ("1B", 1): Fault("overloaded"),  # a 529 burst: the SDK's one retry, then Step Functions'
        ("1B", 2): Fault("overloaded"),
        ("1C", 1): Fault("rate_limited"),
        ("2A", 3): Fault("stall"),  # a part's stream stalls: the read timeout, the phase retried
        ("2B", 2): Fault("max_tokens"),  # a part cut at half: asked again with a larger budget
        ("3A", 2): Fault("invalid_rows"),  # a part with a duplicate key and a missing name: repaired alone
    }
)


def query(url: str, text: str | sql.Composed, *params: Any) -> list[dict[str, Any]]:
    with psycopg.connect(url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(text, params).fetchall()


def test_a_real_size_world_with_faults_succeeds_with_exactly_one_copy_of_every_row(
    settings_env: str, campaign_id: uuid.UUID
) -> None:
    with ClaudeSimulator(
        Pace(time_factor=40), faults=FAULTS, stall_seconds=600
    ) as simulator:  # x40: room for the client
        environment = {
            "WORLDGEN_DATABASE_URL": settings_env,
            "WORLDGEN_REQUEST_TIMEOUT_SECONDS": "120",  # the stall is noticed after 120 simulated s
            **simulator.environment(),
        }
        get_settings.cache_clear()
        with LocalRuntime(definition=fast_retry_definition(), environment=environment) as runtime:
            run = start_and_wait(runtime, campaign_id, timeout=600)
        get_settings.cache_clear()

    assert run["execution"]["status"] == "SUCCEEDED"
    kinds = {s.fault for s in simulator.served if s.fault}
    assert kinds == {"overloaded", "rate_limited", "stall", "max_tokens", "invalid_rows"}
    runs = query(
        settings_env, "SELECT phase, rows_total FROM phase_runs WHERE generation_id = %s", run["generation_id"]
    )
    assert sorted(r["phase"] for r in runs) == sorted(p.id for p in PHASES)
    total = 0
    for table in WORLD_TABLES:
        counted = query(
            settings_env,
            sql.SQL("SELECT count(*) AS n, count(DISTINCT key) AS keys FROM {} WHERE campaign_id = %s").format(
                sql.Identifier(table)
            ),
            campaign_id,
        )[0]
        assert counted["n"] == counted["keys"] > 0, table
        total += counted["n"]
    assert total == sum(r["rows_total"] for r in runs) > 200  # the real size, each row once

    def calls(phase: str) -> int:
        sql_text = "SELECT count(*) AS n FROM model_calls WHERE generation_id = %s AND phase = %s"
        return int(query(settings_env, sql_text, run["generation_id"], phase)[0]["n"])

    assert calls("3A") == get_phase("3A").planned_calls + 1  # the invalid part, repaired alone
    # the stalled part's attempt failed; the retry reused the outline and the parts that had answered
    assert calls("2A") == get_phase("2A").planned_calls + 1
