"""A stand-in for the Anthropic Messages API, for tests that drive the real SDK over HTTP.

``StandIn`` serves on 127.0.0.1 (random port); point the SDK at ``url`` (``base_url`` /
``WORLDGEN_ANTHROPIC_BASE_URL``). It records every request (JSON body and headers) and answers
``POST /v1/messages`` from a per-test queue of scripted ``Answer``s; when the queue is empty it
answers with a valid tool input built from the tool's JSON schema (``fill_tool_input``). Streaming
requests (``"stream": true``) get the SSE event sequence of the real API. The server, the framing
and the bill are ``worldgen.local.messages_api``'s, the paced simulator's too: what is answered is
this module's.

It speaks both dialects of a phase request: a forced tool (the answer is a ``tool_use`` block)
and structured outputs (``output_config.format``: the answer is a text block holding the JSON).
Like the real API it answers 400 ``invalid_request_error`` to a request for a Sonnet 5.5 model
that carries a setting the Sonnet 5.5 migration guide lists as a 400 (``forbidden_settings``),
and to a structured-output schema outside the documented limits (``schema_problems``).

Usage is billed by the simulator's rules (``messages_api.PromptCache``: the family's tokenizer,
the cache key tools -> system with the output format -> messages, the family's minimum cacheable
length, a 5-minute TTL), so ledger tests and ``make bench-models`` mean something. Unlike the
simulator, the stand-in answers at once: what a request writes to the cache is readable as soon
as it is billed.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from worldgen.local.messages_api import (
    Exchange,
    LoopbackServer,
    PromptCache,
    assistant_message,
    family_for,
    token_count,
)

# Families that reject a forced tool and the other settings below (API and Bedrock ids alike).
STRUCTURED_ONLY_FAMILIES = ("claude-sonnet-5-5",)
SAMPLING_PARAMETERS = ("temperature", "top_p", "top_k")
# Families that think by default and refuse a forced tool unless thinking is disabled explicitly
# (Sonnet 5 migration guide, 2026-12-04): "claude-sonnet-5" and "claude-opus-5", not their x.5.
DEFAULT_THINKING_FAMILIES = re.compile(r"claude-(?:sonnet|opus)-5(?!-\d)")
# Keywords structured outputs (and strict tools) reject.
UNSUPPORTED_SCHEMA_KEYWORDS = frozenset(
    {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
     "maxLength", "maxItems", "uniqueItems", "minProperties", "maxProperties"}
)  # fmt: skip
_REFERENCE = re.compile(r"Key of (?:a|the referenced) row of ([a-z_ ]+?)\.")
DELTA_CHARS = 512  # characters of text or tool input per content_block_delta event


@dataclass
class Answer:
    """One scripted answer. Build them with the class methods."""

    # valid | tool_input | error | truncated | refusal | text | stream_error | pause_turn | context_window
    kind: str = "valid"
    status: int = 200
    error_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    tool_input: dict[str, Any] | None = None
    text: str = ""
    delay: float = 0.0  # seconds before the response starts
    gap: float = 0.0  # seconds between SSE events
    thinking: str = ""  # a thinking block before the answer (as adaptive thinking writes)

    @classmethod
    def valid(cls, delay: float = 0.0, gap: float = 0.0, thinking: str = "") -> Answer:
        return cls(delay=delay, gap=gap, thinking=thinking)

    @classmethod
    def with_input(cls, tool_input: dict[str, Any]) -> Answer:
        return cls(kind="tool_input", tool_input=tool_input)

    @classmethod
    def error(cls, status: int, error_type: str, retry_after: str | None = None) -> Answer:
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        return cls(kind="error", status=status, error_type=error_type, headers=headers)

    @classmethod
    def rate_limited(cls, retry_after: str = "0") -> Answer:
        return cls.error(429, "rate_limit_error", retry_after)

    @classmethod
    def overloaded(cls) -> Answer:
        return cls.error(529, "overloaded_error")

    @classmethod
    def server_error(cls) -> Answer:
        return cls.error(500, "api_error")

    @classmethod
    def slow(cls, delay: float) -> Answer:
        return cls(delay=delay)

    @classmethod
    def truncated(cls) -> Answer:
        return cls(kind="truncated")

    @classmethod
    def refusal(cls) -> Answer:
        return cls(kind="refusal")

    @classmethod
    def text_only(cls, text: str = "Here is your world, in prose.") -> Answer:
        return cls(kind="text", text=text)

    @classmethod
    def pause_turn(cls) -> Answer:
        return cls(kind="pause_turn")

    @classmethod
    def context_window_exceeded(cls) -> Answer:
        return cls(kind="context_window")

    @classmethod
    def stream_error(cls, error_type: str = "overloaded_error") -> Answer:
        return cls(kind="stream_error", error_type=error_type)


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    usage: dict[str, int] = field(default_factory=dict)  # what the stand-in answered with
    rejected: list[str] = field(default_factory=list)  # why it answered 400 (forbidden settings, schema)


class StandIn:
    def __init__(self, rows_per_table: int = 2, port: int = 0) -> None:
        self.rows_per_table = rows_per_table
        self.answers: deque[Answer] = deque()
        self.requests: list[RecordedRequest] = []
        self.cache = PromptCache()  # the simulator's rules, on the real clock
        self.on_answered: Callable[[RecordedRequest], None] | None = None  # called after each answer
        self._lock = threading.Lock()
        self._server = LoopbackServer(self._respond, "standin", port)

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> StandIn:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, *answers: Answer) -> None:
        self.answers.extend(answers)

    def next_answer(self) -> Answer:
        with self._lock:
            return self.answers.popleft() if self.answers else Answer.valid()

    @property
    def message_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.startswith("/v1/messages")]

    # -- answers -------------------------------------------------------------------------------

    def _respond(self, exchange: Exchange) -> None:
        body = exchange.body
        record = RecordedRequest(exchange.path, exchange.headers, body)
        with self._lock:
            self.requests.append(record)
        try:
            if exchange.path.startswith("/v1/messages"):
                record.rejected = forbidden_settings(body) + schema_problems(body)
            if record.rejected:  # as the API does: a 400 before any scripted answer is used
                message = "stand-in rejected the request: " + "; ".join(record.rejected)
                exchange.send_error(400, "invalid_request_error", message)
                return
            answer = self.next_answer()
            if answer.delay:
                time.sleep(answer.delay)
            self._answer(exchange, answer, record)
        finally:
            if self.on_answered is not None:
                self.on_answered(record)

    def _answer(self, exchange: Exchange, answer: Answer, record: RecordedRequest) -> None:
        body = exchange.body
        if answer.kind == "error":
            exchange.send_error(answer.status, answer.error_type, "stand-in error", answer.headers)
            return
        content, stop_reason = _content(exchange, answer, body, self.rows_per_table)
        answer_chars = sum(_block_chars(block) for block in content)
        output_tokens = max(1, token_count(answer_chars, family_for(body)))
        record.usage = self.cache.bill(body, output_tokens, first_token_at=time.monotonic()).usage
        answered = assistant_message(exchange.new_id("msg"), body.get("model"), content, stop_reason, record.usage)
        if not body.get("stream"):
            exchange.send_json(200, answered)
            return
        stream = exchange.stream(gap=answer.gap)
        stream.start(answered)
        if answer.kind == "stream_error":
            stream.error(answer.error_type, "stand-in")
            return
        for index, block in enumerate(content):
            written = None
            if block["type"] == "tool_use" and answer.kind in _STOP_REASONS:
                full = json.dumps(block["input"])
                written = full[: len(full) // 2]  # cut off mid-JSON, as max_tokens does
            stream.write_block(index, block, DELTA_CHARS, written)
        stream.finish(stop_reason, record.usage)


def is_structured_only(body: dict[str, Any]) -> bool:
    """Whether the request is for a model that rejects forced tools (Sonnet 5.5, API or Bedrock id)."""
    model = str(body.get("model") or "")
    return any(family in model for family in STRUCTURED_ONLY_FAMILIES)


def forbidden_settings(body: dict[str, Any]) -> list[str]:
    """The settings of ``body`` that Sonnet 5.5 answers with a 400 (the migration guide's five), and
    a forced tool with thinking left on (its default) for Sonnet 5 and Opus 5.

    Empty for any other model. ``between_tools`` at xhigh/max effort is rejected as well.
    """
    if DEFAULT_THINKING_FAMILIES.search(str(body.get("model") or "")):
        forced = (body.get("tool_choice") or {}).get("type") in ("tool", "any")
        if forced and (body.get("thinking") or {}).get("type") != "disabled":
            return ['forced tool_choice with thinking on (its default): send thinking {"type": "disabled"}']
        return []
    if not is_structured_only(body):
        return []
    found: list[str] = []
    choice = body.get("tool_choice") or {}
    if choice.get("type") in ("tool", "any"):
        found.append(f"forced tool_choice {choice.get('type')!r}")
    thinking = body.get("thinking") or {}
    if thinking.get("type") == "enabled" or "budget_tokens" in thinking:
        found.append("thinking budget")
    if thinking.get("type") == "disabled":
        found.append('thinking {"type": "disabled"} (use between_tools)')
    found += [f"sampling parameter {name}" for name in SAMPLING_PARAMETERS if name in body]
    messages = body.get("messages") or []
    if messages and messages[-1].get("role") == "assistant":
        found.append("assistant prefill")
    effort = (body.get("output_config") or {}).get("effort")
    if thinking.get("type") == "between_tools" and effort in ("xhigh", "max"):
        found.append(f"between_tools thinking at effort {effort!r}")
    return found


def schema_problems(body: dict[str, Any]) -> list[str]:
    """What structured outputs reject in ``output_config.format`` (empty without one)."""
    output_format = (body.get("output_config") or {}).get("format")
    if output_format is None:
        return []
    if output_format.get("type") != "json_schema" or not isinstance(output_format.get("schema"), dict):
        return ['output_config.format must be {"type": "json_schema", "schema": {...}}']
    problems: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            problems.extend(f"{path}: unsupported keyword {k}" for k in node if k in UNSUPPORTED_SCHEMA_KEYWORDS)
            if (
                node.get("type") == "object"
                and node.get("properties")
                and node.get("additionalProperties") is not False
            ):
                problems.append(f"{path}: objects must set additionalProperties: false")
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}[{index}]")

    walk(output_format["schema"], "schema")
    return problems


# -- the schema-driven filler ------------------------------------------------------------------


def fill_tool_input(
    input_schema: dict[str, Any],
    rows_per_table: int = 2,
    outline: dict[str, list[dict[str, str]]] | None = None,
    assigned: dict[str, list[dict[str, str]]] | None = None,
) -> dict[str, Any]:
    """A valid tool input for a phase tool schema: ``rows_per_table`` rows in every table.

    Keys are unique slugs; enums take their first value, except references (enums of existing
    keys, or keys of rows of an earlier table of the same phase, named in the description as
    "(Key of a row of <table>.)") which rotate so that the two ends of an edge differ. A row sets
    at most one optional reference (link tables such as pc_connections need exactly one).
    A part of an outlined phase (``assigned``, read from its message) writes exactly its rows,
    and may refer to every row of the ``outline``.
    """
    tables: dict[str, list[dict[str, Any]]] = {
        t: [dict(r) for r in rows] for t, rows in (outline or {}).items() if t not in (assigned or {})
    }
    for table, table_schema in input_schema["properties"].items():
        if assigned is not None and table not in assigned:
            continue
        item = table_schema["items"]
        if item.get("type") == "string":  # an outline: keys
            tables[table] = [f"{table.replace('_', '-')}-{n + 1}" for n in range(rows_per_table)]  # type: ignore[misc]
            continue
        rows: list[dict[str, Any]] = []
        given = assigned.get(table) if assigned is not None else None  # None: rows of its own choosing
        for index in range(len(given) if given is not None else rows_per_table):
            row = _fill_row(table, item, index, tables, rows)
            if given is not None:
                row["key"] = given[index]["key"]
            rows.append(row)
        tables[table] = rows
    if assigned is not None:
        return {t: tables[t] for t in assigned}
    return tables


def _enum(body: dict[str, Any], table: str, column: str) -> list[Any]:
    """The values the request's rows tool allows in ``table``'s ``column`` (the keys of its references)."""
    for tool in body.get("tools", []):
        items = tool.get("input_schema", {}).get("properties", {}).get(table, {}).get("items", {})
        if column in items.get("properties", {}):
            return list(items["properties"][column].get("enum", []))
    return []


def anchored(body: dict[str, Any], rows: dict[str, Any]) -> dict[str, Any]:
    """A part of a table split between parts without an outline writes that table's rows only for
    the keys its message deals it (outline.ANCHORS_MARKER), one row each at most."""
    from worldgen.outline import ANCHORS_MARKER

    for message in body.get("messages", []):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            for line in message["content"].splitlines():
                if line.startswith(ANCHORS_MARKER):
                    for table, (prop, keys) in json.loads(line[len(ANCHORS_MARKER) :]).items():
                        kept = rows.get(table, [])[: len(keys)]
                        for row, key in zip(kept, keys, strict=False):
                            row[prop] = key
                            row["key"] = f"{key}-{table.replace('_', '-')}"  # as asked: no two parts' keys meet
                            for column, value in row.items():  # no edge from a row to itself
                                if value == key and column not in (prop, "key"):
                                    others = [k for k in _enum(body, table, column) if k != key]
                                    row[column] = others[0] if others else value
                        rows[table] = kept
    return rows


def outlined_part(body: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The outline and the rows a part of a phase writes, from the lines of its message (a part
    without an outline names its tables: each gets rows, none fixed)."""
    from worldgen.outline import ASSIGNED_MARKER, OUTLINE_MARKER, TABLES_MARKER

    found: dict[str, Any] = {}
    for message in body.get("messages", []):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            for line in message["content"].splitlines():
                for marker in (OUTLINE_MARKER, ASSIGNED_MARKER, TABLES_MARKER):
                    if line.startswith(marker):
                        found[marker] = json.loads(line[len(marker) :])
    if TABLES_MARKER in found and ASSIGNED_MARKER not in found:
        return None, {t: None for t in found[TABLES_MARKER]}
    if ASSIGNED_MARKER not in found:
        return None, None
    outline = {t: [{"key": k} for k in keys] for t, keys in found.get(OUTLINE_MARKER, {}).items()}
    return outline, {t: [{"key": k} for k in keys] for t, keys in found[ASSIGNED_MARKER].items()}


def _fill_row(
    table: str,
    item: dict[str, Any],
    index: int,
    tables: dict[str, list[dict[str, Any]]],
    earlier: list[dict[str, Any]],
) -> dict[str, Any]:
    row: dict[str, Any] = {}
    required = set(item.get("required", []))
    optional_reference_set = False
    reference_number = 0
    for prop, schema in item["properties"].items():
        target = _referenced_table(schema)
        if target is not None or (prop.endswith("_key") and prop != "key"):
            pool = _reference_pool(schema, target, table, tables, earlier)
            reference_number += 1
            if prop not in required and (optional_reference_set or not pool):
                continue
            row[prop] = pool[(index + reference_number - 1) % len(pool)] if pool else "no-such-row"
            optional_reference_set = optional_reference_set or prop not in required
            continue
        row[prop] = _fill_value(table, prop, schema, index)
    return row


def _referenced_table(schema: dict[str, Any]) -> str | None:
    match = _REFERENCE.search(schema.get("description", ""))
    if match is None:
        return None
    name = match.group(1).strip()
    return "player_characters" if name == "player character" else name


def _reference_pool(
    schema: dict[str, Any],
    target: str | None,
    table: str,
    tables: dict[str, list[dict[str, Any]]],
    earlier: list[dict[str, Any]],
) -> list[str]:
    if "enum" in schema:
        return list(schema["enum"])
    if target == table:
        return [row["key"] for row in earlier]
    return [row["key"] for row in tables.get(target or "", [])]


def _fill_value(table: str, prop: str, schema: dict[str, Any], index: int) -> Any:
    if prop == "key":
        return f"{table.replace('_', '-')}-{index + 1}"
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind in ("integer", "number"):
        value = schema.get("minimum", 1)
        if "maximum" in schema:
            value = min(value, schema["maximum"])
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return False
    if kind == "array":
        return ["x"]
    if kind == "object":
        return {}
    if prop == "name":
        return f"{table.replace('_', ' ').title()} {index + 1}"
    if prop == "description":
        return f"Stand-in {table} row {index + 1}."
    return "x"


def _block_chars(block: dict[str, Any]) -> int:
    """Characters the model wrote in a block: the text, the thinking, or the tool input's JSON."""
    if block["type"] == "tool_use":
        return len(block["name"]) + len(json.dumps(block["input"]))
    return len(block.get("text") or block.get("thinking") or "")


_STOP_REASONS = {
    "truncated": "max_tokens",
    "pause_turn": "pause_turn",
    "context_window": "model_context_window_exceeded",
}


def _content(
    exchange: Exchange, answer: Answer, body: dict[str, Any], rows_per_table: int
) -> tuple[list[dict[str, Any]], str]:
    """The answer's content blocks and stop reason, in the dialect of the request."""
    output_format = (body.get("output_config") or {}).get("format")
    tools = body.get("tools") or [{}]
    forced = (body.get("tool_choice") or {}).get("name") or _tool_named_last(body, tools)
    tool = next((t for t in tools if t.get("name") == forced), tools[0])
    thinking = (
        [{"type": "thinking", "thinking": answer.thinking, "signature": "sig-standin"}] if answer.thinking else []
    )
    if answer.kind == "refusal":
        return [{"type": "text", "text": "I can't help with that."}], "refusal"
    if answer.kind == "text":
        return [*thinking, {"type": "text", "text": answer.text}], "end_turn"
    rows = answer.tool_input
    if rows is None:
        schema = output_format["schema"] if output_format else tool["input_schema"]
        rows = anchored(body, fill_tool_input(schema, rows_per_table, *outlined_part(body)))
    stop_reason = _STOP_REASONS.get(answer.kind)
    if output_format is not None:
        text = json.dumps(rows)
        if stop_reason is not None:
            text = text[: len(text) // 2]  # cut off mid-JSON, as max_tokens does
        return [*thinking, {"type": "text", "text": text}], stop_reason or "end_turn"
    block = {"type": "tool_use", "id": exchange.new_id("toolu"), "name": tool.get("name", "tool"), "input": rows}
    return [*thinking, block], stop_reason or "tool_use"


def _tool_named_last(body: dict[str, Any], tools: list[dict[str, Any]]) -> str | None:
    """With the model free to choose (no forced tool), the tool the latest user message naming one
    names, as a model follows it (the longest name mentioned: ``..._outline`` before the phase
    tool); a repair turn names none, and the model calls the same tool again."""
    for message in reversed([m for m in body.get("messages") or [] if m.get("role") == "user"]):
        text = json.dumps(message.get("content"))
        named = [str(t.get("name")) for t in tools if t.get("name") and str(t.get("name")) in text]
        if named:
            return max(named, key=len)
    return None


def main() -> None:
    """Serve the stand-in until interrupted: ``python -m tests.support.standin --port 8765 --log FILE``.

    Point ``ANTHROPIC_BASE_URL`` at the printed URL (any key will do). Each request is appended to
    ``--log`` as one JSON line: the model, the dialect settings it carried and, for Sonnet 5.5, the
    settings it would have been rejected for.
    """
    import argparse
    import signal

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0] if main.__doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rows", type=int, default=2, help="rows per table in valid answers")
    parser.add_argument("--log", help="append one JSON line per request to this file")
    args = parser.parse_args()
    standin = StandIn(rows_per_table=args.rows, port=args.port).start()
    print(f"stand-in Messages API at {standin.url}", flush=True)
    standin.on_answered = lambda record: _log(args.log, record)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()


def _log(path: str | None, record: RecordedRequest) -> None:
    body = record.body
    line = {
        "model": body.get("model"),
        "tool_choice": body.get("tool_choice"),
        "tools": [t.get("name") for t in body.get("tools", [])],
        "thinking": body.get("thinking"),
        "output_config": sorted((body.get("output_config") or {}).keys()),
        "sampling": [k for k in SAMPLING_PARAMETERS if k in body],
        "last_role": (body.get("messages") or [{}])[-1].get("role"),
        "rejected": record.rejected,
        "usage": record.usage,
    }
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps(line) + "\n")
    else:
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()


def requests_for(phase: Any, rows_per_table: int = 2) -> int:
    """The requests a phase sends the stand-in on a first attempt without repairs: the outline and
    a part per group with rows (a table dealt out to more parts than it has rows leaves some
    empty), or, for parts without an outline, the one-token cache primer (``Phase.primes_cache``) and
    a call per part."""
    from worldgen.outline import deal

    if not phase.outline:
        return len(phase.table_groups) + (1 if phase.primes_cache else 0)
    rows = {t: [{"key": f"{t}-{n}", "name": t} for n in range(rows_per_table)] for t in phase.tables}
    return 1 + sum(1 for part in deal(phase, rows) if part)
