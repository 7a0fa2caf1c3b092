"""THE table of Claude model families: how to ask each for a phase's rows, and what it costs.

One entry per family; adding a model is one entry here. Everything model-specific reads this
table: the request ClaudeModel builds (forced tool or structured output, thinking, effort, output
limit), the Bedrock inference profile an Anthropic id maps to, the price of a call
(``worldgen.model.pricing``), and the validation of ``WORLDGEN_DEFAULT_MODEL`` /
``WORLDGEN_PHASE_MODELS`` and of the CDK environments (a model the table does not know is refused
when the configuration loads, not at the first 400).

A model id of the Anthropic API (``claude-sonnet-4-6``, ``claude-sonnet-4-5-20250929``) or of
Bedrock (``anthropic.claude-sonnet-5-5``, ``eu.anthropic.claude-haiku-4-5-20251001-v1:0``, with
any ``us.`` / ``eu.`` / ``apac.`` / ``global.`` inference-profile prefix) names its family once the
prefix and the date/version suffix are dropped.

Request modes:

- ``forced_tool``: the phase tool with ``tool_choice: {"type": "tool"}``; the rows are the tool
  input. No ``thinking`` field is sent (these models do not think unless asked, and thinking is
  incompatible with a forced tool).
- ``structured_output``: for models that reject a forced tool (Sonnet 5.5: the migration guide
  lists forced tool choice, thinking budgets, sampling parameters, assistant prefill and
  ``thinking: {"type": "disabled"}`` as 400s). No tools; the phase tool's input schema (stripped
  to what structured outputs accept, as for strict tools) goes in ``output_config.format`` and the
  rows are the JSON of the text block. ``thinking`` and ``output_config.effort`` come from the
  family entry.

Prices: USD per million tokens, standard tier, prompts under 200K tokens, 5-minute cache writes
(the only TTL worldgen uses), from https://platform.claude.com/docs/en/about-claude/pricing as read
on ``PRICES_AS_OF``. Bedrock global inference profiles bill the same list prices; Bedrock regional
(geo) profiles of the 4.5 and later models cost about 10% more, which this table does not model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

PRICES_AS_OF = "2026-11-28"
PRICES_SOURCE = "https://platform.claude.com/docs/en/about-claude/pricing"

RequestMode = Literal["forced_tool", "structured_output"]
FORCED_TOOL: RequestMode = "forced_tool"
STRUCTURED_OUTPUT: RequestMode = "structured_output"


@dataclass(frozen=True)
class ModelPrice:
    input: float
    output: float
    cache_write_5m: float
    cache_read: float


@dataclass(frozen=True)
class ModelFamily:
    name: str  # the Anthropic API id without a date suffix, e.g. "claude-sonnet-5-5"
    request_mode: RequestMode
    max_output_tokens: int
    price: ModelPrice
    bedrock_id: str | None  # foundation model id, without the inference-profile prefix
    thinking_types: tuple[str, ...] = ()  # accepted thinking.type values (documentation, and checked below)
    efforts: tuple[str, ...] = ()  # accepted output_config.effort values; () = no effort parameter
    thinking: dict[str, Any] | None = None  # what worldgen sends; None: no thinking field
    effort: str | None = None  # what worldgen sends as output_config.effort; None: not sent
    retires: str | None = None  # end of life announced by Anthropic

    def __post_init__(self) -> None:
        if self.thinking is not None and self.thinking.get("type") not in self.thinking_types:
            raise ValueError(f"{self.name}: thinking {self.thinking} is not one it accepts {self.thinking_types}")
        if self.effort is not None and self.effort not in self.efforts:
            raise ValueError(f"{self.name}: effort {self.effort!r} is not one it accepts {self.efforts}")
        if self.request_mode == FORCED_TOOL and self.thinking is not None:
            raise ValueError(f"{self.name}: a forced tool cannot be combined with thinking")


def _price(input: float, output: float, cache_read: float | None = None) -> ModelPrice:
    """List price with the published multipliers: 5-minute cache write 1.25x input, read 0.1x."""
    return ModelPrice(input, output, round(input * 1.25, 4), cache_read if cache_read is not None else input / 10)


_EFFORTS = ("low", "medium", "high", "xhigh", "max")

FAMILIES: dict[str, ModelFamily] = {
    f.name: f
    for f in (
        # The current Sonnet (released 2026-09-28). Rejects a forced tool: phases use structured
        # outputs. between_tools is its lowest thinking setting (no up-front thinking; with no tools
        # the answer is text only), accepted at low/medium/high effort.
        ModelFamily(
            "claude-sonnet-5-5",
            STRUCTURED_OUTPUT,
            max_output_tokens=128_000,
            price=_price(2.00, 10.00, cache_read=0.10),  # cache reads half of Sonnet 5's
            bedrock_id="anthropic.claude-sonnet-5-5",
            thinking_types=("adaptive", "between_tools"),
            efforts=_EFFORTS,
            thinking={"type": "between_tools"},
            effort="medium",
        ),
        ModelFamily(
            "claude-sonnet-5",
            FORCED_TOOL,
            max_output_tokens=64_000,
            price=_price(2.00, 10.00),
            bedrock_id="anthropic.claude-sonnet-5",
            thinking_types=("adaptive", "disabled"),
            efforts=_EFFORTS,
        ),
        ModelFamily(
            "claude-sonnet-4-6",
            FORCED_TOOL,
            max_output_tokens=64_000,
            price=_price(3.00, 15.00),
            bedrock_id="anthropic.claude-sonnet-4-6",
            thinking_types=("disabled", "enabled", "adaptive"),
            efforts=("low", "medium", "high", "max"),
        ),
        ModelFamily(
            "claude-sonnet-4-5",
            FORCED_TOOL,
            max_output_tokens=64_000,
            price=_price(3.00, 15.00),
            bedrock_id="anthropic.claude-sonnet-4-5-20250929-v1:0",
            thinking_types=("disabled", "enabled"),
            retires="2026-11-30",
        ),
        ModelFamily(
            "claude-sonnet-4",
            FORCED_TOOL,
            max_output_tokens=64_000,
            price=_price(3.00, 15.00),
            bedrock_id="anthropic.claude-sonnet-4-20250514-v1:0",
            thinking_types=("disabled", "enabled"),
        ),
        ModelFamily(
            "claude-haiku-4-5",
            FORCED_TOOL,
            max_output_tokens=64_000,
            price=_price(1.00, 5.00),
            bedrock_id="anthropic.claude-haiku-4-5-20251001-v1:0",
            thinking_types=("disabled", "enabled"),
        ),
        ModelFamily(
            "claude-opus-5",
            FORCED_TOOL,
            max_output_tokens=64_000,
            price=_price(5.00, 25.00),
            bedrock_id="anthropic.claude-opus-5",
            thinking_types=("adaptive", "disabled"),
            efforts=_EFFORTS,
        ),
        *(
            ModelFamily(
                f"claude-opus-4-{minor}",
                FORCED_TOOL,
                max_output_tokens=64_000,
                price=_price(5.00, 25.00),
                bedrock_id=f"anthropic.claude-opus-4-{minor}",
                thinking_types=("disabled", "enabled", "adaptive"),
                efforts=("low", "medium", "high", "max"),
            )
            for minor in (8, 7, 6)
        ),
        ModelFamily(
            "claude-opus-4-5",
            FORCED_TOOL,
            max_output_tokens=64_000,
            price=_price(5.00, 25.00),
            bedrock_id="anthropic.claude-opus-4-5-20251101-v1:0",
            thinking_types=("disabled", "enabled"),
            retires="2027-01-22",
        ),
        ModelFamily(
            "claude-opus-4-1",
            FORCED_TOOL,
            max_output_tokens=32_000,
            price=_price(15.00, 75.00),
            bedrock_id="anthropic.claude-opus-4-1-20250805-v1:0",
            thinking_types=("disabled", "enabled"),
        ),
        ModelFamily(
            "claude-opus-4",
            FORCED_TOOL,
            max_output_tokens=32_000,
            price=_price(15.00, 75.00),
            bedrock_id="anthropic.claude-opus-4-20250514-v1:0",
            thinking_types=("disabled", "enabled"),
        ),
    )
}

# "us.anthropic.claude-sonnet-4-5-20250929-v1:0" and "claude-sonnet-4-5-20250929" -> "claude-sonnet-4-5"
_BEDROCK_PREFIX = re.compile(r"^(?:(?:us|eu|apac|jp|au|global)\.)?anthropic\.")
_VERSION_SUFFIX = re.compile(r"(?:-\d{8})?(?:-v\d+:\d+)?$")
_GEOGRAPHIES = {"us": "us", "ca": "us", "eu": "eu", "ap": "apac"}


class UnknownModel(ValueError):
    """A model id no family of the table claims (a ValueError, so pydantic reports it as such)."""


def family_name(model: str) -> str:
    """The family name of a model id of the Anthropic API or of Bedrock."""
    return _VERSION_SUFFIX.sub("", _BEDROCK_PREFIX.sub("", model.strip()))


def find_family(model: str) -> ModelFamily | None:
    return FAMILIES.get(family_name(model))


def family_of(model: str) -> ModelFamily:
    """The family of ``model``; ``UnknownModel`` naming every known id when the table has none."""
    family = find_family(model)
    if family is None:
        raise UnknownModel(
            f"unknown Claude model {model!r}; known model families: {', '.join(FAMILIES)} "
            "(an Anthropic id, optionally dated, or a Bedrock id such as eu.anthropic.claude-sonnet-4-6)"
        )
    return family


def check_model(model: str) -> str:
    """``model`` unchanged when the table knows it (a validator for settings and environments)."""
    family_of(model)
    return model


def bedrock_model_id(model: str, region: str) -> str:
    """The Bedrock id (inference profile of the region's geography) of a model; Bedrock ids pass through."""
    if "anthropic." in model:
        return model
    family = family_of(model)
    if family.bedrock_id is None:
        raise UnknownModel(f"no Bedrock id known for model {model!r}")
    geography = _GEOGRAPHIES.get(region.split("-")[0], "global")
    return f"{geography}.{family.bedrock_id}"
