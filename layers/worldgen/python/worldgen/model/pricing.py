"""What a Claude call costs: list prices per model and ``cost_usd(model, usage)``.

Prices are USD per million tokens from Anthropic's pricing page
(https://platform.claude.com/docs/en/about-claude/pricing), standard tier, prompts under 200K
tokens, 5-minute cache writes (the only TTL worldgen uses). Bedrock global inference profiles bill
the same list prices; Bedrock regional (geo) profiles of the 4.5 models cost about 10% more, which
this table does not model. Update ``PRICES_AS_OF`` with the table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from worldgen.observability import logger

PRICES_AS_OF = "2026-11-28"
PRICES_SOURCE = "https://platform.claude.com/docs/en/about-claude/pricing"


@dataclass(frozen=True)
class ModelPrice:
    input: float
    output: float
    cache_write_5m: float
    cache_read: float


PRICES: dict[str, ModelPrice] = {
    # Current models that accept a forced tool_choice. Not listed: Sonnet 5.5 (rejects forced tool
    # use) and Haiku 5.5 (priced by prompt length, which this table does not model).
    "claude-opus-5": ModelPrice(input=5.00, output=25.00, cache_write_5m=6.25, cache_read=0.50),
    "claude-opus-4-8": ModelPrice(input=5.00, output=25.00, cache_write_5m=6.25, cache_read=0.50),
    "claude-opus-4-7": ModelPrice(input=5.00, output=25.00, cache_write_5m=6.25, cache_read=0.50),
    "claude-opus-4-6": ModelPrice(input=5.00, output=25.00, cache_write_5m=6.25, cache_read=0.50),
    "claude-sonnet-5": ModelPrice(input=2.00, output=10.00, cache_write_5m=2.50, cache_read=0.20),
    "claude-sonnet-4-6": ModelPrice(input=3.00, output=15.00, cache_write_5m=3.75, cache_read=0.30),
    # The 4.x generation (claude-sonnet-4-5 retires on 2026-11-30, claude-opus-4-5 on 2027-01-22).
    "claude-opus-4-5": ModelPrice(input=5.00, output=25.00, cache_write_5m=6.25, cache_read=0.50),
    "claude-opus-4-1": ModelPrice(input=15.00, output=75.00, cache_write_5m=18.75, cache_read=1.50),
    "claude-opus-4": ModelPrice(input=15.00, output=75.00, cache_write_5m=18.75, cache_read=1.50),
    "claude-sonnet-4-5": ModelPrice(input=3.00, output=15.00, cache_write_5m=3.75, cache_read=0.30),
    "claude-sonnet-4": ModelPrice(input=3.00, output=15.00, cache_write_5m=3.75, cache_read=0.30),
    "claude-haiku-4-5": ModelPrice(input=1.00, output=5.00, cache_write_5m=1.25, cache_read=0.10),
    "claude-3-5-haiku": ModelPrice(input=0.80, output=4.00, cache_write_5m=1.00, cache_read=0.08),
}

# "us.anthropic.claude-sonnet-4-5-20250929-v1:0" and "claude-sonnet-4-5-20250929" -> "claude-sonnet-4-5"
_BEDROCK_PREFIX = re.compile(r"^(?:(?:us|eu|apac|jp|au|global)\.)?anthropic\.")
_VERSION_SUFFIX = re.compile(r"(?:-\d{8})?(?:-v\d+:\d+)?$")


class TokenCounts(Protocol):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int


def price_family(model: str) -> str:
    """The pricing name of a model id of the Anthropic API or of Bedrock."""
    return _VERSION_SUFFIX.sub("", _BEDROCK_PREFIX.sub("", model))


def price_of(model: str) -> ModelPrice | None:
    return PRICES.get(price_family(model))


def cost_usd(model: str, usage: TokenCounts) -> float:
    """Cost of one call; 0.0 (and a warning) for a model the table does not know."""
    price = price_of(model)
    if price is None:
        logger.warning("no price for model; cost recorded as 0", extra={"model": model, "as_of": PRICES_AS_OF})
        return 0.0
    total = (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_creation_input_tokens * price.cache_write_5m
        + usage.cache_read_input_tokens * price.cache_read
    )
    return round(total / 1_000_000, 6)
