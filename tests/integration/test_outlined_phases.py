"""Outlined phases in parts (issue 12): the outline fixes the rows, the parts write exactly them in
parallel, a part is repaired alone, and a retried attempt reuses what the failed one already got."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.shared import one_row
from worldgen import state
from worldgen.errors import InvalidModelOutput, ModelOverloaded
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file
from worldgen.local.progress import generation_report
from worldgen.model.base import ModelRequest, ModelResponse
from worldgen.model.procedural import ProceduralModel
from worldgen.phases import get_phase
from worldgen.pipeline import run_phase


class Recording:
    """The procedural model, recording every request; ``tamper`` may change an answer or raise."""

    provider = "procedural"

    def __init__(self, tamper: Callable[[ModelRequest, ModelResponse, int], None] | None = None) -> None:
        self.requests: list[ModelRequest] = []
        self.inner = ProceduralModel()
        self.tamper = tamper
        self.lock = threading.Lock()

    def call(self, request: ModelRequest) -> ModelResponse:
        with self.lock:
            self.requests.append(request)
            number = len(self.requests)
        response = self.inner.call(request)
        if self.tamper is not None:
            self.tamper(request, response, number)
        return response

    def outline_requests(self) -> list[ModelRequest]:
        return [r for r in self.requests if r.tool["name"].endswith("_outline")]

    def part_requests(self) -> list[ModelRequest]:
        return [r for r in self.requests if not r.tool["name"].endswith("_outline")]


@pytest.fixture
def generation(settings_env: str, conn: Any) -> dict[str, Any]:
    campaign_id = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
    generation_id = state.create_generation(conn, campaign_id, provider="procedural")
    run_phase(conn, generation_id, "1A")
    return {"campaign_id": campaign_id, "generation_id": generation_id}


def keys(conn: Any, table: str, generation_id: Any) -> list[str]:
    rows = conn.execute(f"SELECT key FROM {table} WHERE generation_id = %s", (generation_id,)).fetchall()
    conn.commit()
    return sorted(r["key"] for r in rows)


def test_the_parts_write_exactly_the_rows_of_the_outline_sharing_one_prompt_prefix(conn, generation):
    model = Recording()
    outcome = run_phase(conn, generation["generation_id"], "1B", model)

    phase = get_phase("1B")
    assert outcome.status == "succeeded" and outcome.model_calls == phase.planned_calls
    outline = model.outline_requests()
    assert len(outline) == 1 and model.requests[0] is outline[0]  # the outline first, then the parts
    outline_answer = model.inner.call(outline[0]).tool_input
    assert outline_answer is not None
    for table in phase.tables:  # the outline is keys, and exactly those rows were written
        assert keys(conn, table, generation["generation_id"]) == sorted(r["key"] for r in outline_answer[table])
    assert all(r["gist"] and len(r["gist"].split()) <= 12 for rows in outline_answer.values() for r in rows)
    gists = {r["key"]: r["gist"] for r in outline_answer["feats"]}
    parts = model.part_requests()
    # every call sends the same tools and the same cached prefix, differing only in the forced tool and message
    assert {r.shared_prompt for r in model.requests} == {outline[0].shared_prompt}
    assert all(r.tools == outline[0].tools for r in parts)
    assert sorted(k for r in parts for k in r.assigned.get("feats", [])) == keys(
        conn, "feats", generation["generation_id"]
    )
    split = [r.assigned["feats"] for r in parts if "feats" in r.assigned]
    assert len(split) == len(phase.parts_writing("feats")) > 1  # dealt out between parts
    assert len({k for keys_of_part in split for k in keys_of_part}) == sum(len(k) for k in split)  # none twice
    for part in (r for r in parts if "feats" in r.assigned):  # each part is told the gists of its rows
        message = str(part.messages[-1]["content"])
        assert all(f'"{k}": "{gists[k]}' in message for k in part.assigned["feats"])


def test_an_invalid_outline_is_repaired_before_any_part_is_called(conn, generation):
    def duplicate_a_race(request: ModelRequest, response: ModelResponse, number: int) -> None:
        if number == 1:
            assert response.tool_input is not None
            races = response.tool_input["races"]
            races.append({**races[0], "key": races[0]["key"].replace("-", "_").upper()})  # the same key once slugged
            races.append({"key": "", "gist": "a race"})

    model = Recording(duplicate_a_race)
    outcome = run_phase(conn, generation["generation_id"], "1B", model)

    assert outcome.status == "succeeded"
    assert [r.tool["name"].endswith("_outline") for r in model.requests[:2]] == [True, True]
    repair = model.requests[1].messages[-1]["content"][0]
    assert repair["type"] == "tool_result" and repair["is_error"] is True
    assert "duplicate key" in repair["content"] and "a key is required" in repair["content"]
    assert outcome.model_calls == get_phase("1B").planned_calls + 1


def test_a_part_is_repaired_alone_and_must_keep_to_its_rows(conn, generation):
    strayed: list[str] = []
    one_part = threading.Lock()

    def stray_key(request: ModelRequest, response: ModelResponse, number: int) -> None:
        if not (request.assigned.get("races") and request.round == 1):
            return
        with one_part:  # the parts answer side by side: only one of the races parts strays
            if strayed:
                return
            strayed.append(request.assigned["races"][0])
            assert response.tool_input is not None
            response.tool_input["races"][0]["key"] = "a-race-nobody-outlined"

    model = Recording(stray_key)
    outcome = run_phase(conn, generation["generation_id"], "1B", model)

    assert outcome.status == "succeeded"
    repaired = [r for r in model.part_requests() if r.round == 2]
    assert len(repaired) == 1 and list(repaired[0].assigned) == ["races"]
    text = repaired[0].messages[-1]["content"][0]["content"]
    assert "keys not among this call's rows: ['a-race-nobody-outlined']" in text
    assert "rows missing for the outline's keys" in text
    assert "a-race-nobody-outlined" not in keys(conn, "races", generation["generation_id"])


def test_a_retried_attempt_reuses_the_outline_and_the_parts_already_answered(conn, generation, caplog):
    failed_once: list[str] = []

    def overload_the_backgrounds(request: ModelRequest, response: ModelResponse, number: int) -> None:
        if request.assigned.get("backgrounds") and not failed_once:
            failed_once.append("yes")
            raise ModelOverloaded("529 overloaded")

    first = Recording(overload_the_backgrounds)
    with pytest.raises(ModelOverloaded):
        run_phase(conn, generation["generation_id"], "1B", first)
    # the failed attempt is logged with its error (the next attempt clears the row's)
    failed = [r for r in caplog.records if r.getMessage() == "phase attempt failed"]
    assert [(r.phase, r.attempt, r.error_type) for r in failed] == [("1B", 1, "ModelOverloaded")]
    run = one_row(
        conn.execute(
            "SELECT status, parts FROM phase_runs WHERE generation_id = %s AND phase = '1B'",
            (generation["generation_id"],),
        )
    )
    conn.commit()
    phase = get_phase("1B")
    assert run["status"] == "failed" and run["parts"]["outline"]
    assert len(run["parts"]["answers"]) == len(phase.table_groups) - 1  # all but the part that failed
    report = generation_report(conn, generation["generation_id"])
    assert f"has outline, {len(phase.table_groups) - 1}/{len(phase.table_groups)} parts" in report

    second = Recording()
    outcome = run_phase(conn, generation["generation_id"], "1B", second)

    assert outcome.status == "succeeded"
    assert second.outline_requests() == []  # the outline was paid for once
    assert [list(r.assigned) for r in second.requests] == [["backgrounds"]]  # only the part that failed
    for table in phase.tables:
        stored = keys(conn, table, generation["generation_id"])
        assert stored and len(stored) == len(set(stored))
    run = one_row(
        conn.execute(
            "SELECT parts, attempt FROM phase_runs WHERE generation_id = %s AND phase = '1B'",
            (generation["generation_id"],),
        )
    )
    conn.commit()
    assert run["parts"] is None and run["attempt"] == 2  # cleared once the phase succeeded
    ledger = conn.execute(
        "SELECT part FROM model_calls WHERE generation_id = %s AND phase = '1B'", (generation["generation_id"],)
    ).fetchall()
    conn.commit()
    assert len(ledger) == phase.planned_calls + 1  # every call paid for, once
    parts = [row["part"] for row in ledger]  # each row names the call: the outline, or the part
    # backgrounds come in several parts (split by key); the one that failed was called again
    background_parts = len(phase.parts_writing("backgrounds"))
    assert parts.count("outline") == 1 and sum(p.startswith("backgrounds:") for p in parts) == background_parts + 1
    assert len(set(parts)) == phase.planned_calls  # the failed part's two calls share its name


def test_a_part_with_ten_thousand_bad_rows_gets_a_bounded_repair_prompt_and_error(conn, generation):
    def flood(request: ModelRequest, response: ModelResponse, number: int) -> None:
        if request.assigned.get("races"):
            assert response.tool_input is not None
            response.tool_input["races"] = [{"key": f"race-{n}", "name": "x" * 300} for n in range(10_000)]

    model = Recording(flood)
    with pytest.raises(InvalidModelOutput) as raised:
        run_phase(conn, generation["generation_id"], "1B", model)

    repairs = [r for r in model.part_requests() if r.round > 1 and "races" in r.assigned]
    assert repairs
    for request in repairs:
        text = request.messages[-1]["content"][0]["content"]
        assert len(text) < 40_000
    assert len(str(raised.value)) < 8_000


def test_the_ledger_names_every_key_of_a_part_that_writes_part_of_a_split_table(conn, generation):
    """Issue 29: a part of a table dealt out between parts is named in the ledger by all its keys, so
    the ledger says which rows each paid call wrote (not only the first)."""
    model = Recording()
    run_phase(conn, generation["generation_id"], "1B", model)

    ledger = conn.execute(
        "SELECT part FROM model_calls WHERE generation_id = %s AND phase = '1B' AND part LIKE 'backgrounds:%%'",
        (generation["generation_id"],),
    ).fetchall()
    conn.commit()
    named = [row["part"].split(":", 1)[1].split(",") for row in ledger]
    assert len(named) == len(get_phase("1B").parts_writing("backgrounds"))
    assert len(named) > 1  # the table is split between parts
    assert sorted(k for keys_of_part in named for k in keys_of_part) == keys(
        conn, "backgrounds", generation["generation_id"]
    )
    dealt = [list(r.assigned["backgrounds"]) for r in model.part_requests() if "backgrounds" in r.assigned]
    assert sorted(named) == sorted(dealt)
