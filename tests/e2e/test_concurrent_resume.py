"""Local concurrent resumes have exactly one winner (issue 29): the resuming process takes the
generation's execution lease before its execution is visible, so another process's reconcile never
takes the running generation for lost and resumes it again."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest

from tests.e2e.test_cli import assert_one_clean_error
from tests.e2e.test_first_hour import worldgen
from worldgen import state
from worldgen.db.leases import acquire_execution_lease
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file
from worldgen.local.runtime import LocalRuntime

pytestmark = pytest.mark.xdist_group("e2e")


def _failed_generation(url: str) -> str:
    with psycopg.connect(url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        campaign_id = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
        generation_id = state.create_generation(conn, campaign_id, provider="procedural")
        assert state.fail_generation(conn, generation_id, "ModelUnavailable", "outage", redrivable=False).moved
    return str(generation_id)


def _generation(url: str, generation_id: str) -> dict[str, object]:
    with psycopg.connect(url, row_factory=psycopg.rows.dict_row) as conn:
        row = conn.execute("SELECT status, resumed_count FROM generations WHERE id = %s", (generation_id,)).fetchone()
    assert row is not None
    return dict(row)


def test_a_resume_while_another_process_holds_the_generations_lease_is_refused(settings_env):
    generation_id = _failed_generation(settings_env)
    with psycopg.connect(settings_env, autocommit=True, row_factory=psycopg.rows.dict_row) as other:
        assert acquire_execution_lease(other, generation_id)  # another process is resuming it

        with LocalRuntime(environment={"WORLDGEN_DATABASE_URL": settings_env}) as runtime:
            status, body = runtime.action("resumeGeneration", {"generation_id": generation_id}, role="admin")
        cli = worldgen("resume", generation_id, database_url=settings_env)

    assert status == 409
    assert body["extensions"]["code"] == "resume-in-progress"
    assert_one_clean_error(cli, "held by another worldgen process")
    assert _generation(settings_env, generation_id) == {"status": "failed", "resumed_count": 0}


def test_two_resumes_started_at_once_have_exactly_one_winner(settings_env):
    generation_id = _failed_generation(settings_env)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORLDGEN_", "ANTHROPIC_"))}
    env.update(WORLDGEN_DATABASE_URL=settings_env, WORLDGEN_HOME=os.environ["WORLDGEN_HOME"])
    command = [sys.executable, "-m", "worldgen.tools.cli", "resume", generation_id]
    runs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    results = [(run.wait(timeout=300), *run.communicate()) for run in runs]

    assert sorted(code for code, _, _ in results) == [0, 2], results
    loser = next(stderr for code, _, stderr in results if code == 2)
    assert loser.strip().startswith("error: ") and "Traceback" not in loser
    assert _generation(settings_env, generation_id) == {"status": "succeeded", "resumed_count": 1}
