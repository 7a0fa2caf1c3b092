"""What a Claude call costs: ``cost_usd(model, usage)`` from the prices of ``worldgen.model.families``.

The prices (and the date they were read) live with each model family; this module only applies them.
"""

from __future__ import annotations

from typing import Protocol

from worldgen.model.families import FAMILIES, PRICES_AS_OF, PRICES_SOURCE, ModelPrice, family_name, find_family
from worldgen.observability import logger

__all__ = ["PRICES", "PRICES_AS_OF", "PRICES_SOURCE", "ModelPrice", "cost_usd", "price_family", "price_of"]

PRICES: dict[str, ModelPrice] = {name: family.price for name, family in FAMILIES.items()}


class TokenCounts(Protocol):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int


def price_family(model: str) -> str:
    """The pricing name (family) of a model id of the Anthropic API or of Bedrock."""
    return family_name(model)


def price_of(model: str) -> ModelPrice | None:
    family = find_family(model)
    return family.price if family else None


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
