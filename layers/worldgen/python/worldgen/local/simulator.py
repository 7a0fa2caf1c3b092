"""The paced Claude simulator: a loopback Messages API server answering at a real model's size and pace.

``ClaudeSimulator`` answers ``POST /v1/messages`` on 127.0.0.1 with the streaming events of the
real API, so the real anthropic SDK and ``ClaudeModel`` run unchanged against it through the
``simulated`` provider (``worldgen.model.simulated``). The server, the SSE framing and the bill are
``worldgen.local.messages_api``'s, shared with the tests' stand-in; what is answered, when and at
what pace is this module's. Not in the Lambda layer: a tool for the demo, the bench and tests.

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

Billing (``messages_api.PromptCache``): the ledger records the ``usage`` the API returns, and the
simulator returns it as the API bills (tokenizer, cache key tools -> system -> messages with the
structured-output format, minimum cacheable length, 5-minute TTL on the simulated clock); a prefix
is readable once its writer's first token was sent, which here is after the pace's wait.

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

import dataclasses
import itertools
import json
import math
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from worldgen.local.messages_api import (
    CHARS_PER_TOKEN,
    EventStream,
    Exchange,
    LoopbackServer,
    PromptCache,
    assistant_message,
    delta,
    family_for,
    tokens,
)
from worldgen.model import simulated
from worldgen.model.base import ModelRequest
from worldgen.model.procedural import ProceduralModel
from worldgen.phases import PHASES, PRIMER_MAX_TOKENS, phase_of_table, row_target
from worldgen.roles import ROLE_TABLES, cast_for_roles

EVENT_CHARS = 64  # characters of tool input per input_json_delta event

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

    @property
    def seconds_per_char(self) -> float:
        """Simulated seconds per character streamed: the pace is in characters (60 tokens/s of
        characters / 4), whatever the family's tokenizer."""
        return 1 / (self.output_tokens_per_second * CHARS_PER_TOKEN)


RATE_LIMITS = "https://platform.claude.com/docs/en/api/rate-limits"


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
        self.cache = PromptCache(self.pace.time_factor)
        self.limits = RateLimits(tier, self.pace) if tier is not None else None
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = LoopbackServer(self._answer, "sim")

    @property
    def url(self) -> str:
        return self._server.url

    def environment(self) -> dict[str, str]:
        return {
            "WORLDGEN_MODEL_PROVIDER": "simulated",
            "WORLDGEN_SIMULATOR_URL": self.url,
            "WORLDGEN_SIMULATOR_TIME_FACTOR": str(self.pace.time_factor),
        }

    def start(self) -> ClaudeSimulator:
        simulated.listen(self)
        self._server.start()
        return self

    def stop(self) -> None:
        simulated.stop_listening(self)
        self._closing.set()
        self._server.stop()

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
            everyone = len(request.context.keys.get("entities", [])) or counts["entity_locations"]
            anchored = request.anchors.get("entity_locations")  # split between parts: this part's NPCs
            npcs = len(anchored[1]) if anchored else everyone
            share = npcs / everyone if anchored and everyone else 1.0
            target = round(row_target("entity_locations", pcs, request.phase.max_rows_per_table) * share)
            counts["entity_locations"] = min(npcs, max(counts["entity_locations"], target))
        for table, (_, mine) in request.anchors.items():  # a table dealt between parts: this part's share
            if table in counts and table != "entity_locations":
                holders = len(request.phase.parts_writing(table))
                counts[table] = max(1, round(counts[table] / holders)) if mine else 0
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

    # -- HTTP ----------------------------------------------------------------------------------

    def _answer(self, exchange: Exchange) -> None:
        body = exchange.body
        digest, request = self.request_for(body)
        if request is None:
            exchange.send_error(400, "invalid_request_error", "the simulator was not told about this request")
            return
        phase_id = request.phase.id
        number = self.next_number(phase_id)
        fault = self.faults.fault_for(phase_id, number)
        kind = fault.kind if fault else None
        if kind == "overloaded":
            self.record(Served(digest, phase_id, number, kind, 529))
            exchange.send_error(529, "overloaded_error", "simulated overload")
            return
        if kind == "rate_limited":
            self.record(Served(digest, phase_id, number, kind, 429))
            exchange.send_error(429, "rate_limit_error", "simulated rate limit", {"retry-after": "1"})
            return
        tool_input = self.tool_input(request)
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
        bill = self.cache.bill(body, output_tokens)
        usage = bill.usage
        if self.limits is not None:
            counted = usage["input_tokens"] + usage["cache_creation_input_tokens"]  # reads do not count
            wait_seconds = self.limits.admit(counted, max_tokens)
            if wait_seconds is not None:
                self.record(Served(digest, phase_id, number, "rate_limited", 429, **_describe(request)))
                # on the compressed clock, as every duration the client sees (WORLDGEN_SIMULATOR_TIME_FACTOR)
                retry_after = f"{self.pace.real(math.ceil(wait_seconds)):.3f}"
                exchange.send_error(429, "rate_limit_error", "simulated rate limit", {"retry-after": retry_after})
                return
        input_seconds = (
            usage["input_tokens"] + usage["cache_creation_input_tokens"]
        ) / self.pace.input_tokens_per_second
        wait = self.pace.first_token_seconds + input_seconds
        self.cache.written(bill.written, time.monotonic() + self.pace.real(wait))
        stall_at = len(text) // 3 // EVENT_CHARS * EVENT_CHARS if kind == "stall" else None
        streamed = len(text) if stall_at is None else stall_at
        served = Served(digest, phase_id, number, kind, 200, stop_reason, usage, **_describe(request))
        stalled = 0 if stall_at is None else self.stall_seconds
        served.simulated_seconds = wait + streamed * self.pace.seconds_per_char + stalled
        self.record(served)
        block: dict[str, Any] = (
            {"type": "text", "text": text}
            if structured
            else {"type": "tool_use", "id": exchange.new_id("toolu"), "name": request.tool["name"], "input": {}}
        )
        try:
            time.sleep(self.pace.real(wait))
            started = assistant_message(exchange.new_id("msg"), body.get("model"), [], None, usage)
            self._stream(exchange.stream(), started, block, text, stop_reason, stall_at)
        finally:
            if self.limits is not None:
                self.limits.settle(max_tokens, usage["output_tokens"])

    def _stream(
        self,
        stream: EventStream,
        started: dict[str, Any],
        block: dict[str, Any],
        text: str,
        stop_reason: str,
        stall_at: int | None,
    ) -> None:
        """The answer ``text`` at the pace, in events of EVENT_CHARS characters; a stall sends no
        more bytes from ``stall_at`` on, until the client's read timeout gives up."""
        stream.start(started)
        stream.open_block(0, block)
        began = time.monotonic()
        for start in range(0, len(text), EVENT_CHARS):
            if start == stall_at:
                self._closing.wait(self.pace.real(self.stall_seconds))
                return
            chunk = text[start : start + EVENT_CHARS]
            stream.delta(0, delta(block["type"], chunk))
            ahead = began + self.pace.real((start + len(chunk)) * self.pace.seconds_per_char) - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        stream.close_block(0)
        stream.finish(stop_reason, started["usage"])


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
    firsts = [keys[:1] for keys in request.assigned.values()] + [keys[:1] for _, keys in request.anchors.values()]
    part = ",".join(tables) + ":" + ",".join(k for keys in firsts for k in keys)  # which of a split table's parts
    return {"kind": kind, "round": request.round, "part": part}


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
