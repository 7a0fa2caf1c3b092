"""The model table as the API serves it today: the request body each family and endpoint is sent,
through the real anthropic SDK against the loopback stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from support.standin import Answer, StandIn, forbidden_settings

from worldgen.db.context import PhaseContext
from worldgen.errors import ConfigurationError
from worldgen.model.base import ModelRequest
from worldgen.model.claude import ClaudeModel
from worldgen.model.families import BEDROCK_LEGACY_API_VERSION
from worldgen.phases import get_phase
from worldgen.schema.tools import load_tool
from worldgen.settings import Settings

PROMPT = [{"role": "user", "content": "Phase 1A: build the core world systems."}]


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


def request() -> ModelRequest:
    phase = get_phase("1A")
    context = PhaseContext("1A", {"name": "Ashen Crown", "setting": "isles", "tone": "grim"}, [], {}, {})
    return ModelRequest(phase, "You are worldgen.", PROMPT, load_tool(phase), 16000, context)


def anthropic_model(standin: StandIn, model: str) -> ClaudeModel:
    settings = Settings(
        model_provider="anthropic", anthropic_api_key=SecretStr("sk-ant-test"), anthropic_base_url=standin.url,
        sdk_max_retries=0, request_timeout_seconds=5.0, default_model=model,
    )  # fmt: skip
    return ClaudeModel("anthropic", settings=settings)


def bedrock_model(standin: StandIn, model: str) -> ClaudeModel:
    settings = Settings(
        model_provider="bedrock", bedrock_region="us-east-1", bedrock_base_url=standin.url,
        bedrock_mantle_base_url=standin.url, sdk_max_retries=0, request_timeout_seconds=5.0, default_model=model,
    )  # fmt: skip
    return ClaudeModel("bedrock", settings=settings)


@pytest.mark.parametrize("model", ["claude-sonnet-5", "claude-opus-5"])
def test_a_default_thinking_family_gets_its_forced_tool_with_thinking_disabled(standin: StandIn, model: str) -> None:
    response = anthropic_model(standin, model).call(request())

    body = standin.message_requests[0].body
    assert body["tool_choice"]["type"] == "tool" and body["thinking"] == {"type": "disabled"}
    assert forbidden_settings(body) == [] and response.tool_input is not None


def test_the_stand_in_refuses_a_forced_tool_with_default_thinking_as_the_api_does() -> None:
    body: dict[str, Any] = {"model": "claude-sonnet-5", "tool_choice": {"type": "tool", "name": "x"}}

    assert forbidden_settings(body) != []
    assert forbidden_settings({**body, "thinking": {"type": "disabled"}}) == []
    assert forbidden_settings({**body, "model": "claude-sonnet-4-6"}) == []


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "claude-haiku-4-5"])
def test_a_family_that_does_not_think_unless_asked_gets_no_thinking_field(standin: StandIn, model: str) -> None:
    anthropic_model(standin, model).call(request())

    assert "thinking" not in standin.message_requests[0].body


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("claude-sonnet-4-6", "/model/us.anthropic.claude-sonnet-4-6/invoke-with-response-stream"),
        ("eu.anthropic.claude-sonnet-4-6", "/model/eu.anthropic.claude-sonnet-4-6/invoke-with-response-stream"),
        ("claude-opus-4-6", "/model/us.anthropic.claude-opus-4-6-v1/invoke-with-response-stream"),
    ],
)
def test_a_legacy_bedrock_model_is_invoked_with_the_api_version_it_accepts(
    standin: StandIn, model: str, path: str
) -> None:
    standin.script(Answer.error(400, "invalid_request_error"))  # the body is what this test reads

    with pytest.raises(ConfigurationError):
        bedrock_model(standin, model).call(request())

    sent = standin.requests[0]
    assert sent.path == path
    assert sent.body["anthropic_version"] == BEDROCK_LEGACY_API_VERSION  # not the SDK's 2026-10-21
    assert "model" not in sent.body and sent.body["tool_choice"]["type"] == "tool"


def test_sonnet_5_5_on_bedrock_goes_through_the_messages_api_endpoint(standin: StandIn) -> None:
    response = bedrock_model(standin, "claude-sonnet-5-5").call(request())

    sent = standin.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.body["model"] == "anthropic.claude-sonnet-5-5" and "anthropic_version" not in sent.body
    assert "output_config" in sent.body and "tool_choice" not in sent.body
    assert sent.rejected == [] and response.tool_input is not None
