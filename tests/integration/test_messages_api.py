"""One Messages-API fake: the simulator and the tests' stand-in frame their answers and bill them
through worldgen.local.messages_api, so a test on the stand-in and a benchmark on the simulator
tell the same bill (issue 21, item 5)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.standin import StandIn
from worldgen.local.messages_api import PromptCache

REPO_ROOT = Path(__file__).resolve().parents[2]
EPHEMERAL = {"type": "ephemeral"}
ROW = {
    "type": "object",
    "properties": {"key": {"type": "string"}, "name": {"type": "string"}},
    "required": ["key", "name"],
    "additionalProperties": False,
}
SCHEMA = {
    "type": "object",
    "properties": {"planes": {"type": "array", "items": ROW}},
    "required": ["planes"],
    "additionalProperties": False,
}
TOOL = {"name": "record_phase_1a", "description": "The phase's rows. " * 700, "input_schema": SCHEMA}
SYSTEM = "You are worldgen. " + "The world so far. " * 900


def forced_tool(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 1000,
        "stream": True,
        "tools": [{**TOOL, "cache_control": EPHEMERAL}],
        "tool_choice": {"type": "tool", "name": TOOL["name"]},
        "system": [{"type": "text", "text": SYSTEM, "cache_control": EPHEMERAL}],
        "messages": [{"role": "user", "content": "Write the planes."}],
    }
    return {**body, **changes}


def structured(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-5-5",
        "max_tokens": 1000,
        "stream": True,
        "system": [{"type": "text", "text": SYSTEM, "cache_control": EPHEMERAL}],
        "output_config": {"format": {"type": "json_schema", "schema": schema}},
        "messages": [{"role": "user", "content": "Write the planes."}],
    }


def post(standin: StandIn, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of the stand-in's streamed answer to ``body``, in order."""
    request = urllib.request.Request(
        f"{standin.url}/v1/messages", json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    return [json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith("data: ")]


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


def test_the_stand_in_bills_by_the_simulators_cache_rules(standin: StandIn) -> None:
    marked = [{"role": "user", "content": [{"type": "text", "text": "x" * 12000, "cache_control": EPHEMERAL}]}]
    bodies = [
        forced_tool(),
        forced_tool(messages=marked),
        forced_tool(messages=marked, tool_choice={"type": "auto"}),  # the messages level's key changes
        structured(SCHEMA),
        structured({**SCHEMA, "description": "another part's format"}),  # the format is in the key
        structured(SCHEMA),
    ]
    for body in bodies:
        post(standin, body)

    reference = PromptCache()  # the rules the simulator bills by, its writes readable at once
    expected = [
        reference.bill(b, r.usage["output_tokens"], time.monotonic()).usage
        for b, r in zip(bodies, standin.message_requests, strict=True)
    ]
    assert [r.usage for r in standin.message_requests] == expected
    reads = [usage["cache_read_input_tokens"] for usage in expected]
    writes = [usage["cache_creation_input_tokens"] for usage in expected]
    assert reads[:2] == [0, writes[0]] and writes[1] > 0  # tools and system read, the message block written
    assert (reads[2], writes[2]) == (reads[1], writes[1])  # another tool_choice: the message block again
    assert reads[3:] == [0, 0, writes[3]]  # another model, then another format: nothing read


def test_a_streamed_answer_is_the_apis_event_sequence_with_the_cumulative_usage_at_the_end(standin: StandIn) -> None:
    events = post(standin, forced_tool())

    types = [event["type"] for event in events]
    deltas = types.count("content_block_delta")
    assert types == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert deltas >= 1
    assert events[0]["message"]["usage"]["output_tokens"] == 1
    assert events[-2]["usage"] == standin.message_requests[0].usage


def test_one_module_writes_the_message_start_event() -> None:
    sources = [
        *(REPO_ROOT / "layers/worldgen/python/worldgen").rglob("*.py"),
        *(REPO_ROOT / "tests/support").rglob("*.py"),
    ]

    writers = [p.relative_to(REPO_ROOT).as_posix() for p in sources if '"message_start"' in p.read_text()]

    assert writers == ["layers/worldgen/python/worldgen/local/messages_api.py"]
