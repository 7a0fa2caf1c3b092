"""The fakes bill as the API bills: each rule of prompt caching and the tokenizer (cited in
worldgen.local.messages_api next to the rule) and the simulator's rate limits (worldgen.local.simulator)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from worldgen.local.messages_api import CACHE_TTL_SECONDS, PromptCache, prompt_segments
from worldgen.local.simulator import TIERS, Pace, RateLimits, Tier

EPHEMERAL = {"type": "ephemeral"}
TOOL = {"name": "record_phase_1a", "description": "d" * 2000, "input_schema": {"type": "object"}}
SYSTEM = "You are worldgen. " + "The world so far. " * 900  # ~4K tokens


def body(model: str = "claude-sonnet-4-6", **changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "model": model,
        "max_tokens": 1000,
        "tools": [{**TOOL, "cache_control": EPHEMERAL}],
        "system": [{"type": "text", "text": SYSTEM, "cache_control": EPHEMERAL}],
        "messages": [{"role": "user", "content": "Write part 1."}],
        "tool_choice": {"type": "tool", "name": TOOL["name"]},
    }
    request.update(changes)
    return request


def structured(schema: dict[str, Any], **changes: Any) -> dict[str, Any]:
    request = body("claude-sonnet-5-5", **changes)
    del request["tools"], request["tool_choice"]
    request["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    return request


@pytest.fixture
def cache() -> PromptCache:
    return PromptCache(time_factor=1.0)


def written_long_ago(cache: PromptCache, request: dict[str, Any]) -> dict[str, int]:
    bill = cache.bill(request, 10)
    cache.written(bill.written, time.monotonic() - 1)  # its writer's first token went out a second ago
    return bill.usage


def test_a_prefix_is_read_by_the_requests_after_its_writers_first_token(cache: PromptCache) -> None:
    first = written_long_ago(cache, body())
    second = cache.bill(body(messages=[{"role": "user", "content": "Write part 2."}]), 10).usage

    assert first["cache_creation_input_tokens"] > 0 and first["cache_read_input_tokens"] == 0
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert second["cache_creation_input_tokens"] == 0


def test_requests_sent_before_the_writers_first_token_each_write_their_own(cache: PromptCache) -> None:
    writer = cache.bill(body(), 10)
    cache.written(writer.written, time.monotonic() + 60)  # its first token is still to come
    sibling = cache.bill(body(messages=[{"role": "user", "content": "Write part 2."}]), 10).usage

    assert sibling["cache_read_input_tokens"] == 0
    assert sibling["cache_creation_input_tokens"] == writer.usage["cache_creation_input_tokens"]


def test_a_changed_output_format_invalidates_the_system_level_and_what_follows(cache: PromptCache) -> None:
    first = written_long_ago(cache, structured({"type": "object", "properties": {"planes": {}}}))
    other_part = cache.bill(structured({"type": "object", "properties": {"races": {}}}), 10).usage
    same_format = cache.bill(structured({"type": "object", "properties": {"planes": {}}}), 10).usage

    assert first["cache_creation_input_tokens"] > 0
    assert other_part["cache_read_input_tokens"] == 0  # the format is part of the key
    assert same_format["cache_read_input_tokens"] == first["cache_creation_input_tokens"]


def test_a_changed_tool_invalidates_every_level(cache: PromptCache) -> None:
    written_long_ago(cache, body())
    changed = {**TOOL, "description": "e" * 2000, "cache_control": EPHEMERAL}

    usage = cache.bill(body(tools=[changed]), 10).usage

    assert usage["cache_read_input_tokens"] == 0


def test_a_changed_tool_choice_keeps_the_tools_and_system_levels(cache: PromptCache) -> None:
    first = written_long_ago(cache, body())

    usage = cache.bill(body(tool_choice={"type": "tool", "name": "record_phase_1a_outline"}), 10).usage

    assert usage["cache_read_input_tokens"] == first["cache_creation_input_tokens"]


def test_a_message_breakpoint_is_invalidated_by_a_changed_tool_choice(cache: PromptCache) -> None:
    marked = [{"role": "user", "content": [{"type": "text", "text": "x" * 4000, "cache_control": EPHEMERAL}]}]
    first = written_long_ago(cache, body(messages=marked))

    same = cache.bill(body(messages=marked), 10).usage
    other_choice = cache.bill(body(messages=marked, tool_choice={"type": "auto"}), 10).usage

    assert same["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert 0 < other_choice["cache_read_input_tokens"] < first["cache_creation_input_tokens"]


def test_the_minimum_cacheable_length_is_the_familys(cache: PromptCache) -> None:
    short = "A short prompt. " * 200  # ~800 tokens: above Sonnet 5.5's 512, below Sonnet 4.6's 2048
    request: dict[str, Any] = {"system": [{"type": "text", "text": short, "cache_control": EPHEMERAL}]}

    sonnet_4_6 = cache.bill(body(tools=[TOOL], **request), 10).usage
    sonnet_5_5 = cache.bill(structured({"type": "object"}, **request), 10).usage

    assert sonnet_4_6["cache_creation_input_tokens"] == 0
    assert sonnet_5_5["cache_creation_input_tokens"] > 512


def test_an_entry_expires_five_simulated_minutes_after_its_last_use(cache: PromptCache) -> None:
    bill = cache.bill(body(), 10)
    cache.written(bill.written, time.monotonic() - CACHE_TTL_SECONDS - 1)

    usage = cache.bill(body(), 10).usage

    assert usage["cache_read_input_tokens"] == 0 and usage["cache_creation_input_tokens"] > 0


def test_the_sonnet_5_tokenizer_counts_about_thirty_percent_more_for_the_same_text(cache: PromptCache) -> None:
    plain: dict[str, Any] = {"tools": [TOOL], "system": SYSTEM}
    sonnet_4_6 = cache.bill(body(**plain), 10).usage["input_tokens"]
    sonnet_5 = cache.bill(body("claude-sonnet-5", **plain), 10).usage["input_tokens"]

    assert sonnet_5 == pytest.approx(sonnet_4_6 * 1.3, rel=0.01)


def test_the_output_format_is_rendered_into_the_system_level() -> None:
    levels = [level for level, _, _ in prompt_segments(structured({"type": "object"}))]

    assert levels == ["system", "system", "messages"]


def frozen(tier: Tier) -> RateLimits:
    return RateLimits(tier, Pace(time_factor=1e-9))  # the buckets do not refill within the test


def test_output_tokens_are_reserved_by_max_tokens_and_given_back_at_the_end() -> None:
    limits = frozen(TIERS["1"])  # 8K output tokens per minute

    assert limits.admit(100, 8000) is None
    wait = limits.admit(100, 1000)
    limits.settle(8000, 2000)  # the first answer used 2K of the 8K it reserved

    assert wait is not None and wait > 0
    assert limits.admit(100, 1000) is None


def test_cache_writes_and_plain_input_count_towards_the_input_limit() -> None:
    limits = frozen(Tier("t", 100, 10_000, 100_000))

    assert limits.admit(9_000, 10) is None
    assert limits.admit(2_000, 10) is not None
    assert limits.admit(1_000, 10) is None


def test_the_wait_is_what_refills_the_missing_tokens() -> None:
    limits = frozen(Tier("t", 100, 1_000_000, 60_000))  # 1,000 output tokens per simulated second

    assert limits.admit(10, 60_000) is None
    assert limits.admit(10, 30_000) == pytest.approx(30.0, rel=0.01)
    assert limits.refused == 1


def test_requests_per_minute_are_limited() -> None:
    limits = frozen(Tier("t", 2, 1_000_000, 1_000_000))

    assert limits.admit(1, 1) is None and limits.admit(1, 1) is None
    assert limits.admit(1, 1) is not None
