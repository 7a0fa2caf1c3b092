"""The Messages API as worldgen's fakes speak it: the loopback server, the SSE framing and the bill.

Two fakes answer ``POST /v1/messages`` so that the real anthropic SDK runs unchanged against them:
the paced simulator (``worldgen.local.simulator``: procedural answers at a real model's size and
pace, for the demo, the bench and tests) and the tests' stand-in (``tests/support/standin.py``:
scripted answers, no pacing). They differ in what they answer and when; how an answer travels and
what it costs is this module's, so that a benchmark and a test tell the same bill.

- ``LoopbackServer``: a ThreadingHTTPServer on 127.0.0.1 (random port) handing each POST to the
  fake as an ``Exchange`` (path, headers, JSON body; answered as JSON or as an ``EventStream``).
- ``EventStream``: the streaming events of the real API in order: message_start,
  content_block_start, ping, content_block_delta ..., content_block_stop, message_delta (with the
  cumulative usage), message_stop; or an ``error`` event mid-stream.
- ``PromptCache``: the ``usage`` the API bills for a request, each rule with its page cited where
  it is applied: tokens are characters / 4 times the family's tokenizer factor (Sonnet 5 and 5.5:
  1.3); the prompt is tools -> system (with the structured-output format rendered into it) ->
  messages, and the cache key of a breakpoint is everything before it, so a changed level
  invalidates it and everything after; a prefix is readable only once its writer's first token was
  sent; a breakpoint shorter than the family's minimum writes nothing; an entry lives 5 minutes
  (on the fake's clock) from its last use.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from worldgen.model.families import ModelFamily, find_family

CHARS_PER_TOKEN = 4
_ids = itertools.count(1)

# -- billing, as the API bills -------------------------------------------------------------------
PROMPT_CACHING = "https://platform.claude.com/docs/en/build-with-claude/prompt-caching"
STRUCTURED_OUTPUTS = "https://platform.claude.com/docs/en/build-with-claude/structured-outputs"
STREAMING = "https://platform.claude.com/docs/en/build-with-claude/streaming"
# "5 minutes default, 1 hour option"; worldgen only writes the default (PROMPT_CACHING, 2026-12-04).
CACHE_TTL_SECONDS = 300.0
_UNKNOWN = ModelFamily("unknown", "forced_tool", 64_000, None, None)  # type: ignore[arg-type]


def family_for(body: dict[str, Any]) -> ModelFamily:
    return find_family(str(body.get("model") or "")) or _UNKNOWN


def token_count(chars: int, family: ModelFamily) -> int:
    """Tokens of ``chars`` characters for ``family``: characters / 4 (what the budgets were measured
    in) times the family's tokenizer factor (Sonnet 5's "about 30% more tokens", families.SONNET_5_TOKENIZER)."""
    return int(chars / CHARS_PER_TOKEN * family.tokenizer_factor)


def tokens(text: str, family: ModelFamily) -> int:
    return token_count(len(text), family)


def _without_cache_control(block: Any) -> str:
    if isinstance(block, dict):
        return json.dumps({k: v for k, v in block.items() if k != "cache_control"}, sort_keys=True)
    return json.dumps(block)


def prompt_segments(body: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """The prompt as the API lays it out, one (level, text, breakpoint after it) per block.

    The order is tools -> system -> messages (PROMPT_CACHING, "what invalidates the cache",
    2026-12-04); structured outputs add a system prompt describing the format, so the format sits at
    the system level and "changing the output_config.format parameter will invalidate any prompt
    cache" of the thread (STRUCTURED_OUTPUTS, "prompt modification and token costs", 2026-12-04).
    """
    segments: list[tuple[str, str, bool]] = []
    for tool in body.get("tools") or []:
        segments.append(("tools", _without_cache_control(tool), bool(tool.get("cache_control"))))
    output_format = (body.get("output_config") or {}).get("format")
    if output_format:
        segments.append(("system", json.dumps(output_format, sort_keys=True), False))
    system = body.get("system")
    blocks = [{"type": "text", "text": system}] if isinstance(system, str) else list(system or [])
    for block in blocks:
        segments.append(("system", _without_cache_control(block), bool(block.get("cache_control"))))
    for message in body.get("messages") or []:
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        for block in parts:
            marked = isinstance(block, dict) and bool(block.get("cache_control"))
            segments.append(("messages", message.get("role", "") + _without_cache_control(block), marked))
    return segments


@dataclass
class CacheEntry:
    readable_at: float  # real clock: when its writer's first token was sent
    expires_at: float


@dataclass
class Bill:
    usage: dict[str, int]
    written: list[str]  # keys this request writes, readable once its first token is sent


class PromptCache:
    """The prompt cache of one organisation, as the API keeps it (PROMPT_CACHING, 2026-12-04).

    ``time_factor`` is the fake's clock: simulated seconds per real second (the TTL is 5 simulated
    minutes)."""

    def __init__(self, time_factor: float = 1.0) -> None:
        self.ttl = CACHE_TTL_SECONDS / time_factor
        self.entries: dict[str, CacheEntry] = {}
        self._lock = threading.Lock()

    def bill(self, body: dict[str, Any], output_tokens: int, first_token_at: float | None = None) -> Bill:
        """The usage of ``body``: the longest readable breakpoint prefix is read (0.1x), the rest up
        to the last breakpoint written (1.25x), the remainder plain input. With ``first_token_at``
        (a fake that answers at once) what it writes is readable from then on, in the same step,
        else the caller tells ``written`` when its first token goes out."""
        family = family_for(body)
        # tool_choice and thinking are part of the messages level's key: changing them invalidates
        # the message blocks' cache, not the tools' or the system's (PROMPT_CACHING, 2026-12-04).
        messages_salt = json.dumps([body.get("tool_choice"), body.get("thinking")], sort_keys=True)
        total = 0
        prefix = hashlib.sha256(str(body.get("model")).encode())
        breakpoints: list[tuple[str, int]] = []
        for level, text, marked in prompt_segments(body):
            total += tokens(text, family)
            prefix.update(text.encode())
            if marked:
                salted = prefix.copy()
                if level == "messages":
                    salted.update(messages_salt.encode())
                breakpoints.append((salted.hexdigest(), total))
        # A breakpoint on a prefix shorter than the family's minimum caches nothing (PROMPT_CACHING,
        # "cache limitations", 2026-12-04: 512 tokens for Sonnet 5.5 and Opus 5, 1024 to 4096 others).
        breakpoints = [(key, length) for key, length in breakpoints if length >= family.min_cacheable_tokens]
        now = time.monotonic()
        with self._lock:
            readable = [(key, n) for key, n in breakpoints if self._readable(key, now)]
            read = max((n for _, n in readable), default=0)
            for read_key, n in readable:
                if n == read:  # a read refreshes the entry's lifetime (PROMPT_CACHING, 2026-12-04)
                    self.entries[read_key].expires_at = now + self.ttl
            longest = max((n for _, n in breakpoints), default=0)
            written = [d for d, n in breakpoints if n > read and not self._readable(d, now)]
            if first_token_at is not None:
                self._write(written, first_token_at)
        created = max(0, longest - read)
        usage = {
            "input_tokens": total - read - created,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
        }
        return Bill(usage, written)

    def written(self, keys: list[str], first_token_at: float) -> None:
        """The writer's first token was sent at ``first_token_at`` (real clock): from then its prefix
        is readable; requests that arrived before it each wrote (and paid for) their own copy
        (PROMPT_CACHING, "wait for the first response before sending parallel requests", 2026-12-04)."""
        with self._lock:
            self._write(keys, first_token_at)

    def _write(self, keys: list[str], first_token_at: float) -> None:
        for key in keys:
            entry = self.entries.get(key)
            if entry is None or entry.expires_at <= first_token_at or entry.readable_at > first_token_at:
                self.entries[key] = CacheEntry(first_token_at, first_token_at + self.ttl)

    def _readable(self, key: str, now: float) -> bool:
        entry = self.entries.get(key)
        return entry is not None and entry.readable_at <= now < entry.expires_at


# -- the wire --------------------------------------------------------------------------------------


def assistant_message(
    message_id: str, model: Any, content: list[dict[str, Any]], stop_reason: str | None, usage: dict[str, int]
) -> dict[str, Any]:
    """A Messages API ``message`` object (the whole answer, or message_start's empty one)."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def opened(block: dict[str, Any]) -> dict[str, Any]:
    """A content block as its content_block_start carries it: its deltas still to come."""
    if block["type"] == "tool_use":
        return {**block, "input": {}}
    if block["type"] == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    return {"type": "text", "text": ""}


def delta(block_type: str, chunk: str) -> dict[str, Any]:
    """The content_block_delta of ``chunk`` of a text block's text or a tool_use block's input JSON."""
    if block_type == "tool_use":
        return {"type": "input_json_delta", "partial_json": chunk}
    return {"type": "text_delta", "text": chunk}


def deltas(block: dict[str, Any], size: int, written: str | None = None) -> Iterator[dict[str, Any]]:
    """The deltas that write ``block`` in chunks of ``size`` characters (``written``: what is sent
    of its text or input JSON, when the answer is cut short)."""
    if block["type"] == "thinking":
        yield {"type": "thinking_delta", "thinking": block["thinking"]}
        yield {"type": "signature_delta", "signature": block["signature"]}
        return
    if written is None:
        written = json.dumps(block["input"]) if block["type"] == "tool_use" else block["text"]
    for start in range(0, len(written), size):
        yield delta(block["type"], written[start : start + size])


class Exchange:
    """One POST to a fake: its path, headers and JSON body, and the ways to answer it."""

    def __init__(self, handler: BaseHTTPRequestHandler, name: str) -> None:
        self._handler = handler
        self.name = name
        self.path = handler.path
        self.headers = {k.lower(): v for k, v in handler.headers.items()}
        length = int(handler.headers.get("content-length", "0"))
        self.body: dict[str, Any] = json.loads(handler.rfile.read(length) or b"{}")

    def new_id(self, kind: str) -> str:
        """An id of the API's shape: ``msg_...``, ``toolu_...``, ``req_...``, naming the fake."""
        return f"{kind}_{self.name}_{next(_ids)}"

    def send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self._handler.send_response(status)
        self._handler.send_header("content-type", "application/json")
        self._handler.send_header("request-id", self.new_id("req"))
        for name, value in (headers or {}).items():
            self._handler.send_header(name, value)
        self._handler.send_header("content-length", str(len(data)))
        self._handler.end_headers()
        self._handler.wfile.write(data)

    def send_error(self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> None:
        """An error answer as the API shapes it (a 429 with ``retry-after`` among ``headers``)."""
        self.send_json(status, {"type": "error", "error": {"type": error_type, "message": message}}, headers)

    def stream(self, gap: float = 0.0) -> EventStream:
        return EventStream(self._handler, self.new_id("req"), gap)


class EventStream:
    """A streamed answer, event by event, in the order the API sends them (STREAMING, 2026-12-04).
    ``gap``: seconds of silence after each event (a slow stream)."""

    def __init__(self, handler: BaseHTTPRequestHandler, request_id: str, gap: float) -> None:
        self._handler, self._request_id, self.gap = handler, request_id, gap

    def start(self, started: dict[str, Any]) -> None:
        """The 200 and message_start: ``started`` with no content yet and 1 output token so far."""
        self._handler.send_response(200)
        self._handler.send_header("content-type", "text/event-stream")
        self._handler.send_header("request-id", self._request_id)
        self._handler.send_header("connection", "close")
        self._handler.end_headers()
        first = {**started, "content": [], "stop_reason": None, "usage": {**started["usage"], "output_tokens": 1}}
        self.event({"type": "message_start", "message": first})

    def open_block(self, index: int, block: dict[str, Any]) -> None:
        self.event({"type": "content_block_start", "index": index, "content_block": opened(block)})
        if index == 0:
            self.event({"type": "ping"})

    def delta(self, index: int, block_delta: dict[str, Any]) -> None:
        self.event({"type": "content_block_delta", "index": index, "delta": block_delta})

    def close_block(self, index: int) -> None:
        self.event({"type": "content_block_stop", "index": index})

    def write_block(self, index: int, block: dict[str, Any], size: int, written: str | None = None) -> None:
        self.open_block(index, block)
        for block_delta in deltas(block, size, written):
            self.delta(index, block_delta)
        self.close_block(index)

    def finish(self, stop_reason: str, usage: dict[str, int]) -> None:
        """message_delta with the usage (its counts are cumulative, STREAMING) and message_stop."""
        self.event(
            {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": usage}
        )
        self.event({"type": "message_stop"})
        self._handler.close_connection = True

    def error(self, error_type: str, message: str) -> None:
        """An error event mid-stream (an overload after the 200, STREAMING's "error events")."""
        self.event({"type": "error", "error": {"type": error_type, "message": message}})
        self._handler.close_connection = True

    def event(self, event: dict[str, Any]) -> None:
        self._handler.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        self._handler.wfile.flush()
        if self.gap:
            time.sleep(self.gap)


class LoopbackServer:
    """A ThreadingHTTPServer on 127.0.0.1 handing every POST to ``respond`` as an ``Exchange``.

    A client that gives up (its timeout) breaks the pipe: the answer is dropped, as the API's is."""

    def __init__(self, respond: Callable[[Exchange], None], name: str, port: int = 0) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet: tests and the demo print their own
                pass

            def do_POST(self) -> None:
                exchange = Exchange(self, name)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    respond(exchange)

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"messages-api-{name}", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
