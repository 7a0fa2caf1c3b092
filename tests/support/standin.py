"""A stand-in for the Anthropic Messages API, for tests that drive the real SDK over HTTP.

``StandIn`` runs a ThreadingHTTPServer on 127.0.0.1 (random port); point the SDK at ``url``
(``base_url`` / ``WORLDGEN_ANTHROPIC_BASE_URL``). It records every request (JSON body and headers)
and answers ``POST /v1/messages`` from a per-test queue of scripted ``Answer``s; when the queue is
empty it answers with a valid tool input built from the tool's JSON schema (``fill_tool_input``).
Streaming requests (``"stream": true``) get the SSE event sequence of the real API.

Usage is plausible, so ledger tests mean something: tokens are characters / 4; the prompt prefix
up to each cache breakpoint (tools, then system) is written to the cache the first time it is
seen (when at least ``MIN_CACHEABLE_TOKENS`` long) and read from it afterwards.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHARS_PER_TOKEN = 4
MIN_CACHEABLE_TOKENS = 1024
_REFERENCE = re.compile(r"Key of (?:a|the referenced) row of ([a-z_ ]+?)\.")
_ids = itertools.count(1)


@dataclass
class Answer:
    """One scripted answer. Build them with the class methods."""

    kind: str = "valid"  # valid | tool_input | error | truncated | refusal | text | stream_error
    status: int = 200
    error_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    tool_input: dict[str, Any] | None = None
    text: str = ""
    delay: float = 0.0  # seconds before the response starts
    gap: float = 0.0  # seconds between SSE events

    @classmethod
    def valid(cls, delay: float = 0.0, gap: float = 0.0) -> Answer:
        return cls(delay=delay, gap=gap)

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
    def stream_error(cls, error_type: str = "overloaded_error") -> Answer:
        return cls(kind="stream_error", error_type=error_type)


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    usage: dict[str, int] = field(default_factory=dict)  # what the stand-in answered with


class StandIn:
    def __init__(self, rows_per_table: int = 2) -> None:
        self.rows_per_table = rows_per_table
        self.answers: deque[Answer] = deque()
        self.requests: list[RecordedRequest] = []
        self._cached: set[str] = set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> StandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

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

    # -- usage ---------------------------------------------------------------------------------

    def usage_for(self, body: dict[str, Any], answer_chars: int) -> dict[str, int]:
        """Input/cache tokens from the request size and the cache breakpoints it carries."""
        tools_text = json.dumps(body.get("tools", []))
        system_text = json.dumps(body.get("system", ""))
        total = (len(tools_text) + len(system_text) + len(json.dumps(body.get("messages", [])))) // CHARS_PER_TOKEN
        breakpoints: list[tuple[str, int]] = []  # (prefix digest, prefix tokens)
        prefix = json.dumps(body.get("model")) + tools_text
        if any(isinstance(t, dict) and t.get("cache_control") for t in body.get("tools", [])):
            breakpoints.append((_digest(prefix), len(tools_text) // CHARS_PER_TOKEN))
        system = body.get("system")
        if isinstance(system, list) and any(isinstance(b, dict) and b.get("cache_control") for b in system):
            tokens = (len(tools_text) + len(system_text)) // CHARS_PER_TOKEN
            breakpoints.append((_digest(prefix + system_text), tokens))
        breakpoints = [(d, t) for d, t in breakpoints if t >= MIN_CACHEABLE_TOKENS]
        with self._lock:
            read = max((t for d, t in breakpoints if d in self._cached), default=0)
            longest = max((t for _, t in breakpoints), default=0)
            created = longest - read
            self._cached.update(d for d, _ in breakpoints)
        return {
            "input_tokens": total - read - created,
            "output_tokens": max(1, answer_chars // CHARS_PER_TOKEN),
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
        }


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# -- the schema-driven filler ------------------------------------------------------------------


def fill_tool_input(input_schema: dict[str, Any], rows_per_table: int = 2) -> dict[str, Any]:
    """A valid tool input for a phase tool schema: ``rows_per_table`` rows in every table.

    Keys are unique slugs; enums take their first value, except references (enums of existing
    keys, or keys of rows of an earlier table of the same phase, named in the description as
    "(Key of a row of <table>.)") which rotate so that the two ends of an edge differ. A row sets
    at most one optional reference (link tables such as pc_connections need exactly one).
    """
    tables: dict[str, list[dict[str, Any]]] = {}
    for table, table_schema in input_schema["properties"].items():
        item = table_schema["items"]
        rows: list[dict[str, Any]] = []
        for index in range(rows_per_table):
            rows.append(_fill_row(table, item, index, tables, rows))
        tables[table] = rows
    return tables


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


# -- HTTP --------------------------------------------------------------------------------------


def _handler_for(standin: StandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            record = RecordedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            with standin._lock:
                standin.requests.append(record)
            answer = standin.next_answer()
            try:
                if answer.delay:
                    time.sleep(answer.delay)
                self._answer(answer, body, record)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing to answer

        def _answer(self, answer: Answer, body: dict[str, Any], record: RecordedRequest) -> None:
            if answer.kind == "error":
                error = {"type": "error", "error": {"type": answer.error_type, "message": "stand-in error"}}
                self._send_json(answer.status, error, answer.headers)
                return
            content, stop_reason = _content(answer, body, standin.rows_per_table)
            answer_chars = len(json.dumps(content))
            record.usage = standin.usage_for(body, answer_chars)
            message = {
                "id": f"msg_standin_{next(_ids)}",
                "type": "message",
                "role": "assistant",
                "model": body.get("model"),
                "content": content,
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "usage": record.usage,
            }
            if body.get("stream"):
                self._send_stream(message, answer)
            else:
                self._send_json(200, message, {})

        def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("request-id", f"req_standin_{next(_ids)}")
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _send_stream(self, message: dict[str, Any], answer: Answer) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("request-id", f"req_standin_{next(_ids)}")
            self.send_header("connection", "close")
            self.end_headers()
            for event in _events(message, answer):
                self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
                if answer.gap:
                    time.sleep(answer.gap)
            self.close_connection = True

    return Handler


def _content(answer: Answer, body: dict[str, Any], rows_per_table: int) -> tuple[list[dict[str, Any]], str]:
    tool = (body.get("tools") or [{}])[0]
    name = tool.get("name", "tool")
    tool_use_id = f"toolu_standin_{next(_ids)}"
    if answer.kind == "refusal":
        return [{"type": "text", "text": "I can't help with that."}], "refusal"
    if answer.kind == "text":
        return [{"type": "text", "text": answer.text}], "end_turn"
    tool_input = answer.tool_input
    if tool_input is None:
        tool_input = fill_tool_input(tool["input_schema"], rows_per_table)
    block = {"type": "tool_use", "id": tool_use_id, "name": name, "input": tool_input}
    return [block], "max_tokens" if answer.kind == "truncated" else "tool_use"


def _events(message: dict[str, Any], answer: Answer) -> list[dict[str, Any]]:
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    if answer.kind == "stream_error":
        return [*events, {"type": "error", "error": {"type": answer.error_type, "message": "stand-in"}}]
    for index, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            text = json.dumps(block["input"])
            if answer.kind == "truncated":
                text = text[: len(text) // 2]  # cut off mid-JSON, as max_tokens does
            events.append({"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}})
            deltas = [{"type": "input_json_delta", "partial_json": text[i : i + 512]} for i in range(0, len(text), 512)]
        else:
            events.append(
                {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
            )
            deltas = [{"type": "text_delta", "text": block["text"]}]
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
            "usage": usage,
        }
    )
    events.append({"type": "message_stop"})
    return events
