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
  input. Thinking is incompatible with a forced tool: the 4.x models do not think unless asked
  (no ``thinking`` field), and the families that think by default (Sonnet 5, Opus 5) are sent
  ``thinking: {"type": "disabled"}`` explicitly (``thinking`` below).
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
    retires: str | None = None  # end of life announced by Anthropic, still served until then
    retired: str | None = None  # the date requests to it started failing: refused at configuration
    # Tokens the family's tokenizer gives for the same text, relative to Sonnet 4.6's (what the
    # budgets, measured as characters / 4, were calibrated on).
    tokenizer_factor: float = 1.0
    min_cacheable_tokens: int = 1024  # the shortest prefix a cache breakpoint writes
    # Bedrock: "invoke" is the legacy InvokeModel integration (ARN-versioned ids, the body carries
    # ``anthropic_version``), "messages" the Messages-API Bedrock endpoint (the SDK's Mantle client).
    bedrock_endpoint: Literal["invoke", "messages"] = "invoke"

    def __post_init__(self) -> None:
        if self.thinking is not None and self.thinking.get("type") not in self.thinking_types:
            raise ValueError(f"{self.name}: thinking {self.thinking} is not one it accepts {self.thinking_types}")
        if self.effort is not None and self.effort not in self.efforts:
            raise ValueError(f"{self.name}: effort {self.effort!r} is not one it accepts {self.efforts}")
        if self.request_mode == FORCED_TOOL and self.thinking is not None and self.thinking.get("type") != "disabled":
            raise ValueError(f"{self.name}: a forced tool cannot be combined with thinking")


def _price(input: float, output: float, cache_read: float | None = None) -> ModelPrice:
    """List price with the published multipliers: 5-minute cache write 1.25x input, read 0.1x."""
    return ModelPrice(input, output, round(input * 1.25, 4), cache_read if cache_read is not None else input / 10)


_EFFORTS = ("low", "medium", "high", "xhigh", "max")
# Sources of the facts below, read 2026-12-04 (re-read before changing an entry):
_SONNET_5_GUIDE = "https://platform.claude.com/docs/en/models/sonnet-5/migration-guide"
_SONNET_5_5_NEW = "https://platform.claude.com/docs/en/models/sonnet-5-5/whats-new-sonnet-5-5"
_DEPRECATIONS = "https://platform.claude.com/docs/en/about-claude/model-deprecations"
_BEDROCK_LEGACY = "https://platform.claude.com/docs/en/build-with-claude/claude-on-amazon-bedrock-legacy"
_BEDROCK = "https://platform.claude.com/docs/en/build-with-claude/claude-in-amazon-bedrock"
_CACHING = "https://platform.claude.com/docs/en/build-with-claude/prompt-caching"
SOURCES = (_SONNET_5_GUIDE, _SONNET_5_5_NEW, _DEPRECATIONS, _BEDROCK_LEGACY, _BEDROCK, _CACHING, PRICES_SOURCE)
# "The same input text produces about 30% more tokens than Claude Sonnet 4.6" (_SONNET_5_GUIDE, "new
# tokenizer", 2026-12-04); Sonnet 5.5 "uses the same tokenizer" (_SONNET_5_5_NEW, 2026-12-04).
SONNET_5_TOKENIZER = 1.3

FAMILIES: dict[str, ModelFamily] = {
    f.name: f
    for f in (
        # The current Sonnet (released 2026-09-28). Rejects a forced tool (_SONNET_5_5_NEW, "forced
        # tool use returns an error", 2026-12-04): phases use structured outputs. between_tools is
        # its lowest thinking setting (no up-front thinking; with no tools the answer is text only),
        # accepted at low/medium/high effort. Minimum cacheable prompt 512 tokens (_CACHING,
        # 2026-12-04). Bedrock: the Messages-API endpoint only (_BEDROCK, 2026-12-04).
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
            tokenizer_factor=SONNET_5_TOKENIZER,
            min_cacheable_tokens=512,
            bedrock_endpoint="messages",
        ),
        # Thinks adaptively by default, and thinking may not be on with a forced tool: sent
        # thinking {"type": "disabled"} with its forced tool (_SONNET_5_GUIDE, 2026-12-04).
        ModelFamily(
            "claude-sonnet-5",
            FORCED_TOOL,
            max_output_tokens=64_000,
            price=_price(2.00, 10.00),
            bedrock_id="anthropic.claude-sonnet-5",
            thinking_types=("adaptive", "disabled"),
            efforts=_EFFORTS,
            thinking={"type": "disabled"},
            tokenizer_factor=SONNET_5_TOKENIZER,
            bedrock_endpoint="messages",
        ),
        ModelFamily(
            "claude-sonnet-4-6",
            FORCED_TOOL,
            max_output_tokens=64_000,
            price=_price(3.00, 15.00),
            bedrock_id="anthropic.claude-sonnet-4-6",
            thinking_types=("disabled", "enabled", "adaptive"),
            efforts=("low", "medium", "high", "max"),
            min_cacheable_tokens=2048,  # _CACHING, 2026-12-04
        ),
        # Retired 2026-11-30 (_DEPRECATIONS, 2026-12-04): kept so old ledger rows keep their price.
        ModelFamily(
            "claude-sonnet-4-5",
            FORCED_TOOL,
            max_output_tokens=64_000,
            price=_price(3.00, 15.00),
            bedrock_id="anthropic.claude-sonnet-4-5-20250929-v1:0",
            thinking_types=("disabled", "enabled"),
            retired="2026-11-30",
        ),
        # Retired 2026-06-15 (release notes, _DEPRECATIONS, 2026-12-04).
        ModelFamily(
            "claude-sonnet-4",
            FORCED_TOOL,
            max_output_tokens=64_000,
            price=_price(3.00, 15.00),
            bedrock_id="anthropic.claude-sonnet-4-20250514-v1:0",
            thinking_types=("disabled", "enabled"),
            retired="2026-06-15",
        ),
        ModelFamily(
            "claude-haiku-4-5",
            FORCED_TOOL,
            max_output_tokens=64_000,
            price=_price(1.00, 5.00),
            bedrock_id="anthropic.claude-haiku-4-5-20251001-v1:0",
            thinking_types=("disabled", "enabled"),
            min_cacheable_tokens=4096,  # _CACHING, 2026-12-04
        ),
        # Thinks by default like Sonnet 5: thinking disabled explicitly with the forced tool
        # (_SONNET_5_GUIDE, 2026-12-04). Minimum cacheable prompt 512 tokens (_CACHING, 2026-12-04).
        ModelFamily(
            "claude-opus-5",
            FORCED_TOOL,
            max_output_tokens=64_000,
            price=_price(5.00, 25.00),
            bedrock_id="anthropic.claude-opus-5",
            thinking_types=("adaptive", "disabled"),
            efforts=_EFFORTS,
            thinking={"type": "disabled"},
            min_cacheable_tokens=512,
            bedrock_endpoint="messages",
        ),
        # Opus 4.7 and 4.8 are served by the Messages-API Bedrock endpoint: the legacy page covers
        # "Opus 4.6 and earlier" (_BEDROCK_LEGACY, 2026-12-04).
        *(
            ModelFamily(
                f"claude-opus-4-{minor}",
                FORCED_TOOL,
                max_output_tokens=64_000,
                price=_price(5.00, 25.00),
                bedrock_id=f"anthropic.claude-opus-4-{minor}",
                thinking_types=("disabled", "enabled", "adaptive"),
                efforts=("low", "medium", "high", "max"),
                bedrock_endpoint="messages",
            )
            for minor in (8, 7)
        ),
        # Bedrock id with its "-v1" (_BEDROCK_LEGACY's model table, 2026-12-04).
        ModelFamily(
            "claude-opus-4-6",
            FORCED_TOOL,
            max_output_tokens=64_000,
            price=_price(5.00, 25.00),
            bedrock_id="anthropic.claude-opus-4-6-v1",
            thinking_types=("disabled", "enabled", "adaptive"),
            efforts=("low", "medium", "high", "max"),
            min_cacheable_tokens=4096,  # _CACHING, 2026-12-04
        ),
        ModelFamily(
            "claude-opus-4-5",
            FORCED_TOOL,
            max_output_tokens=64_000,
            price=_price(5.00, 25.00),
            bedrock_id="anthropic.claude-opus-4-5-20251101-v1:0",
            thinking_types=("disabled", "enabled"),
            retires="2027-01-22",
            min_cacheable_tokens=4096,  # _CACHING, 2026-12-04
        ),
        ModelFamily(
            "claude-opus-4-1",
            FORCED_TOOL,
            max_output_tokens=32_000,
            price=_price(15.00, 75.00),
            bedrock_id="anthropic.claude-opus-4-1-20250805-v1:0",
            thinking_types=("disabled", "enabled"),
        ),
        # Retired 2026-06-15 (release notes, _DEPRECATIONS, 2026-12-04).
        ModelFamily(
            "claude-opus-4",
            FORCED_TOOL,
            max_output_tokens=32_000,
            price=_price(15.00, 75.00),
            bedrock_id="anthropic.claude-opus-4-20250514-v1:0",
            thinking_types=("disabled", "enabled"),
            retired="2026-06-15",
        ),
    )
}
# The families a configuration may name (the others are retired).
SERVED: tuple[str, ...] = tuple(name for name, family in FAMILIES.items() if family.retired is None)
# The API version the legacy Bedrock models need in the body: the SDK's default (2026-10-21) "may
# return a 400" on the ARN-versioned models; boto3 callers set this one (_BEDROCK_LEGACY, 2026-12-04).
BEDROCK_LEGACY_API_VERSION = "bedrock-2023-05-31"

# "us.anthropic.claude-sonnet-4-5-20250929-v1:0" and "claude-sonnet-4-5-20250929" -> "claude-sonnet-4-5"
_BEDROCK_PREFIX = re.compile(r"^(?:(?:us|eu|apac|jp|au|global)\.)?anthropic\.")
_VERSION_SUFFIX = re.compile(r"(?:-\d{8})?(?:-v\d+(?::\d+)?)?$")
_GEOGRAPHIES = {"us": "us", "ca": "us", "eu": "eu", "ap": "apac"}


class UnknownModel(ValueError):
    """A model id no family of the table claims, or a retired one (a ValueError, so pydantic reports
    it as such)."""


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
            f"unknown Claude model {model!r}; known model families: {', '.join(SERVED)} "
            "(an Anthropic id, optionally dated, or a Bedrock id such as eu.anthropic.claude-sonnet-4-6)"
        )
    return family


def check_model(model: str) -> str:
    """``model`` unchanged when the table knows it and it is still served (a validator for settings
    and environments); a retired model is refused with the date it retired."""
    family = family_of(model)
    if family.retired is not None:
        raise UnknownModel(
            f"Claude model {model!r} was retired on {family.retired} (requests to it fail, {_DEPRECATIONS});"
            f" choose one of {', '.join(SERVED)}"
        )
    return model


def bedrock_model_id(model: str, region: str) -> str:
    """The Bedrock id (inference profile of the region's geography) of a model; Bedrock ids pass through."""
    if "anthropic." in model:
        return model
    family = family_of(model)
    if family.bedrock_id is None:
        raise UnknownModel(f"no Bedrock id known for model {model!r}")
    if family.bedrock_endpoint == "messages":  # named by its model id there (_BEDROCK, 2026-12-04)
        return family.bedrock_id
    geography = _GEOGRAPHIES.get(region.split("-")[0], "global")
    return f"{geography}.{family.bedrock_id}"
