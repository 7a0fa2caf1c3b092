"""Honest reports across models and attempts (issue 29): a phase's result and `worldgen status`
count every call of every attempt and model, as the ledger does."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tests.e2e.conftest import ScriptedModel, fast_retry_definition, start_and_wait
from tests.e2e.test_data_safety import query
from worldgen.errors import ModelOverloaded
from worldgen.local.progress import generation_report

pytestmark = pytest.mark.xdist_group("e2e")


def test_a_phase_retried_after_a_529_counts_the_calls_of_both_attempts(make_runtime, settings_env, campaign_id):
    model = ScriptedModel({"1A": [ModelOverloaded("529")]})
    runtime = make_runtime(model, definition=fast_retry_definition())

    started = start_and_wait(runtime, campaign_id)

    assert started["execution"]["status"] == "SUCCEEDED"
    run = query(
        settings_env,
        "SELECT attempt, result FROM phase_runs WHERE generation_id = %s AND phase = '1A'",
        started["generation_id"],
    )[0]
    ledger = query(
        settings_env,
        "SELECT count(*) AS n, sum(cost_usd)::float AS cost FROM model_calls WHERE generation_id = %s AND phase = '1A'",
        started["generation_id"],
    )[0]
    assert run["attempt"] == 2
    assert run["result"]["model_calls"] == ledger["n"] == model.calls.count("1A")


def test_status_shows_every_models_calls_of_a_phase(make_runtime, settings_env, campaign_id):
    started = start_and_wait(make_runtime(ScriptedModel()), campaign_id)
    generation_id = started["generation_id"]
    with psycopg.connect(settings_env, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        conn.execute(  # an earlier attempt of 1A on another model (a resume may switch models)
            "INSERT INTO model_calls (id, generation_id, campaign_id, phase, round, provider, model, input_tokens,"
            " output_tokens, cost_usd) VALUES (%s, %s, %s, '1A', 1, 'anthropic', 'claude-x', 1000, 500, 0.0203)",
            (str(uuid.uuid4()), generation_id, str(campaign_id)),
        )
        ledger = conn.execute(
            "SELECT count(*) AS n, sum(cost_usd)::float AS cost FROM model_calls WHERE generation_id = %s"
            " AND phase = '1A'",
            (generation_id,),
        ).fetchone()
        report = generation_report(conn, generation_id, verbose=True)
    assert ledger is not None

    columns = next(line for line in report.splitlines() if line.strip().startswith("1A ")).split()
    # phase, status, rows, seconds, model s, db s, calls, in tok, out tok, cost $
    assert (columns[6], columns[9]) == (str(ledger["n"]), f"{ledger['cost']:.4f}")
