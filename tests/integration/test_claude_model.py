"""ClaudeModel driving the real anthropic SDK over HTTP against the Messages API stand-in."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from pydantic import SecretStr
from support.standin import Answer, StandIn, forbidden_settings

from worldgen import outline
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
from worldgen.model.claude import ClaudeModel, output_schema
from worldgen.model.pricing import cost_usd
from worldgen.phases import get_phase
from worldgen.schema.tools import load_tool, strict_variant
from worldgen.settings import Settings

SONNET_5_5 = "claude-sonnet-5-5"
FAMILIES = ["claude-sonnet-4-6", SONNET_5_5]

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
    # The stand-in answers such a request with a 400 already; this names the culprit.
    assert [forbidden_settings(r.body) for r in server.message_requests if forbidden_settings(r.body)] == []


def settings_for(standin: StandIn, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "model_provider": "anthropic",
        "anthropic_api_key": SecretStr("sk-ant-test"),
        "anthropic_base_url": standin.url,
        "sdk_max_retries": 0,
        "request_timeout_seconds": 5.0,
        "default_model": "claude-sonnet-4-6",  # the forced-tool dialect unless a test names a model
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


@pytest.mark.parametrize("family", FAMILIES)
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
        (Answer.refusal(), ModelRefused),
        (Answer.pause_turn(), ModelUnavailable),
        (Answer.context_window_exceeded(), ModelOutputTruncated),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else f"{v.kind}-{v.status}-{v.error_type}",
)
def test_api_failures_and_stop_reasons_map_to_the_error_taxonomy(
    standin: StandIn, answer: Answer, error: type[Exception], family: str
) -> None:
    standin.script(answer)
    model = ClaudeModel("anthropic", settings=settings_for(standin, default_model=family))

    with pytest.raises(error) as raised:
        model.call(phase_request())

    assert type(raised.value) is error
    if answer.kind == "error" or answer.kind == "stream_error":
        assert raised.value.__cause__ is not None  # raised ``from`` the SDK error
    else:  # a stop reason: the tokens it cost ride along for the ledger
        assert isinstance(raised.value, WorldgenError)
        assert raised.value.details["usage"]["output_tokens"] > 0
    assert len(standin.message_requests) == 1


def test_rate_limit_is_retried_honouring_retry_after(standin: StandIn) -> None:
    standin.script(Answer.rate_limited(retry_after="0"))
    model = ClaudeModel("anthropic", settings=settings_for(standin, sdk_max_retries=1))

    response = model.call(phase_request())

    assert response.tool_input is not None and len(standin.message_requests) == 2


def test_a_rate_limit_wait_does_not_eat_the_answers_deadline(standin: StandIn) -> None:
    # The deadline counts from the answer's first byte: a 1 s retry-after before an answer with a
    # 0.8 s deadline still gets the whole answer.
    standin.script(Answer.rate_limited(retry_after="1"))
    model = ClaudeModel("anthropic", settings=settings_for(standin, sdk_max_retries=1))

    response = model.call(dataclasses.replace(phase_request(), deadline_seconds=0.8))

    assert response.tool_input is not None and len(standin.message_requests) == 2


def test_a_retry_after_beyond_the_cap_is_not_waited_in_the_phase(standin: StandIn) -> None:
    standin.script(Answer.rate_limited(retry_after="3600"))
    settings = settings_for(standin, sdk_max_retries=3, rate_limit_max_wait_seconds=30)
    model = ClaudeModel("anthropic", settings=settings)

    with pytest.raises(ModelRateLimited) as raised:
        model.call(phase_request())

    assert len(standin.message_requests) == 1  # no sleep, no retry: the state machine's throttling retrier waits
    assert raised.value.details["retry_after"] == "3600" and raised.value.details["retry_wait_capped"] == 30


def test_a_family_whose_tokenizer_counts_more_gets_a_budget_as_much_larger(standin: StandIn) -> None:
    model = ClaudeModel("anthropic", settings=settings_for(standin, default_model=SONNET_5_5))

    model.call(phase_request(max_tokens=10_000))

    assert standin.message_requests[0].body["max_tokens"] == 13_000


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


# -- Sonnet 5.5: structured outputs ------------------------------------------------------------


def test_sonnet_5_5_is_asked_by_structured_output_and_its_json_read_from_the_text_block(standin: StandIn) -> None:
    standin.script(Answer.valid(thinking="Plan: two calendars, one plane."))
    model = ClaudeModel("anthropic", settings=settings_for(standin, default_model=SONNET_5_5))
    request = phase_request()

    response = model.call(request)

    (sent,) = standin.message_requests
    body = sent.body
    assert body["model"] == SONNET_5_5 and body["stream"] is True
    assert "tools" not in body and "tool_choice" not in body
    assert body["output_config"] == {
        "format": {"type": "json_schema", "schema": output_schema(request.tool)},
        "effort": "medium",
    }
    assert body["thinking"] == {"type": "between_tools"}
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert response.request_mode == "structured_output" and response.tool_use_id is None
    assert response.tool_input is not None and set(response.tool_input) == set(request.phase.tables)
    thinking, text = response.assistant_content
    assert thinking["type"] == "thinking" and thinking["thinking"] == "Plan: two calendars, one plane."
    assert text["type"] == "text" and response.tool_input == json.loads(text["text"])


def test_the_calls_of_a_phase_in_parts_on_sonnet_5_5_share_one_cached_prefix(standin: StandIn) -> None:
    model = ClaudeModel("anthropic", settings=settings_for(standin, default_model=SONNET_5_5))
    whole = phase_request()
    first = outline.table_part_request(whole, ("geography_regions",))
    second = outline.table_part_request(whole, ("planes", "celestial_bodies"))

    responses = [model.call(first), model.call(second)]

    bodies = [r.body for r in standin.message_requests]
    assert bodies[0]["tools"] == bodies[1]["tools"] and bodies[0]["system"] == bodies[1]["system"]
    assert all("tool_choice" not in b and "format" not in b["output_config"] for b in bodies)  # the model chooses
    assert "geography_regions" in json.dumps(bodies[0]["messages"][-1])  # the part is named last
    usages = [r.usage for r in responses]
    assert usages[0].cache_creation_input_tokens > 0 and usages[1].cache_read_input_tokens > 0
    assert usages[1].cache_creation_input_tokens == 0
    assert all(r.tool_input is not None and r.tool_use_id for r in responses)


def test_sonnet_5_5_on_bedrock_ids_is_recognised_as_structured_output(standin: StandIn) -> None:
    model = ClaudeModel("anthropic", settings=settings_for(standin, default_model="eu.anthropic.claude-sonnet-5-5"))

    response = model.call(phase_request())

    assert "output_config" in standin.message_requests[0].body and response.tool_input is not None


def test_sonnet_5_5_usage_caches_schema_and_system_and_is_priced(standin: StandIn) -> None:
    model = ClaudeModel("anthropic", settings=settings_for(standin, default_model=SONNET_5_5))

    first = model.call(phase_request()).usage
    second = model.call(phase_request()).usage

    served = [r.usage for r in standin.message_requests]
    assert (first.input_tokens, first.output_tokens) == (served[0]["input_tokens"], served[0]["output_tokens"])
    assert first.cache_creation_input_tokens > 512 and first.cache_read_input_tokens == 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert first.cost_usd == cost_usd(SONNET_5_5, first) > second.cost_usd > 0
    assert (first.model, first.stop_reason) == (SONNET_5_5, "end_turn")


def test_sonnet_5_5_max_tokens_is_retried_with_double_budget_up_to_its_limit(standin: StandIn) -> None:
    standin.script(Answer.truncated(), Answer.truncated())
    model = ClaudeModel("anthropic", settings=settings_for(standin, default_model=SONNET_5_5))

    with pytest.raises(ModelOutputTruncated) as raised:
        model.call(phase_request(max_tokens=50_000))

    # 50K of Sonnet 4.6's tokens are 65K of Sonnet 5.5's; then doubled up to its limit
    assert [r.body["max_tokens"] for r in standin.message_requests] == [65_000, 128_000]
    assert raised.value.details["usage"]["output_tokens"] == sum(
        r.usage["output_tokens"] for r in standin.message_requests
    )


@pytest.mark.parametrize(
    ("answer", "problem"),
    [(Answer.text_only("A world of salt and iron."), "not valid JSON"),
     (Answer.text_only("[1, 2]"), "JSON list, not one object"),
     (Answer.text_only(""), "no text")],
)  # fmt: skip
def test_sonnet_5_5_answer_that_is_not_one_json_object_has_no_rows_and_says_why(
    standin: StandIn, answer: Answer, problem: str
) -> None:
    standin.script(answer)
    model = ClaudeModel("anthropic", settings=settings_for(standin, default_model=SONNET_5_5))

    response = model.call(phase_request())

    assert response.tool_input is None and response.problem is not None and problem in response.problem


def test_sonnet_5_5_stream_still_trickling_at_the_deadline_is_a_truncation(standin: StandIn) -> None:
    # As for tools: a retry would stream as long again (issue 12), so it is permanent.
    standin.script(Answer.valid(gap=0.3, thinking="thinking slowly"))
    settings = settings_for(standin, default_model=SONNET_5_5, request_timeout_seconds=0.5)

    with pytest.raises(ModelOutputTruncated, match="still streaming at the call's deadline"):
        ClaudeModel("anthropic", settings=settings).call(phase_request())


# -- the stand-in's guard: what Sonnet 5.5 answers with a 400 ----------------------------------

FORBIDDEN: list[tuple[str, dict[str, Any]]] = [
    ("forced tool_choice", {"tool_choice": {"type": "tool", "name": "record_phase_1a"}}),
    ("forced tool_choice", {"tool_choice": {"type": "any"}}),
    ("thinking budget", {"thinking": {"type": "enabled", "budget_tokens": 2048}}),
    ('thinking {"type": "disabled"}', {"thinking": {"type": "disabled"}}),
    ("sampling parameter temperature", {"temperature": 0.5}),
    ("sampling parameter top_p", {"top_p": 0.9}),
    ("sampling parameter top_k", {"top_k": 40}),
    ("assistant prefill", {"messages": [*PROMPT, {"role": "assistant", "content": "{"}]}),
]


@pytest.mark.parametrize(("reason", "extra"), FORBIDDEN, ids=[f"{r}-{i}" for i, (r, _) in enumerate(FORBIDDEN)])
def test_the_stand_in_answers_400_to_each_setting_sonnet_5_5_rejects_and_accepts_it_on_4_6(
    reason: str, extra: dict[str, Any]
) -> None:
    import anthropic

    tool = load_tool(get_phase("1A"))
    # extra_body: the installed SDK no longer takes sampling parameters as arguments at all.
    base: dict[str, Any] = {"max_tokens": 1000, "messages": PROMPT, "extra_body": {"tools": [tool], **extra}}
    with StandIn() as server:
        client = anthropic.Anthropic(api_key="sk-ant-test", base_url=server.url, max_retries=0)
        with pytest.raises(anthropic.BadRequestError, match=reason.split(" {")[0]):
            client.messages.create(model=SONNET_5_5, **base)
        if "thinking" not in extra:  # 4.6 accepts the rest; thinking with a forced tool is another matter
            client.messages.create(model="claude-sonnet-4-6", **base)
        rejected, *accepted = server.message_requests

    assert any(reason in r for r in rejected.rejected)
    assert all(r.rejected == [] for r in accepted)


def test_the_stand_in_rejects_a_schema_outside_structured_outputs_limits(standin: StandIn) -> None:
    import anthropic

    client = anthropic.Anthropic(api_key="sk-ant-test", base_url=standin.url, max_retries=0)
    raw = load_tool(get_phase("1A"))["input_schema"]  # still carries maxItems / minimum

    with pytest.raises(anthropic.BadRequestError, match="unsupported keyword maxItems"):
        client.messages.create(  # type: ignore[call-overload]
            model=SONNET_5_5, max_tokens=1000, messages=PROMPT,
            output_config={"format": {"type": "json_schema", "schema": raw}},
        )  # fmt: skip
    stripped = strict_variant({"input_schema": raw})["input_schema"]
    client.messages.create(  # type: ignore[call-overload]
        model=SONNET_5_5, max_tokens=1000, messages=PROMPT,
        output_config={"format": {"type": "json_schema", "schema": stripped}},
    )  # fmt: skip


def test_the_registry_default_is_sonnet_5_5_by_structured_output(standin: StandIn) -> None:
    model = ClaudeModel("anthropic", settings=settings_for(standin, default_model=None))

    model.call(phase_request())

    (sent,) = standin.message_requests
    assert sent.body["model"] == get_phase("1A").model == SONNET_5_5
    assert "output_config" in sent.body and "tool_choice" not in sent.body


def test_a_400_to_a_structured_output_request_names_the_per_phase_fallback(standin: StandIn) -> None:
    standin.script(Answer.error(400, "invalid_request_error"))
    model = ClaudeModel("anthropic", settings=settings_for(standin, default_model=SONNET_5_5))

    with pytest.raises(ConfigurationError, match="WORLDGEN_PHASE_MODELS") as raised:
        model.call(phase_request())

    assert raised.value.details["status"] == 400 and "\n" not in str(raised.value)
