"""The paced Claude simulator: a loopback Messages API server answering at a real model's size and pace.

``ClaudeSimulator`` runs a ThreadingHTTPServer on 127.0.0.1 that speaks ``POST /v1/messages`` with
the streaming SSE events of the real API (message_start, content_block_start, input_json_delta
content_block_delta, content_block_stop, message_delta, message_stop, plus ping), so the real
anthropic SDK and ``ClaudeModel`` run unchanged against it through the ``simulated`` provider
(``worldgen.model.simulated``). Not in the Lambda layer: a tool for the demo, the bench and tests.

Answers. The provider announces each request in-process (the HTTP body does not carry the phase's
context); the simulator answers it with the procedural model at the real size of a world: rows
per table from ``SIZES`` (scaled by the campaign's number of player characters for the phases that
grow with them) and descriptions padded to the text length of a real answer. A ``typical`` world
of the 4-PC sample campaign is about 250 rows and 44K output tokens, a ``generous`` 6-PC one about
440 rows and 94K (the sizes measured from real answers, issue 12).

Pace. Each answer takes ``first_token_seconds`` + input tokens / ``input_tokens_per_second``
before its first event, then streams at ``output_tokens_per_second``; ``time_factor`` compresses
the clock (50: a 10-minute world runs in 12 s) and the provider reports simulated durations.
An answer longer than the request's ``max_tokens`` is cut there (stop_reason ``max_tokens``), as
Claude does.

Billing (``PromptCache``, ``bill``): the ledger records the ``usage`` the API returns, and the
simulator returns it as the API bills, each rule with its page cited where it is applied: tokens
are characters / 4 times the family's tokenizer factor (Sonnet 5 and 5.5: 1.3); the prompt is
tools -> system (with the structured-output format rendered into it) -> messages, and the cache
key of a breakpoint is everything before it, so a changed level invalidates it and everything
after; a prefix is readable only once its writer's first token was sent; a breakpoint shorter than
the family's minimum writes nothing; an entry lives 5 minutes (simulated) from its last use.

Rate limits (``RateLimits``, off unless a ``Tier`` is given): requests, input tokens and output
tokens per minute as token buckets on the simulated clock; output tokens are reserved by
``max_tokens`` when a request starts and the unused part given back when it ends; a request that
does not fit is answered 429 with ``retry-after``.

Dialects: a request with ``output_config.format`` is answered with a text block holding the JSON
(structured outputs), any other with a ``tool_use`` block of the announced request's tool.

Faults (``FaultPlan.from_seed``): per phase and request number, a 429 or 529 burst, a stream
that stalls (no bytes until the client's read timeout), an answer cut at ``max_tokens``, and a
few invalid rows (a duplicate key, a missing name) in the first answer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from worldgen.model import simulated
from worldgen.model.base import ModelRequest
from worldgen.model.families import ModelFamily, find_family
from worldgen.model.procedural import ProceduralModel
from worldgen.phases import PHASES, PRIMER_MAX_TOKENS, phase_of_table, row_target
from worldgen.roles import ROLE_TABLES, cast_for_roles

CHARS_PER_TOKEN = 4
EVENT_CHARS = 64  # characters of tool input per input_json_delta event
_ids = itertools.count(1)

# Rows per table of a 4-PC campaign (typical world). Phases that use the player characters grow
# with their number; a generous world asks for GENEROUS_ROWS times as many rows.
SIZES: dict[str, int] = {
    "calendar_systems": 1, "planes": 4, "geography_regions": 6, "historical_periods": 6,
    "economic_systems": 3, "legal_systems": 3, "celestial_bodies": 4,
    "races": 6, "character_classes": 8, "feats": 10, "backgrounds": 8,
    "languages": 6, "cultures": 6, "factions": 8, "pantheons": 2, "deities": 8,
    "entities": 20,
    "locations": 16, "dungeons": 4, "buildings": 8,
    "items": 10, "item_effects": 12, "sentient_item_properties": 2,
    "quest_hooks": 8, "encounters": 8,
    "shops": 8, "taverns": 4, "temples": 4,
    "entity_relationships": 10, "entity_locations": 8, "entity_factions": 6, "entity_items": 4,
    "entity_deities": 4, "faction_relationships": 5, "faction_locations": 5, "location_connections": 6,
    "quest_hook_entities": 4, "quest_hook_locations": 4, "pc_connections": 8,
}  # fmt: skip
# Characters of JSON per row of a typical answer, per phase (long prose in the foundations).
ROW_CHARS: dict[str, int] = {
    "1A": 880, "1B": 750, "1C": 800, "2A": 700, "2B": 650, "2C": 600, "3A": 750, "3B": 550, "3C": 540,
    "Q1": 330, "Q2": 330, "Q3": 250,  # the quick profile: short descriptions, the fields that matter
}  # fmt: skip
GENEROUS_ROWS = 1.3
GENEROUS_TEXT = 1.25
BASE_PCS = 4


@dataclass
class Pace:
    output_tokens_per_second: float = 60.0
    first_token_seconds: float = 1.5
    input_tokens_per_second: float = 20_000.0
    time_factor: float = 50.0  # simulated seconds per real second

    def real(self, simulated_seconds: float) -> float:
        return simulated_seconds / self.time_factor


# -- billing, as the API bills -------------------------------------------------------------------
PROMPT_CACHING = "https://platform.claude.com/docs/en/build-with-claude/prompt-caching"
STRUCTURED_OUTPUTS = "https://platform.claude.com/docs/en/build-with-claude/structured-outputs"
RATE_LIMITS = "https://platform.claude.com/docs/en/api/rate-limits"
# "5 minutes default, 1 hour option"; worldgen only writes the default (PROMPT_CACHING, 2026-12-04).
CACHE_TTL_SECONDS = 300.0
_UNKNOWN = ModelFamily("unknown", "forced_tool", 64_000, None, None)  # type: ignore[arg-type]


def family_for(body: dict[str, Any]) -> ModelFamily:
    return find_family(str(body.get("model") or "")) or _UNKNOWN


def tokens(text: str, family: ModelFamily) -> int:
    """Tokens of ``text`` for ``family``: characters / 4 (what the budgets were measured in) times
    the family's tokenizer factor (Sonnet 5's "about 30% more tokens", families.SONNET_5_TOKENIZER)."""
    return int(len(text) / CHARS_PER_TOKEN * family.tokenizer_factor)


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
    """The prompt cache of one organisation, as the API keeps it (PROMPT_CACHING, 2026-12-04)."""

    def __init__(self, pace: Pace) -> None:
        self.pace = pace
        self.entries: dict[str, CacheEntry] = {}
        self._lock = threading.Lock()

    def bill(self, body: dict[str, Any], output_tokens: int) -> Bill:
        """The usage of ``body``: the longest readable breakpoint prefix is read (0.1x), the rest up
        to the last breakpoint written (1.25x), the remainder plain input."""
        family = family_for(body)
        segments = prompt_segments(body)
        # tool_choice and thinking are part of the messages level's key: changing them invalidates
        # the message blocks' cache, not the tools' or the system's (PROMPT_CACHING, 2026-12-04).
        messages_salt = json.dumps([body.get("tool_choice"), body.get("thinking")], sort_keys=True)
        total = 0
        prefix = hashlib.sha256(str(body.get("model")).encode())
        breakpoints: list[tuple[str, int]] = []
        for level, text, marked in segments:
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
        ttl = self.pace.real(CACHE_TTL_SECONDS)
        with self._lock:
            readable = [(key, n) for key, n in breakpoints if self._readable(key, now)]
            read = max((n for _, n in readable), default=0)
            for read_key, n in readable:
                if n == read:  # a read refreshes the entry's lifetime (PROMPT_CACHING, 2026-12-04)
                    self.entries[read_key].expires_at = now + ttl
            longest = max((n for _, n in breakpoints), default=0)
            written = [d for d, n in breakpoints if n > read and not self._readable(d, now)]
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
        ttl = self.pace.real(CACHE_TTL_SECONDS)
        with self._lock:
            for key in keys:
                entry = self.entries.get(key)
                if entry is None or entry.expires_at <= first_token_at or entry.readable_at > first_token_at:
                    self.entries[key] = CacheEntry(first_token_at, first_token_at + ttl)

    def _readable(self, key: str, now: float) -> bool:
        entry = self.entries.get(key)
        return entry is not None and entry.readable_at <= now < entry.expires_at


@dataclass(frozen=True)
class Tier:
    """An organisation's rate limits for one model class (RATE_LIMITS, 2026-12-04)."""

    name: str
    requests_per_minute: int
    input_tokens_per_minute: int
    output_tokens_per_minute: int


# The usage tiers' limits for the Sonnet class, as the rate-limits page's tier tables give them
# (RATE_LIMITS, read 2026-12-04; an organisation's own are in its Console).
TIERS: dict[str, Tier] = {
    t.name: t
    for t in (
        Tier("1", 50, 30_000, 8_000),
        Tier("2", 1_000, 450_000, 90_000),
        Tier("3", 2_000, 800_000, 160_000),
        Tier("4", 4_000, 2_000_000, 400_000),
    )
}


class _Bucket:
    """A token bucket refilled continuously at ``capacity`` per simulated minute."""

    def __init__(self, capacity: float, pace: Pace) -> None:
        self.capacity, self.pace = capacity, pace
        self.level = capacity
        self.at = time.monotonic()

    def refill(self, now: float) -> None:
        per_real_second = self.capacity / 60 * self.pace.time_factor
        self.level = min(self.capacity, self.level + (now - self.at) * per_real_second)
        self.at = now

    def wait_for(self, amount: float) -> float:
        """Simulated seconds until ``amount`` fits (a request larger than the bucket waits for it full)."""
        missing = min(amount, self.capacity) - self.level
        return max(0.0, missing) / (self.capacity / 60)


class RateLimits:
    """Requests, input and output tokens per minute of one tier, on the simulated clock.

    "OTPM rate limits are estimated based on max_tokens at the beginning of each request, and the
    estimate is adjusted at the end of the request to reflect the actual number of output tokens
    used"; input_tokens and cache_creation_input_tokens count towards ITPM, cache reads do not;
    beyond any limit the API answers 429 with a retry-after header (RATE_LIMITS, 2026-12-04)."""

    def __init__(self, tier: Tier, pace: Pace) -> None:
        self.tier = tier
        self.requests = _Bucket(tier.requests_per_minute, pace)
        self.input = _Bucket(tier.input_tokens_per_minute, pace)
        self.output = _Bucket(tier.output_tokens_per_minute, pace)
        self._lock = threading.Lock()
        self.refused = 0

    def admit(self, input_tokens: int, max_tokens: int) -> float | None:
        """Take the request's share, or the simulated seconds to wait (``retry-after``)."""
        now = time.monotonic()
        with self._lock:
            needs = ((self.requests, 1), (self.input, input_tokens), (self.output, max_tokens))
            for bucket, _ in needs:
                bucket.refill(now)
            wait = max(bucket.wait_for(amount) for bucket, amount in needs)
            if wait > 0:
                self.refused += 1
                return wait
            for bucket, amount in needs:
                bucket.level -= min(amount, bucket.capacity)
            return None

    def settle(self, max_tokens: int, output_tokens: int) -> None:
        """The request ended: the output tokens reserved but not used are given back."""
        with self._lock:
            self.output.refill(time.monotonic())
            reserved = min(max_tokens, self.output.capacity)
            self.output.level = min(self.output.capacity, self.output.level + max(0, reserved - output_tokens))


@dataclass(frozen=True)
class Fault:
    kind: str  # rate_limited | overloaded | stall | max_tokens | invalid_rows


@dataclass
class FaultPlan:
    """(phase id, request number of that phase, counted from 1 across attempts) -> fault."""

    faults: dict[tuple[str, int], Fault] = field(default_factory=dict)

    @classmethod
    def none(cls) -> FaultPlan:
        return cls()

    @classmethod
    def from_seed(cls, seed: int, phases: tuple[str, ...] | None = None) -> FaultPlan:
        """One phase each gets a 529 burst (2 requests), a 429, a stall, a cut answer, invalid rows."""
        rng = random.Random(seed)
        ids = list(phases or [p.id for p in PHASES])
        rng.shuffle(ids)
        kinds = ["overloaded", "rate_limited", "stall", "max_tokens", "invalid_rows"]
        plan: dict[tuple[str, int], Fault] = {}
        for phase_id, kind in zip(itertools.cycle(ids), kinds, strict=False):
            plan[(phase_id, 1)] = Fault(kind)
            if kind == "overloaded":
                plan[(phase_id, 2)] = Fault(kind)
        return cls(plan)

    def fault_for(self, phase_id: str, number: int) -> Fault | None:
        return self.faults.get((phase_id, number))


@dataclass
class Served:
    """One answered HTTP request, for the bench and tests."""

    digest: str
    phase: str
    number: int
    fault: str | None
    status: int
    stop_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    simulated_seconds: float = 0.0
    started: float = field(default_factory=time.monotonic)  # real clock, when the request arrived
    # what the request was, for the bench's critical path: outline | primer | part, its round, its part
    kind: str = "part"
    round: int = 1
    part: str = ""


class ClaudeSimulator:
    """The server; use as a context manager. ``environment()`` is what the provider needs."""

    def __init__(
        self,
        pace: Pace | None = None,
        *,
        size: str = "typical",
        faults: FaultPlan | None = None,
        stall_seconds: float = 900.0,
        tier: Tier | None = None,
    ) -> None:
        if size not in ("typical", "generous"):
            raise ValueError(f"simulator size must be 'typical' or 'generous', not {size!r}")
        self.pace = pace or Pace()
        self.size = size
        self.faults = faults or FaultPlan.none()
        self.stall_seconds = stall_seconds
        self.served: list[Served] = []
        self._requests: OrderedDict[str, ModelRequest] = OrderedDict()
        self._numbers: dict[str, int] = {}
        self.left_out: dict[str, int] = {}  # phase -> context rows left out for length, last request
        self.cache = PromptCache(self.pace)
        self.limits = RateLimits(tier, self.pace) if tier is not None else None
        self.left_out_by_part: dict[str, dict[str, int]] = {}  # phase -> a part's tables -> rows left out
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="claude-simulator", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def environment(self) -> dict[str, str]:
        return {
            "WORLDGEN_MODEL_PROVIDER": "simulated",
            "WORLDGEN_SIMULATOR_URL": self.url,
            "WORLDGEN_SIMULATOR_TIME_FACTOR": str(self.pace.time_factor),
        }

    def start(self) -> ClaudeSimulator:
        simulated.listen(self)
        self._thread.start()
        return self

    def stop(self) -> None:
        simulated.stop_listening(self)
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ClaudeSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- requests ------------------------------------------------------------------------------

    def announce(self, request: ModelRequest) -> None:
        digest = simulated.request_digest(request.messages)
        with self._lock:
            self._requests[digest] = request
            self.left_out[request.phase.id] = sum(request.context.omitted.values())
            if request.tables:
                part = ",".join(request.tables)
                self.left_out_by_part.setdefault(request.phase.id, {})[part] = sum(request.context.omitted.values())
            while len(self._requests) > 512:
                self._requests.popitem(last=False)

    def simulated_seconds(self, digest: str) -> float:
        with self._lock:
            return sum(s.simulated_seconds for s in self.served if s.digest == digest)

    def request_for(self, body: dict[str, Any]) -> tuple[str, ModelRequest | None]:
        digest = simulated.request_digest(body.get("messages") or [])
        with self._lock:
            return digest, self._requests.get(digest)

    def next_number(self, phase_id: str) -> int:
        with self._lock:
            self._numbers[phase_id] = self._numbers.get(phase_id, 0) + 1
            return self._numbers[phase_id]

    def record(self, served: Served) -> None:
        with self._lock:
            self.served.append(served)

    # -- answers -------------------------------------------------------------------------------

    def row_counts(self, request: ModelRequest) -> dict[str, int]:
        """Rows per table of the request's phase; the cast (entities) as large as the roles later
        phases will hand out need (``roles.cast_for_roles``), as 2A's prompt asks of a model."""
        if request.phase.profile != "full":  # a lean profile's prompts ask for its own row targets
            return self._profile_row_counts(request)
        pcs = len(request.context.player_characters) or BASE_PCS
        counts = {t: self.rows_of(t, pcs) for t in request.phase.tables}
        if "entities" in counts:
            counts["entities"] = max(counts["entities"], cast_for_roles(sum(self.rows_of(t, pcs) for t in ROLE_TABLES)))
        if "entity_locations" in counts:  # 3C's prompt: "about <the cast's target> (every NPC somewhere)"
            npcs = len(request.context.keys.get("entities", [])) or counts["entity_locations"]
            target = row_target("entity_locations", pcs, request.phase.max_rows_per_table)
            counts["entity_locations"] = min(npcs, max(counts["entity_locations"], target))
        return counts

    def rows_of(self, table: str, pcs: int) -> int:
        phase = phase_of_table(table)
        grow = pcs / BASE_PCS if phase is not None and phase.uses_player_characters else 1.0
        factor = grow * (GENEROUS_ROWS if self.size == "generous" else 1.0)
        return max(1, round(SIZES.get(table, 5) * factor))

    def _profile_row_counts(self, request: ModelRequest) -> dict[str, int]:
        phase, pcs = request.phase, len(request.context.player_characters) or BASE_PCS
        factor = GENEROUS_ROWS if self.size == "generous" else 1.0
        return {
            t: max(1, round(row_target(t, pcs, phase.max_rows_per_table, phase.profile) * factor)) for t in phase.tables
        }

    def tool_input(self, request: ModelRequest) -> dict[str, Any]:
        """The procedural answer at the real size: row counts as asked, text as long as asked."""
        options = {**request.options, "row_counts": self.row_counts(request)}
        sized = dataclasses.replace(request, options=options, round=1)
        answer = ProceduralModel().call(sized).tool_input or {}
        if request.phase.profile != "full":
            _short_descriptions(answer)
        target = ROW_CHARS.get(request.phase.id, 800) * (GENEROUS_TEXT if self.size == "generous" else 1.0)
        filler = _filler(request)
        for rows in answer.values():
            for row in rows:
                _pad(row, int(target), filler)
        return answer

    def usage_for(self, body: dict[str, Any], output_chars: int) -> dict[str, int]:
        """The usage the API would bill for ``body`` and an answer of ``output_chars`` (PromptCache);
        the prefixes it writes are readable at once (a test's shortcut: ``_answer`` waits for the
        first token)."""
        bill = self.cache.bill(body, tokens("x" * output_chars, family_for(body)))
        self.cache.written(bill.written, time.monotonic())
        return bill.usage


def _describe(request: ModelRequest) -> dict[str, Any]:
    """What a request is within its phase: the outline, the cache primer, or a part (and which)."""
    kind = (
        "outline"
        if request.tool["name"].endswith("_outline")
        else "primer"
        if request.max_tokens == PRIMER_MAX_TOKENS
        else "part"
    )
    tables = request.tables or tuple(request.tool["input_schema"]["properties"])
    part = ",".join(tables) + ":" + ",".join(k for keys in request.assigned.values() for k in keys[:1])
    return {"kind": kind, "round": request.round, "part": part}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _filler(request: ModelRequest) -> list[str]:
    campaign = request.context.campaign
    words = f"{campaign.get('setting', '')} {campaign.get('tone', '')}".split()
    return words or ["the", "world", "turns"]


LEAN_DESCRIPTION_CHARS = 200  # the quick prompts: one or two short sentences


def _short_descriptions(answer: dict[str, Any]) -> None:
    """A lean profile's descriptions as its prompts ask for them: one or two short sentences (its
    tool already offers only the required fields, the references, key, name and description)."""
    for rows in answer.values():
        for row in rows:
            text = row.get("description") if isinstance(row, dict) else None
            if isinstance(text, str) and len(text) > LEAN_DESCRIPTION_CHARS:
                cut = text[:LEAN_DESCRIPTION_CHARS].rsplit(". ", 1)[0].rstrip(".")
                row["description"] = cut + "."


def _pad(row: Any, target_chars: int, filler: list[str]) -> None:
    """Lengthen the row's description until the row's JSON is about ``target_chars`` long."""
    if not isinstance(row, dict) or "description" not in row:  # an outline's key
        return
    missing = target_chars - len(json.dumps(row))
    if missing <= 0:
        return
    offset = len(str(row.get("key", ""))) % len(filler)
    words: list[str] = []
    length = 0
    for word in itertools.islice(itertools.cycle(filler), offset, None):
        if length >= missing:
            break
        words.append(word)
        length += len(word) + 1
    row["description"] = f"{row['description']} {' '.join(words)}".strip()


def _invalidate(tool_input: dict[str, Any]) -> list[str]:
    """A few invalid rows, as a model sometimes writes them: a duplicate key and a missing name."""
    broken: list[str] = []
    for table, rows in tool_input.items():
        if len(rows) >= 2 and isinstance(rows[0], str):  # an outline: a key given twice
            rows[1] = rows[0]
            return [f"{table}: duplicate key"]
        if len(rows) >= 2 and "key" in rows[0]:
            rows[1]["key"] = rows[0]["key"]
            broken.append(f"{table}: duplicate key")
            named = [row for row in rows if "name" in row]
            if named:
                del named[-1]["name"]
                broken.append(f"{table}: missing name")
            return broken
    return broken


# -- HTTP --------------------------------------------------------------------------------------


def _handler_for(simulator: ClaudeSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
                self._answer(body)

        def _answer(self, body: dict[str, Any]) -> None:
            digest, request = simulator.request_for(body)
            if request is None:
                self._error(400, "invalid_request_error", "the simulator was not told about this request")
                return
            phase_id = request.phase.id
            number = simulator.next_number(phase_id)
            fault = simulator.faults.fault_for(phase_id, number)
            kind = fault.kind if fault else None
            pace = simulator.pace
            if kind == "overloaded":
                simulator.record(Served(digest, phase_id, number, kind, 529))
                self._error(529, "overloaded_error", "simulated overload")
                return
            if kind == "rate_limited":
                simulator.record(Served(digest, phase_id, number, kind, 429))
                self._error(429, "rate_limit_error", "simulated rate limit", {"retry-after": "1"})
                return
            tool_input = simulator.tool_input(request)
            if kind == "invalid_rows" and request.round == 1:
                _invalidate(tool_input)
            text = json.dumps(tool_input)
            family = family_for(body)
            max_tokens = int(body.get("max_tokens") or 4096)
            structured = bool((body.get("output_config") or {}).get("format"))
            stop_reason = "end_turn" if structured else "tool_use"
            budget = int(max_tokens * CHARS_PER_TOKEN / family.tokenizer_factor)  # max_tokens in characters
            if kind == "max_tokens":
                budget = min(budget, len(text) // 2)
            if len(text) > budget:
                text, stop_reason = text[:budget], "max_tokens"
            output_tokens = max(1, min(max_tokens, tokens(text, family)))
            bill = simulator.cache.bill(body, output_tokens)
            usage = bill.usage
            if simulator.limits is not None:
                counted = usage["input_tokens"] + usage["cache_creation_input_tokens"]  # reads do not count
                wait_seconds = simulator.limits.admit(counted, max_tokens)
                if wait_seconds is not None:
                    simulator.record(Served(digest, phase_id, number, "rate_limited", 429, **_describe(request)))
                    # on the compressed clock, as every duration the client sees (WORLDGEN_SIMULATOR_TIME_FACTOR)
                    retry_after = f"{pace.real(math.ceil(wait_seconds)):.3f}"
                    self._error(429, "rate_limit_error", "simulated rate limit", {"retry-after": retry_after})
                    return
            input_seconds = (
                usage["input_tokens"] + usage["cache_creation_input_tokens"]
            ) / pace.input_tokens_per_second
            wait = pace.first_token_seconds + input_seconds
            simulator.cache.written(bill.written, time.monotonic() + pace.real(wait))
            # the pace is in characters (60 tokens/s of characters / 4), whatever the family's tokenizer
            seconds_per_char = 1 / (pace.output_tokens_per_second * CHARS_PER_TOKEN)
            stall_at = len(text) // 3 // EVENT_CHARS * EVENT_CHARS if kind == "stall" else None
            streamed = len(text) if stall_at is None else stall_at
            served = Served(digest, phase_id, number, kind, 200, stop_reason, usage, **_describe(request))
            served.simulated_seconds = (
                wait + streamed * seconds_per_char + (0 if stall_at is None else simulator.stall_seconds)
            )
            simulator.record(served)
            try:
                self._stream(request, body, text, usage, stop_reason, wait, stall_at, structured)
            finally:
                if simulator.limits is not None:
                    simulator.limits.settle(max_tokens, usage["output_tokens"])

        def _stream(
            self,
            request: ModelRequest,
            body: dict[str, Any],
            text: str,
            usage: dict[str, int],
            stop_reason: str,
            wait: float,
            stall_at: int | None,
            structured: bool,
        ) -> None:
            pace = simulator.pace
            seconds_per_char = 1 / (pace.output_tokens_per_second * CHARS_PER_TOKEN)
            time.sleep(pace.real(wait))
            message: dict[str, Any] = {
                "id": f"msg_sim_{next(_ids)}",
                "type": "message",
                "role": "assistant",
                "model": body.get("model"),
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {**usage, "output_tokens": 1},
            }
            block: dict[str, Any] = (
                {"type": "text", "text": ""}
                if structured
                else {"type": "tool_use", "id": f"toolu_sim_{next(_ids)}", "name": request.tool["name"], "input": {}}
            )
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("request-id", f"req_sim_{next(_ids)}")
            self.send_header("connection", "close")
            self.end_headers()
            self._event({"type": "message_start", "message": message})
            self._event({"type": "content_block_start", "index": 0, "content_block": block})
            self._event({"type": "ping"})
            started = time.monotonic()
            for start in range(0, len(text), EVENT_CHARS):
                if start == stall_at:
                    simulator._closing.wait(pace.real(simulator.stall_seconds))  # no bytes: the client times out
                    return
                chunk = text[start : start + EVENT_CHARS]
                delta = (
                    {"type": "text_delta", "text": chunk}
                    if structured
                    else {"type": "input_json_delta", "partial_json": chunk}
                )
                self._event({"type": "content_block_delta", "index": 0, "delta": delta})
                ahead = started + pace.real((start + len(chunk)) * seconds_per_char) - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            self._event({"type": "content_block_stop", "index": 0})
            self._event(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": usage["output_tokens"]},
                }
            )
            self._event({"type": "message_stop"})
            self.close_connection = True

        def _event(self, event: dict[str, Any]) -> None:
            self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()

        def _error(self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> None:
            data = json.dumps({"type": "error", "error": {"type": error_type, "message": message}}).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("request-id", f"req_sim_{next(_ids)}")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
