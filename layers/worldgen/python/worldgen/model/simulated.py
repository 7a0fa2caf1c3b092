"""The ``simulated`` provider: ClaudeModel talking to the paced Claude simulator, on a compressed clock.

The simulator (``worldgen.local.simulator``, a loopback Messages API server started by the demo,
the bench and tests; not part of the Lambda layer) answers through the real anthropic SDK at a
real model's pace, with time compressed by ``WORLDGEN_SIMULATOR_TIME_FACTOR`` (simulated seconds
per real second). This provider only does the plumbing:

- the SDK goes to ``WORLDGEN_SIMULATOR_URL`` with a placeholder key;
- the request timeout (stream deadline and per-read timeout) is divided by the factor, so a call
  that would outlive its deadline on the real clock outlives it here too;
- every request is first announced to the in-process listener (the simulator), which answers
  it procedurally at the real size: the HTTP body alone does not carry the phase's context;
- the latency recorded in the ledger is the simulated time the simulator spent answering the
  call's HTTP requests (first token, input, streaming; a ``max_tokens`` retry adds its second
  request), not the real time multiplied by the factor, so the client's own CPU time (parsing
  the stream) is not inflated by the factor. Without a listener: real time x factor.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, Protocol

from pydantic import SecretStr

from worldgen.errors import ConfigurationError, WorldgenError
from worldgen.model.base import ModelRequest, ModelResponse, ModelUsage
from worldgen.model.claude import ClaudeModel
from worldgen.phases import Phase
from worldgen.settings import Settings, get_settings

PROVIDER = "simulated"


class Listener(Protocol):
    def announce(self, request: ModelRequest) -> None:
        """Called with every request of the simulated provider before it is sent."""

    def simulated_seconds(self, digest: str) -> float:
        """Simulated seconds spent so far answering requests with this ``request_digest``."""
        ...


_listeners: list[Listener] = []


def listen(listener: Listener) -> None:
    """Receive every request of the simulated provider before it is sent (the simulator's hook)."""
    _listeners.append(listener)


def stop_listening(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def request_digest(messages: list[dict[str, Any]]) -> str:
    """What identifies a request on both ends of the HTTP call: its messages (every call of a phase
    differs in its last message; a structured-output request carries no tool to tell them apart)."""
    text = json.dumps(messages, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class SimulatedModel:
    """The WorldModel of the simulator: a ClaudeModel on a compressed clock."""

    provider = PROVIDER

    def __init__(self, settings: Settings | None = None) -> None:
        settings = settings or get_settings()
        if not settings.simulator_url:
            raise ConfigurationError(
                "the simulated model needs the Claude simulator: set WORLDGEN_SIMULATOR_URL "
                "(`worldgen demo --model simulated` and `make bench-world` start one)",
                setting="WORLDGEN_SIMULATOR_URL",
            )
        if settings.simulator_time_factor <= 0:
            raise ConfigurationError(
                f"WORLDGEN_SIMULATOR_TIME_FACTOR must be positive, not {settings.simulator_time_factor:g}",
                setting="WORLDGEN_SIMULATOR_TIME_FACTOR",
            )
        self.factor = settings.simulator_time_factor
        scaled = settings.model_copy(
            update={
                "anthropic_base_url": settings.simulator_url,
                "anthropic_api_key": SecretStr("simulated"),
                "anthropic_api_key_secret_arn": None,
                "request_timeout_seconds": settings.request_timeout_seconds / self.factor,
                "rate_limit_max_wait_seconds": settings.rate_limit_max_wait_seconds / self.factor,
                # One model for every phase, asked in its family's dialect (the simulator speaks both).
                "default_model": settings.simulator_model,
                "phase_models": {},
            }
        )
        self.claude = ClaudeModel(provider="anthropic", settings=scaled)

    def call(self, request: ModelRequest) -> ModelResponse:
        clock = _SimulatedClock(request)
        try:
            response = self.claude.call(self._compressed(request))
        except WorldgenError as exc:
            usage = exc.details.get("usage")
            if isinstance(usage, dict):
                latency = self._simulated_ms(usage["latency_ms"], clock.spent())
                exc.details["usage"] = {**usage, "provider": PROVIDER, "latency_ms": latency}
            raise
        response.usage.provider = PROVIDER
        response.usage.latency_ms = self._simulated_ms(response.usage.latency_ms, clock.spent())
        return response

    def model_id(self, phase: Phase) -> str:
        return self.claude.model_id(phase)

    def prime(self, request: ModelRequest) -> ModelUsage:
        """ClaudeModel.prime against the simulator, on the compressed clock."""
        clock = _SimulatedClock(request)
        usage = self.claude.prime(self._compressed(request))
        usage.provider = PROVIDER
        usage.latency_ms = self._simulated_ms(usage.latency_ms, clock.spent())
        return usage

    def _compressed(self, request: ModelRequest) -> ModelRequest:
        """The request with its deadline on the compressed clock."""
        if request.deadline_seconds is None:
            return request
        return dataclasses.replace(request, deadline_seconds=request.deadline_seconds / self.factor)

    def _simulated_ms(self, real_ms: int, spent_seconds: float) -> int:
        return int(spent_seconds * 1000) if spent_seconds > 0 else int(real_ms * self.factor)


class _SimulatedClock:
    """Announces a request to the listeners (the simulator) and reads the simulated seconds they
    spent answering it since."""

    def __init__(self, request: ModelRequest) -> None:
        self.listeners = list(_listeners)
        self.digest = request_digest(request.messages)
        for listener in self.listeners:
            listener.announce(request)
        self.before = self._total()

    def _total(self) -> float:
        return sum(listener.simulated_seconds(self.digest) for listener in self.listeners)

    def spent(self) -> float:
        return self._total() - self.before
