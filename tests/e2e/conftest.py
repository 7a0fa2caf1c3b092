"""Fixtures for end-to-end runs of the committed state machine in the local runtime."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from worldgen.errors import WorldgenError
from worldgen.handlers.phase import make_phase_handler
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file
from worldgen.local.runtime import LocalRuntime
from worldgen.model.base import ModelRequest, ModelResponse
from worldgen.model.procedural import ProceduralModel
from worldgen.phases import ALL_PHASES
from worldgen.tools.statemachine import ASL_PATH

OWNER = "demo-game-master"


def fast_retry_definition(**timeouts: int) -> str:
    """The committed ASL with shorter retry intervals (and, optionally, state timeouts by state name).

    Only the waits change, so a test of four retries takes seconds instead of minutes.
    """
    definition = json.loads(ASL_PATH.read_text())

    def visit(states: dict[str, Any]) -> None:
        for name, state in states.items():
            for retry in state.get("Retry", []):
                retry.update(IntervalSeconds=1, MaxDelaySeconds=1)
            if name in timeouts:
                state["TimeoutSeconds"] = timeouts[name]
            for branch in state.get("Branches", []):
                visit(branch["States"])

    visit(definition["States"])
    return json.dumps(definition)


class ScriptedModel:
    """The procedural model, except that calls listed in ``failures`` raise or misbehave first."""

    provider = "procedural"

    def __init__(self, failures: dict[str, list[Any]] | None = None) -> None:
        self.inner = ProceduralModel()
        self.failures = failures or {}
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def call(self, request: ModelRequest) -> ModelResponse:
        with self.lock:
            self.calls.append(request.phase.id)
            script = self.failures.get(request.phase.id, [])
            action = script.pop(0) if script else None
        if isinstance(action, WorldgenError):
            raise action
        if isinstance(action, (int, float)):
            time.sleep(action)
        if action == "invalid":
            response = self.inner.call(request)
            response.tool_input = {"nonsense": []}
            script.insert(0, "invalid")  # stays invalid through every repair round
            return response
        return self.inner.call(request)


@pytest.fixture
def campaign_id(settings_env: str) -> uuid.UUID:
    with psycopg.connect(settings_env, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        return insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))


@pytest.fixture
def make_runtime(settings_env: str) -> Iterator[Callable[..., LocalRuntime]]:
    """Start a LocalRuntime whose phase functions use ``model`` (a ScriptedModel by default)."""
    started: list[LocalRuntime] = []

    def start(model: Any = None, definition: str | None = None, **overrides: Any) -> LocalRuntime:
        handlers = {}
        if model is not None:
            handler = make_phase_handler(lambda: model)
            handlers = {phase.function_id: handler for phase in ALL_PHASES}  # every profile
        handlers.update(overrides)
        runtime = LocalRuntime(
            handlers, definition=definition, environment={"WORLDGEN_DATABASE_URL": settings_env}
        ).__enter__()
        started.append(runtime)
        return runtime

    yield start
    for runtime in reversed(started):
        runtime.__exit__(None, None, None)


def start_and_wait(runtime: LocalRuntime, campaign_id: uuid.UUID, timeout: float = 120) -> dict[str, Any]:
    status, body = runtime.action("generateWorld", {"campaign_id": str(campaign_id)}, user_id=OWNER)
    assert status == 200, body
    execution = runtime.wait(body["execution_arn"], timeout=timeout)
    return {**body, "execution": execution}
