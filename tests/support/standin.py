"""A stand-in for the Anthropic Messages API, for tests that drive the real SDK over HTTP.

``StandIn`` runs a ThreadingHTTPServer on 127.0.0.1 (random port); point the SDK at ``url``
(``base_url`` / ``WORLDGEN_ANTHROPIC_BASE_URL``). It records every request (JSON body and headers)
and answers ``POST /v1/messages`` from a per-test queue of scripted ``Answer``s; when the queue is
empty it answers with a valid tool input built from the tool's JSON schema (``fill_tool_input``).
Streaming requests (``"stream": true``) get the SSE event sequence of the real API.

It speaks both dialects of a phase request: a forced tool (the answer is a ``tool_use`` block)
and structured outputs (``output_config.format``: the answer is a text block holding the JSON).
Like the real API it answers 400 ``invalid_request_error`` to a request for a Sonnet 5.5 model
that carries a setting the Sonnet 5.5 migration guide lists as a 400 (``forbidden_settings``),
and to a structured-output schema outside the documented limits (``schema_problems``).

Usage is derived from the real request and answer sizes, so ledger tests and ``make bench-models``
mean something: tokens are characters / 4; the prompt prefix up to each cache breakpoint (tools,
then the output format and the system prompt) is written to the cache the first time it is seen
(when at least the model's minimum cacheable length) and read from it afterwards.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from worldgen.model.families import find_family

CHARS_PER_TOKEN = 4
MIN_CACHEABLE_TOKENS = 1024
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
_ids = itertools.count(1)


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
        self._cached: set[str] = set()
        self.on_answered: Callable[[RecordedRequest], None] | None = None  # called after each answer
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
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
        """Input/cache tokens from the request size and the cache breakpoints it carries.

        The prompt is laid out as the API does: tools, then the structured-output schema (which
        the API renders into the system prompt), then the system prompt, then the messages.
        """
        # Tokens as the model's family counts them (the Sonnet 5 tokenizer: about 30% more for the
        # same text) and its minimum cacheable length (worldgen.model.families, with their sources).
        family = find_family(str(body.get("model") or ""))
        factor = family.tokenizer_factor if family else 1.0

        def tokens(chars: int) -> int:
            return int(chars / CHARS_PER_TOKEN * factor)

        tools_text = json.dumps(body.get("tools", []))
        format_text = json.dumps((body.get("output_config") or {}).get("format") or "")
        system_text = json.dumps(body.get("system", ""))
        messages_text = json.dumps(body.get("messages", []))
        total = tokens(len(tools_text) + len(format_text) + len(system_text) + len(messages_text))
        breakpoints: list[tuple[str, int]] = []  # (prefix digest, prefix tokens)
        prefix = json.dumps(body.get("model")) + tools_text
        if any(isinstance(t, dict) and t.get("cache_control") for t in body.get("tools", [])):
            breakpoints.append((_digest(prefix), tokens(len(tools_text))))
        system = body.get("system")
        if isinstance(system, list) and any(isinstance(b, dict) and b.get("cache_control") for b in system):
            length = tokens(len(tools_text) + len(format_text) + len(system_text))
            breakpoints.append((_digest(prefix + format_text + system_text), length))
        minimum = family.min_cacheable_tokens if family else MIN_CACHEABLE_TOKENS
        breakpoints = [(d, t) for d, t in breakpoints if t >= minimum]
        with self._lock:
            read = max((t for d, t in breakpoints if d in self._cached), default=0)
            longest = max((t for _, t in breakpoints), default=0)
            created = longest - read
            self._cached.update(d for d, _ in breakpoints)
        return {
            "input_tokens": total - read - created,
            "output_tokens": max(1, tokens(answer_chars)),
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
        }


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


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


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
            if self.path.startswith("/v1/messages"):
                record.rejected = forbidden_settings(body) + schema_problems(body)
            if record.rejected:  # as the API does: a 400 before any scripted answer is used
                message = "stand-in rejected the request: " + "; ".join(record.rejected)
                error = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
                self._send_json(400, error, {})
                if standin.on_answered is not None:
                    standin.on_answered(record)
                return
            answer = standin.next_answer()
            try:
                if answer.delay:
                    time.sleep(answer.delay)
                self._answer(answer, body, record)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing to answer
            if standin.on_answered is not None:
                standin.on_answered(record)

        def _answer(self, answer: Answer, body: dict[str, Any], record: RecordedRequest) -> None:
            if answer.kind == "error":
                error = {"type": "error", "error": {"type": answer.error_type, "message": "stand-in error"}}
                self._send_json(answer.status, error, answer.headers)
                return
            content, stop_reason = _content(answer, body, standin.rows_per_table)
            answer_chars = sum(_block_chars(block) for block in content)
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


def _content(answer: Answer, body: dict[str, Any], rows_per_table: int) -> tuple[list[dict[str, Any]], str]:
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
        rows = fill_tool_input(schema, rows_per_table, *outlined_part(body))
    stop_reason = _STOP_REASONS.get(answer.kind)
    if output_format is not None:
        text = json.dumps(rows)
        if stop_reason is not None:
            text = text[: len(text) // 2]  # cut off mid-JSON, as max_tokens does
        return [*thinking, {"type": "text", "text": text}], stop_reason or "end_turn"
    block = {"type": "tool_use", "id": f"toolu_standin_{next(_ids)}", "name": tool.get("name", "tool"), "input": rows}
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


def _events(message: dict[str, Any], answer: Answer) -> list[dict[str, Any]]:
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    if answer.kind == "stream_error":
        return [*events, {"type": "error", "error": {"type": answer.error_type, "message": "stand-in"}}]
    for index, block in enumerate(message["content"]):
        if block["type"] == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            events.append({"type": "content_block_start", "index": index, "content_block": start})
            deltas = [
                {"type": "thinking_delta", "thinking": block["thinking"]},
                {"type": "signature_delta", "signature": block["signature"]},
            ]
        elif block["type"] == "tool_use":
            text = json.dumps(block["input"])
            if answer.kind in _STOP_REASONS:
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
