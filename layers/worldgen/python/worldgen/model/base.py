"""The WorldModel protocol and the request/response it speaks (a leaf: the implementations and
``get_model``, which makes them, live beside it, in ``claude.py``, ``procedural.py``, ``simulated.py``
and ``factory.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from worldgen.db.context import PhaseContext
from worldgen.phases import Phase


@dataclass
class ModelRequest:
    phase: Phase
    system: str
    messages: list[dict[str, Any]]
    tool: dict[str, Any]
    max_tokens: int
    context: PhaseContext  # also rendered into ``messages``; the procedural model reads it directly
    references: dict[str, dict[str, str]] = field(default_factory=dict)  # table -> {property: table}
    options: dict[str, Any] = field(default_factory=dict)  # the generation's options (seed, scale)
    round: int = 1
    deadline_seconds: float | None = None  # the whole call, both streams of a max_tokens retry
    # An outlined phase (``Phase.outline``): every call of the phase sends the same tools and the same
    # cached system prefix (``shared_prompt``: the phase prompt with its context), differing only in
    # the forced tool and the last user message, so the calls after the outline read it from the cache.
    shared_prompt: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)  # every tool listed; ``tool`` is the forced one
    outline: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # table -> the outline's rows
    assigned: dict[str, list[str]] = field(default_factory=dict)  # table -> the keys this call writes
    tables: tuple[str, ...] = ()  # the tables this call writes, when not every table of its tool
    role_npcs: tuple[str, ...] = ()  # parts side by side: the NPCs this one may give new roles to
    # A table split between parts of a phase without an outline: table -> (its first required
    # reference, the keys of the rows it points at that this call writes the table's rows for).
    anchors: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)


@dataclass
class ModelUsage:
    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    latency_ms: int = 0
    stop_reason: str | None = None
    cost_usd: float = 0.0
    part: str | None = None  # in a phase in parts: "outline", "primer" or the part (model_calls.part)


@dataclass
class ModelResponse:
    """The rows the model answered (``tool_input``: the tool input, or the JSON of a structured
    output) and what the repair round needs to send the answer back."""

    tool_input: dict[str, Any] | None  # None: no rows could be read from the answer (see ``problem``)
    usage: ModelUsage
    assistant_content: list[dict[str, Any]] = field(default_factory=list)
    tool_use_id: str | None = None
    request_mode: str = "forced_tool"  # or "structured_output" (worldgen.model.families)
    problem: str | None = None  # why no rows could be read, for the repair round


class WorldModel(Protocol):
    provider: str

    def call(self, request: ModelRequest) -> ModelResponse:
        """Return the tool input and usage, or raise an error of ``worldgen.errors``."""
        ...
