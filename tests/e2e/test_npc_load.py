"""Issue 11's targets on every world `make bench-world` runs and on the procedural demo world: every PC
linked to an NPC, a place and a quest, no orphans, and no NPC carrying more than ROLE_LIMIT roles."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import sql

from benchmarks.bench_world import campaign_for
from tests.e2e.conftest import start_and_wait
from worldgen.audit import Audit, audit_world
from worldgen.db.catalog import foreign_key_edges
from worldgen.local.campaigns import insert_campaign
from worldgen.local.runtime import LocalRuntime
from worldgen.local.simulator import ClaudeSimulator, Pace
from worldgen.model.procedural import ProceduralModel
from worldgen.phases import RELATIONSHIP_TABLES
from worldgen.roles import ROLE_LIMIT
from worldgen.settings import get_settings

pytestmark = pytest.mark.xdist_group("e2e")

# The pace is make bench-world's business, not this test's: answers stream ten times faster than
# Claude so no phase meets its deadline (at 60 tokens/s the generous world's 1A does not fit it yet,
# issue 12); a moderate clock factor keeps the deadlines, in real time, clear of a loaded machine.
FAST = Pace(output_tokens_per_second=600, time_factor=40)


def audit_of(url: str, generation_id: str) -> Audit:
    with psycopg.connect(url, row_factory=psycopg.rows.dict_row) as conn:
        return audit_world(conn, generation_id)


def assert_quality_targets(report: Audit) -> None:
    assert report.pc_links and report.pcs_fully_linked == len(report.pc_links), report.render()
    assert report.orphans == [], report.render()
    assert report.overloaded_npcs == {}, report.render()
    assert max(report.npc_roles.values()) <= ROLE_LIMIT


@pytest.mark.parametrize(("size", "pcs"), [("typical", 4), ("generous", 6)])
def test_a_simulated_world_of_every_bench_size_meets_the_quality_targets(
    settings_env: str, size: str, pcs: int
) -> None:
    campaign = campaign_for(pcs)
    with psycopg.connect(settings_env, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        campaign_id = insert_campaign(conn, campaign)
    with ClaudeSimulator(FAST, size=size) as simulator:
        get_settings.cache_clear()
        environment = {"WORLDGEN_DATABASE_URL": settings_env, **simulator.environment()}
        with LocalRuntime(environment=environment) as runtime:
            status, body = runtime.action("generateWorld", {"campaign_id": str(campaign_id)}, user_id=campaign.owner_id)
            assert status == 200, body
            execution = runtime.wait(body["execution_arn"], timeout=600)
    get_settings.cache_clear()

    assert execution["status"] == "SUCCEEDED"
    report = audit_of(settings_env, body["generation_id"])
    assert len(report.pc_links) == pcs
    assert_quality_targets(report)
    assert roles_left_empty(settings_env, campaign_id) == {}  # the cast is large enough for every role


def roles_left_empty(url: str, campaign_id: uuid.UUID) -> dict[str, int]:
    """Rows with no NPC in a role column (a reference to entities outside the relationship tables;
    optional), by table.column."""
    empty: dict[str, int] = {}
    with psycopg.connect(url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        for table, column, ref in foreign_key_edges(conn):
            if ref == "entities" and table not in RELATIONSHIP_TABLES:
                query = sql.SQL("SELECT count(*) AS n FROM {} WHERE campaign_id = %s AND {} IS NULL").format(
                    sql.Identifier(table), sql.Identifier(column)
                )
                n = conn.execute(query, (campaign_id,)).fetchone()["n"]  # type: ignore[index]
                if n:
                    empty[f"{table}.{column}"] = n
    return empty


def test_the_procedural_demo_world_meets_the_quality_targets(make_runtime, settings_env: str, campaign_id: uuid.UUID):
    runtime = make_runtime(ProceduralModel())

    started = start_and_wait(runtime, campaign_id)

    assert started["execution"]["status"] == "SUCCEEDED"
    assert_quality_targets(audit_of(settings_env, started["generation_id"]))
