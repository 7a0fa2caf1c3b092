"""The pricing table and cost_usd."""

from __future__ import annotations

import pytest

from worldgen.model.base import ModelUsage
from worldgen.model.pricing import PRICES, ModelPrice, cost_usd, price_family


def test_cost_is_each_token_kind_times_its_price_per_million() -> None:
    usage = ModelUsage("anthropic", "claude-sonnet-4-5", input_tokens=1_000_000, output_tokens=1_000_000,
                       cache_creation_input_tokens=1_000_000, cache_read_input_tokens=1_000_000)  # fmt: skip

    assert cost_usd("claude-sonnet-4-5", usage) == pytest.approx(3.00 + 15.00 + 3.75 + 0.30)


def test_a_typical_phase_call_costs_cents() -> None:
    usage = ModelUsage("anthropic", "claude-haiku-4-5", input_tokens=2000, output_tokens=8000,
                       cache_creation_input_tokens=3000)  # fmt: skip

    assert cost_usd("claude-haiku-4-5", usage) == pytest.approx((2000 * 1 + 8000 * 5 + 3000 * 1.25) / 1e6)


@pytest.mark.parametrize(
    "model",
    ["claude-sonnet-4-5-20250929", "anthropic.claude-sonnet-4-5-20250929-v1:0",
     "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "global.anthropic.claude-sonnet-4-5-20250929-v1:0"],
)  # fmt: skip
def test_dated_and_bedrock_ids_are_priced_as_their_model(model: str) -> None:
    assert price_family(model) == "claude-sonnet-4-5"
    assert cost_usd(model, ModelUsage("bedrock", model, output_tokens=1000)) == pytest.approx(0.015)


def test_unknown_model_costs_zero_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    assert cost_usd("claude-imaginary-9", ModelUsage("anthropic", "x", input_tokens=10)) == 0.0
    assert any(r.levelname == "WARNING" and "no price for model" in r.getMessage() for r in caplog.records)


def test_cache_prices_follow_the_published_multipliers_except_sonnet_5_5_reads() -> None:
    for name, price in PRICES.items():
        assert price.cache_write_5m == pytest.approx(price.input * 1.25), name
        if name != "claude-sonnet-5-5":
            assert price.cache_read == pytest.approx(price.input * 0.10), name
    # Sonnet 5.5: Sonnet 5's prices, cache reads at half Sonnet 5's rate (migration guide).
    assert PRICES["claude-sonnet-5-5"] == ModelPrice(input=2.00, output=10.00, cache_write_5m=2.50, cache_read=0.10)
    assert PRICES["claude-sonnet-5"].cache_read == pytest.approx(0.20)


@pytest.mark.parametrize(
    "model", ["claude-sonnet-5-5", "anthropic.claude-sonnet-5-5", "us.anthropic.claude-sonnet-5-5",
              "global.anthropic.claude-sonnet-5-5"],
)  # fmt: skip
def test_sonnet_5_5_ids_are_priced_as_sonnet_5_5(model: str) -> None:
    usage = ModelUsage("anthropic", model, input_tokens=1_000_000, output_tokens=1_000_000,
                       cache_creation_input_tokens=1_000_000, cache_read_input_tokens=1_000_000)  # fmt: skip

    assert cost_usd(model, usage) == pytest.approx(2.00 + 10.00 + 2.50 + 0.10)
