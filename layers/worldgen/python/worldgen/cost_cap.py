"""The cost cap of a generation: ``options["max_cost_usd"]`` (the action's ``max_cost_usd``,
``--max-cost``, else ``WORLDGEN_DEFAULT_MAX_COST_USD``; none: no cap).

Before each model call a phase checks what the generation has spent (the ``model_calls`` ledger,
every attempt of every phase) plus what this attempt spent and has in flight, plus the call's worst
case (its prompt at the cache-write price, ``max_tokens`` at the output price), counting the worst
case of the calls still in flight beside it. A call that could pass the cap is not sent: the phase
raises ``CostCapReached`` (permanent; the part answers it already has are recorded for a retry, as
for any failure), so the generation stops at that phase's boundary as failed (nothing of the phase
is saved);
``resumeGeneration`` with a higher ``max_cost_usd`` (``worldgen resume --max-cost``) continues it.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import psycopg

from worldgen.errors import CostCapReached
from worldgen.model.base import ModelRequest, ModelResponse, ModelUsage, WorldModel
from worldgen.model.families import find_family
from worldgen.phases import Phase

MAX_COST_OPTION = "max_cost_usd"
CHARS_PER_TOKEN = 4


def cap_of(options: dict[str, Any] | None) -> float | None:
    value = (options or {}).get(MAX_COST_OPTION)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def spent_usd(conn: psycopg.Connection[Any], generation_id: uuid.UUID | str) -> float:
    row = conn.execute(
        "SELECT coalesce(sum(cost_usd), 0) AS spent FROM model_calls WHERE generation_id = %s", (str(generation_id),)
    ).fetchone()
    return float(row["spent"]) if row else 0.0


def model_name(model: WorldModel, phase: Phase) -> str:
    model_id = getattr(model, "model_id", None)
    return str(model_id(phase)) if callable(model_id) else model.provider


def worst_case_usd(request: ModelRequest, model: str) -> float:
    """The most one call can cost: its prompt written to the cache, ``max_tokens`` answered.
    0 for a model without a price (the procedural model costs nothing)."""
    family = find_family(model)
    if family is None:
        return 0.0
    prompt = request.system + (request.shared_prompt or "") + json.dumps(request.messages, default=str)
    prompt += json.dumps(request.tools or [request.tool])
    input_tokens = len(prompt) / CHARS_PER_TOKEN * family.tokenizer_factor
    price = family.price
    return (input_tokens * max(price.input, price.cache_write_5m) + request.max_tokens * price.output) / 1_000_000


class CappedModel:
    """``model`` with the generation's cap checked before each call (and each cache primer)."""

    def __init__(self, model: WorldModel, phase: Phase, cap: float, spent: float, calls: list[ModelUsage]) -> None:
        self.model, self.phase, self.cap, self.spent, self.calls = model, phase, cap, spent, calls
        self.provider = model.provider
        self.name = model_name(model, phase)
        self._in_flight = 0.0
        self._lock = threading.Lock()
        if callable(getattr(model, "prime", None)):
            self.prime = self._prime

    def check(self, worst: float, what: str) -> None:
        spent = self.spent + sum(c.cost_usd for c in self.calls) + self._in_flight
        if spent + worst > self.cap:
            raise CostCapReached(
                f"phase {self.phase.id}: {what} could cost up to ${worst:.2f} and the generation has spent"
                f" ${spent:.2f} of its ${self.cap:.2f} cap; resume it with a higher max_cost_usd"
                " (worldgen resume GENERATION --max-cost USD)",
                phase=self.phase.id,
                spent_usd=round(spent, 4),
                max_cost_usd=self.cap,
            )

    def check_start(self, request: ModelRequest) -> None:
        """At the phase boundary, before any call: a first call like ``request`` fits. (The parts
        of a round are checked one by one; answers a refused round got are kept for the resume.)"""
        self.check(worst_case_usd(request, self.name), "its first call")

    def call(self, request: ModelRequest) -> ModelResponse:
        worst = self._reserve(request, "the next call")
        try:
            return self.model.call(request)
        finally:
            with self._lock:
                self._in_flight -= worst

    def _prime(self, request: ModelRequest) -> ModelUsage:
        worst = self._reserve(request, "the cache primer")
        try:
            usage: ModelUsage = self.model.prime(request)  # type: ignore[attr-defined]
            return usage
        finally:
            with self._lock:
                self._in_flight -= worst

    def _reserve(self, request: ModelRequest, what: str) -> float:
        worst = worst_case_usd(request, self.name)
        with self._lock:  # parts run side by side: each counts the others' worst case in flight
            self.check(worst, what)
            self._in_flight += worst
        return worst

    def model_id(self, phase: Phase) -> str:
        return self.name
