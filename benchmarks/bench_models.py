"""Cost per world of each Claude model family, from the ledger, on the same campaign.

Run from the repository root: ``python -m benchmarks.bench_models`` (``make bench-models``). It
starts its own embedded PostgreSQL (pgserver) in a temporary folder and the loopback Messages API
stand-in of the tests (``tests/support/standin.py``), then, for each model, generates the sample
campaign's whole world through ``run_phase`` (the real pipeline, the real anthropic SDK over HTTP,
each family in its own dialect: forced tool or structured output) and sums the ``model_calls``
rows. Phase 1A answers invalid rows once, so every world carries one repair round.

The stand-in derives usage from the real request and answer sizes (characters / 4, prompt caching
per breakpoint): the input side (tool schemas or output format, system prompt, context) is the one
worldgen really sends; the answers are schema-filled rows (``--rows`` per table, short strings), the
same for every family, so the comparison measures prices and request shapes, not how verbose a
model writes. Multiply the output column by the ratio of real to stand-in answer sizes for a forecast.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tests.support.standin import Answer, StandIn, forbidden_settings
from worldgen.db.connection import connect
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file
from worldgen.local.postgres import embedded_server, with_database
from worldgen.model.families import PRICES_AS_OF, SERVED, family_of
from worldgen.phases import PHASES, topological_order
from worldgen.pipeline import run_phase
from worldgen.repository.migrator import migrate
from worldgen.settings import get_settings
from worldgen.state import create_generation

# The registry's default model first (the baseline of the ratios), then every family still served.
DEFAULT_MODEL = PHASES[0].model
DEFAULT_MODELS = (DEFAULT_MODEL, *(name for name in SERVED if name != DEFAULT_MODEL))
INVALID_1A = {"calendar_systems": [{"key": "Not A Slug"}]}
TOKEN_KINDS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")


def world_cost(url: str, model: str, rows_per_table: int) -> dict[str, Any]:
    """Generate one world of the sample campaign with ``model``; its ledger totals."""
    with StandIn(rows_per_table=rows_per_table) as standin:
        os.environ.update(
            WORLDGEN_MODEL_PROVIDER="anthropic",
            WORLDGEN_DEFAULT_MODEL=model,
            WORLDGEN_ANTHROPIC_API_KEY="sk-ant-bench",
            WORLDGEN_ANTHROPIC_BASE_URL=standin.url,
            WORLDGEN_SDK_MAX_RETRIES="0",
        )
        get_settings.cache_clear()
        standin.script(Answer.with_input(INVALID_1A))
        with connect(url) as conn:
            campaign_id = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
            generation_id = create_generation(conn, campaign_id, provider="anthropic")
            conn.commit()
            for phase in topological_order(PHASES):
                run_phase(conn, generation_id, phase.id)
            totals = conn.execute(
                sql.SQL(
                    "SELECT count(*) AS calls, sum(cost_usd) AS usd, {} FROM model_calls WHERE generation_id = %s"
                ).format(sql.SQL(", ").join(sql.SQL("sum({0}) AS {0}").format(sql.Identifier(k)) for k in TOKEN_KINDS)),
                (str(generation_id),),
            ).fetchone()
            conn.commit()
        forbidden = [f for r in standin.message_requests for f in forbidden_settings(r.body)]
        if forbidden:
            raise SystemExit(f"{model}: requests carried settings the model rejects: {forbidden}")
    assert totals is not None
    return {"model": model, "mode": family_of(model).request_mode, **totals}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--rows", type=int, default=6, help="rows per table in the stand-in's answers")
    args = parser.parse_args()
    for model in args.models:
        family_of(model)  # an unknown model: the one-line error before any work

    server = embedded_server(Path(tempfile.mkdtemp(prefix="worldgen-bench-models-")))
    admin_url = str(server.get_uri())
    database = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    url = with_database(admin_url, database)
    migrate(url)
    os.environ["WORLDGEN_DATABASE_URL"] = url

    results = []
    for model in args.models:
        print(f"generating the sample world with {model} ...", flush=True)
        results.append(world_cost(url, model, args.rows))

    print()
    print(f"Default model {DEFAULT_MODEL} ({family_of(DEFAULT_MODEL).request_mode}); the stand-in has no rate limits")
    print(f"Sample campaign, 9 phases + one repair round of 1A, stand-in answers of {args.rows} rows per table;")
    print(f"list prices of worldgen.model.families as of {PRICES_AS_OF}.")
    header = ("model", "request mode", "calls", "input", "cache write", "cache read", "output", "USD / world")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * 2 + "---:|" * (len(header) - 2))
    for r in results:
        tokens = " | ".join(f"{int(r[k]):,}" for k in TOKEN_KINDS)
        print(f"| {r['model']} | {r['mode']} | {r['calls']} | {tokens} | {float(r['usd']):.4f} |")
    baseline = results[0]
    for r in results[1:]:
        ratio = float(r["usd"]) / float(baseline["usd"])
        print(f"{r['model']}: {ratio:.2f}x the cost of {baseline['model']} per world")


if __name__ == "__main__":
    main()
