"""ClaudeModel driving the real anthropic SDK over HTTP against the Messages API stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import SecretStr
from support.standin import Answer, StandIn

from worldgen.db.context import PhaseContext
from worldgen.errors import (
    ConfigurationError,
    ModelOutputTruncated,
    ModelOverloaded,
    ModelRateLimited,
    ModelRefused,
    ModelTimeout,
    ModelUnavailable,
    WorldgenError,
)
from worldgen.model.base import ModelRequest
from worldgen.model.claude import ClaudeModel
from worldgen.model.pricing import cost_usd
from worldgen.phases import get_phase
from worldgen.schema.tools import load_tool, strict_variant
from worldgen.settings import Settings

PROMPT = [{"role": "user", "content": "Phase 1A: build the core world systems."}]


@pytest.fixture(autouse=True)
def aws_region(monkeypatch: pytest.MonkeyPatch) -> None:
    # As in Lambda, where AWS_REGION is always set; Powertools' Secrets provider reads it.
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


def settings_for(standin: StandIn, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "model_provider": "anthropic",
        "anthropic_api_key": SecretStr("sk-ant-test"),
        "anthropic_base_url": standin.url,
        "sdk_max_retries": 0,
        "request_timeout_seconds": 5.0,
        **overrides,
    }
    return Settings(**values)


def phase_request(tool: dict[str, Any] | None = None, max_tokens: int = 16000) -> ModelRequest:
    phase = get_phase("1A")
    context = PhaseContext("1A", {"name": "Ashen Crown", "setting": "isles", "tone": "grim"}, [], {}, {})
    return ModelRequest(phase, "You are worldgen.", PROMPT, tool or load_tool(phase), max_tokens, context)


def test_request_forces_the_tool_and_marks_tool_and_system_for_caching(standin: StandIn) -> None:
    model = ClaudeModel("anthropic", settings=settings_for(standin))
    request = phase_request()

    response = model.call(request)

    (sent,) = standin.message_requests
    body = sent.body
    assert sent.path == "/v1/messages"
    assert body["model"] == "claude-sonnet-4-6"
    assert body["max_tokens"] == 16000
    assert body["stream"] is True
    assert body["system"] == [{"type": "text", "text": "You are worldgen.", "cache_control": {"type": "ephemeral"}}]
    assert body["messages"] == PROMPT
    (tool,) = body["tools"]
    assert tool == {**request.tool, "cache_control": {"type": "ephemeral"}}
    assert "strict" not in tool
    assert body["tool_choice"] == {"type": "tool", "name": "record_phase_1a", "disable_parallel_tool_use": True}
    assert "sk-ant-test" in sent.headers.get("x-api-key", "") + sent.headers.get("authorization", "")
    assert response.tool_input is not None and set(response.tool_input) == set(request.phase.tables)
    assert response.tool_use_id is not None
    assert response.assistant_content == [
        {"type": "tool_use", "id": response.tool_use_id, "name": "record_phase_1a", "input": response.tool_input}
    ]


def test_strict_tool_is_sent_strict(standin: StandIn) -> None:
    model = ClaudeModel("anthropic", settings=settings_for(standin))

    model.call(phase_request(strict_variant(load_tool(get_phase("1A")))))

    (tool,) = standin.message_requests[0].body["tools"]
    assert tool["strict"] is True and "maxItems" not in str(tool)


def test_usage_counts_cache_writes_then_reads_and_is_priced(standin: StandIn) -> None:
    model = ClaudeModel("anthropic", settings=settings_for(standin))

    first = model.call(phase_request()).usage
    second = model.call(phase_request()).usage

    served = [r.usage for r in standin.message_requests]
    for usage, answer in ((first, served[0]), (second, served[1])):
        assert (usage.input_tokens, usage.output_tokens) == (answer["input_tokens"], answer["output_tokens"])
        assert usage.cache_creation_input_tokens == answer["cache_creation_input_tokens"]
        assert usage.cache_read_input_tokens == answer["cache_read_input_tokens"]
        assert usage.cost_usd == cost_usd("claude-sonnet-4-6", usage) > 0
        assert (usage.provider, usage.model, usage.stop_reason) == ("anthropic", "claude-sonnet-4-6", "tool_use")
    assert first.cache_creation_input_tokens > 1024 and first.cache_read_input_tokens == 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cost_usd < first.cost_usd


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (Answer.rate_limited(), ModelRateLimited),
        (Answer.overloaded(), ModelOverloaded),
        (Answer.server_error(), ModelUnavailable),
        (Answer.error(503, "api_error"), ModelUnavailable),
        (Answer.error(401, "authentication_error"), ConfigurationError),
        (Answer.error(403, "permission_error"), ConfigurationError),
        (Answer.error(404, "not_found_error"), ConfigurationError),
        (Answer.error(400, "invalid_request_error"), ConfigurationError),
        (Answer.error(413, "request_too_large"), ConfigurationError),
        (Answer.stream_error("overloaded_error"), ModelOverloaded),
        (Answer.stream_error("api_error"), ModelUnavailable),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else f"{v.kind}-{v.status}-{v.error_type}",
)
def test_api_failures_map_to_the_error_taxonomy(standin: StandIn, answer: Answer, error: type[Exception]) -> None:
    standin.script(answer)
    model = ClaudeModel("anthropic", settings=settings_for(standin))

    with pytest.raises(error) as raised:
        model.call(phase_request())

    assert type(raised.value) is error
    assert raised.value.__cause__ is not None  # raised ``from`` the SDK error
    assert len(standin.message_requests) == 1


def test_rate_limit_is_retried_by_the_sdk_honouring_retry_after(standin: StandIn) -> None:
    standin.script(Answer.rate_limited(retry_after="0"))
    model = ClaudeModel("anthropic", settings=settings_for(standin, sdk_max_retries=1))

    response = model.call(phase_request())

    assert response.tool_input is not None
    assert [r.headers["x-stainless-retry-count"] for r in standin.message_requests] == ["0", "1"]


def test_rate_limit_outliving_the_sdk_retries_carries_retry_after(standin: StandIn) -> None:
    standin.script(Answer.rate_limited("0"), Answer.rate_limited("0"))
    model = ClaudeModel("anthropic", settings=settings_for(standin, sdk_max_retries=1))

    with pytest.raises(ModelRateLimited) as raised:
        model.call(phase_request())

    assert raised.value.details["retry_after"] == "0" and raised.value.details["status"] == 429


def test_an_answer_slower_than_the_timeout_is_a_model_timeout(standin: StandIn) -> None:
    standin.script(Answer.slow(3.0))
    model = ClaudeModel("anthropic", settings=settings_for(standin, request_timeout_seconds=0.5))

    with pytest.raises(ModelTimeout):
        model.call(phase_request())


def test_a_stream_still_trickling_at_the_deadline_is_a_truncation_not_a_timeout(standin: StandIn) -> None:
    # Every event arrives within the SDK's read timeout, but the whole answer takes longer: a retry
    # would stream as long again, so it is permanent, like an answer cut at max_tokens (issue 12).
    standin.script(Answer.valid(gap=0.3))
    model = ClaudeModel("anthropic", settings=settings_for(standin, request_timeout_seconds=1.0))

    with pytest.raises(ModelOutputTruncated, match="still streaming at the call's deadline"):
        model.call(phase_request())


def test_max_tokens_is_retried_once_with_double_budget_and_usage_summed(standin: StandIn) -> None:
    standin.script(Answer.truncated())
    model = ClaudeModel("anthropic", settings=settings_for(standin))

    response = model.call(phase_request(max_tokens=16000))

    assert [r.body["max_tokens"] for r in standin.message_requests] == [16000, 32000]
    served = [r.usage for r in standin.message_requests]
    assert response.tool_input is not None
    assert response.usage.output_tokens == sum(u["output_tokens"] for u in served)
    assert response.usage.input_tokens == sum(u["input_tokens"] for u in served)
    assert response.usage.cache_read_input_tokens == sum(u["cache_read_input_tokens"] for u in served)
    assert response.usage.stop_reason == "tool_use"


def test_max_tokens_twice_is_truncated_with_the_usage_of_both_calls(standin: StandIn) -> None:
    standin.script(Answer.truncated(), Answer.truncated())
    model = ClaudeModel("anthropic", settings=settings_for(standin))

    with pytest.raises(ModelOutputTruncated) as raised:
        model.call(phase_request(max_tokens=40000))

    assert [r.body["max_tokens"] for r in standin.message_requests] == [40000, 64000]  # capped
    served = [r.usage for r in standin.message_requests]
    assert raised.value.details["usage"]["output_tokens"] == sum(u["output_tokens"] for u in served)


def test_a_refusal_raises_model_refused(standin: StandIn) -> None:
    standin.script(Answer.refusal())
    model = ClaudeModel("anthropic", settings=settings_for(standin))

    with pytest.raises(ModelRefused) as raised:
        model.call(phase_request())

    assert raised.value.details["usage"]["stop_reason"] == "refusal"


def test_a_text_answer_without_tool_use_returns_no_tool_input(standin: StandIn) -> None:
    standin.script(Answer.text_only("A world of salt and iron."))
    model = ClaudeModel("anthropic", settings=settings_for(standin))

    response = model.call(phase_request())

    assert response.tool_input is None and response.tool_use_id is None
    assert response.assistant_content == [{"type": "text", "text": "A world of salt and iron."}]
    assert response.usage.stop_reason == "end_turn" and response.usage.output_tokens > 0


@pytest.mark.parametrize("key", [None, "", "   "])
def test_missing_or_empty_api_key_is_a_configuration_error_before_any_request(
    standin: StandIn, key: str | None
) -> None:
    settings = settings_for(standin, anthropic_api_key=None if key is None else SecretStr(key))

    with pytest.raises(ConfigurationError) as raised:
        ClaudeModel("anthropic", settings=settings).call(phase_request())

    assert "WORLDGEN_ANTHROPIC_API_KEY" in str(raised.value) and "ANTHROPIC_API_KEY" in str(raised.value)
    assert "WORLDGEN_ANTHROPIC_API_KEY_SECRET_ARN" in str(raised.value)
    assert standin.requests == []


@mock_aws
def test_api_key_is_read_from_the_secrets_manager_secret(standin: StandIn) -> None:
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    arn = secrets.create_secret(Name="worldgen/anthropic", SecretString='{"api_key": "sk-ant-secret"}')["ARN"]
    settings = settings_for(standin, anthropic_api_key=None, anthropic_api_key_secret_arn=arn)
    model = ClaudeModel("anthropic", settings=settings)

    model.call(phase_request())
    model.call(phase_request())

    for sent in standin.message_requests:
        assert "sk-ant-secret" in sent.headers.get("x-api-key", "") + sent.headers.get("authorization", "")


@mock_aws
def test_an_empty_secret_is_a_configuration_error_before_any_request(standin: StandIn) -> None:
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    arn = secrets.create_secret(Name="worldgen/anthropic-empty", SecretString=" ")["ARN"]
    settings = settings_for(standin, anthropic_api_key=None, anthropic_api_key_secret_arn=arn)

    with pytest.raises(ConfigurationError, match="WORLDGEN_ANTHROPIC_API_KEY_SECRET_ARN"):
        ClaudeModel("anthropic", settings=settings).call(phase_request())

    assert standin.requests == []


def test_errors_are_worldgen_errors_with_a_json_safe_payload(standin: StandIn) -> None:
    standin.script(Answer.overloaded())
    model = ClaudeModel("anthropic", settings=settings_for(standin))

    with pytest.raises(WorldgenError) as raised:
        model.call(phase_request())

    assert raised.value.details["status"] == 529 and raised.value.details["model"] == "claude-sonnet-4-6"
    assert raised.value.details["error_type"] == "overloaded_error"
