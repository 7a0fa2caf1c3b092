"""Partial success forgives keys (issue 21): a model that writes ``Like_This`` keys everywhere and one
self-referencing edge it never fixes in each 3C part (and in Q3, written in one call) completes the
world with those rows dropped and reported, on the parts path and on the one-call path alike."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.e2e.conftest import OWNER, start_and_wait
from tests.e2e.test_data_safety import generation_status, query, world
from worldgen.model.base import ModelRequest, ModelResponse
from worldgen.model.procedural import ProceduralModel

pytestmark = pytest.mark.xdist_group("e2e")

SELF_EDGES = {  # table -> (the reference that names the row's own end, the one that must differ)
    "entity_relationships": ("entity_key", "related_entity_key"),
    "faction_relationships": ("faction_key", "other_faction_key"),
    "location_connections": ("from_location_key", "to_location_key"),
}


def like_this(key: str) -> str:
    """``iron-marches`` as a careless model writes it: ``Iron_Marches``."""
    return "_".join(word.capitalize() for word in key.split("-"))


def _restyle(rows: Any) -> None:
    for row in rows if isinstance(rows, list) else []:
        for prop, value in list(row.items()) if isinstance(row, dict) else []:
            if (prop == "key" or prop.endswith("_key")) and isinstance(value, str):
                row[prop] = like_this(value)


class LikeThisKeysAndSelfEdges:
    """The procedural model, writing every key and reference ``Like_This`` (outlines too) and adding
    one self-referencing edge to every answer that writes a table of SELF_EDGES, repairs included."""

    provider = "procedural"

    def __init__(self) -> None:
        self.inner = ProceduralModel()
        self.self_edges: set[tuple[str, str]] = set()  # (table, slugged key)
        self.lock = threading.Lock()

    def call(self, request: ModelRequest) -> ModelResponse:
        response = self.inner.call(request)
        answer = response.tool_input
        if not isinstance(answer, dict):
            return response
        for table, (own, other) in SELF_EDGES.items():
            rows = answer.get(table)
            if request.phase.id not in ("3C", "Q3") or not rows:
                continue
            dealt = request.anchors.get(table, ("", ("",)))[1]  # a table in several parts: a key in each
            key = f"self-edge-of-{table.replace('_', '-')}" + (f"-{dealt[0]}" if dealt and dealt[0] else "")
            with self.lock:
                self.self_edges.add((table, key))
            answer[table] = [*rows, {**rows[0], "key": key, other: rows[0][own]}]
            break  # one self-edge per part
        for rows in answer.values():
            _restyle(rows)
        return response


def _dropped(url: str, generation_id: str, phase: str) -> dict[str, Any]:
    return query(
        url,
        "SELECT dropped_rows, result FROM phase_runs WHERE generation_id = %s AND phase = %s",
        generation_id,
        phase,
    )[0]


def test_like_this_keys_and_a_self_edge_per_3c_part_complete_the_world_with_those_rows_dropped(
    make_runtime, settings_env, campaign_id
):
    model = LikeThisKeysAndSelfEdges()
    runtime = make_runtime(model)

    started = start_and_wait(runtime, campaign_id)

    assert started["execution"]["status"] == "SUCCEEDED", started["execution"]
    assert generation_status(settings_env, started["generation_id"]) == "succeeded"
    assert {t for t, _ in model.self_edges} == set(SELF_EDGES)  # a self-edge in every part of those tables
    run = _dropped(settings_env, started["generation_id"], "3C")
    assert sorted((d["table"], d["key"]) for d in run["dropped_rows"]) == sorted(model.self_edges)
    assert all("must differ (an edge needs two ends)" in d["reason"] for d in run["dropped_rows"])
    assert run["result"]["rows_dropped"] == len(model.self_edges)
    saved = world(settings_env, campaign_id)
    assert not {k for t, k in model.self_edges} & {key for rows in saved.values() for (_, key, _) in rows}
    assert {key for (_, key, _) in saved["entity_relationships"]}  # the rest of 3C is there, slugged


def test_like_this_keys_and_self_edges_in_a_phase_of_one_call_complete_the_quick_world(
    make_runtime, settings_env, campaign_id
):
    model = LikeThisKeysAndSelfEdges()
    runtime = make_runtime(model)

    status, body = runtime.action("generateWorld", {"campaign_id": str(campaign_id), "profile": "quick"}, user_id=OWNER)
    assert status == 200, body
    execution = runtime.wait(body["execution_arn"], timeout=120)

    assert execution["status"] == "SUCCEEDED", execution
    assert generation_status(settings_env, body["generation_id"]) == "succeeded"
    run = _dropped(settings_env, body["generation_id"], "Q3")
    assert sorted((d["table"], d["key"]) for d in run["dropped_rows"]) == sorted(model.self_edges)
    assert run["result"]["rows_dropped"] == len(model.self_edges) > 0
