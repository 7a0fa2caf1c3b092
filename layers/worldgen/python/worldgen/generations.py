"""Read-only views of a generation: its summary from phase_runs and the model-call ledger.

Status changes live in ``worldgen.state``, the one owner of generation state.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

# What a phase in parts already has while it runs or after it failed (``phase_runs.parts``).
PARTS_PROGRESS_COLUMNS = (
    "coalesce(parts ? 'outline', false) AS outline_kept,"
    " (SELECT count(*) FROM jsonb_object_keys(coalesce(parts -> 'answers', '{}'::jsonb))) AS parts_kept"
)


def generation_summary(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str) -> dict[str, Any]:
    runs = conn.execute(
        "SELECT phase, status, attempt, duration_ms, model_ms, db_ms, rows_total, rows_per_table, "
        + PARTS_PROGRESS_COLUMNS
        + " FROM phase_runs WHERE generation_id = %s ORDER BY phase",
        (str(generation_id),),
    ).fetchall()
    calls = conn.execute(
        "SELECT phase, provider, model, count(*) AS calls, sum(input_tokens) AS input_tokens,"
        " sum(output_tokens) AS output_tokens, sum(cache_read_input_tokens) AS cache_read_input_tokens,"
        " sum(cache_creation_input_tokens) AS cache_creation_input_tokens, sum(cost_usd) AS cost_usd"
        " FROM model_calls WHERE generation_id = %s GROUP BY phase, provider, model ORDER BY phase",
        (str(generation_id),),
    ).fetchall()
    return {
        "phases": [dict(r) for r in runs],
        "model_calls": [{**dict(c), "cost_usd": float(c["cost_usd"] or 0)} for c in calls],
        "rows_total": sum(r["rows_total"] or 0 for r in runs),
        "input_tokens": int(sum(c["input_tokens"] or 0 for c in calls)),
        "output_tokens": int(sum(c["output_tokens"] or 0 for c in calls)),
        "cost_usd": round(float(sum(c["cost_usd"] or 0 for c in calls)), 6),
    }
