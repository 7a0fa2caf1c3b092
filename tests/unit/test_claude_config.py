"""ClaudeModel configuration: model per phase, Bedrock ids, request shape, keys (no network)."""

from __future__ import annotations

import json
import sys

import pytest
from pydantic import SecretStr

from worldgen.db.context import PhaseContext
from worldgen.errors import ConfigurationError
from worldgen.model.base import ModelRequest
from worldgen.model.claude import ClaudeModel, bedrock_model_id, model_family, model_for_phase, request_params
from worldgen.phases import get_phase
from worldgen.schema.tools import load_tool, strict_variant
from worldgen.settings import Settings


def test_phase_models_override_the_default_model() -> None:
    settings = Settings(default_model="claude-sonnet-4-6", phase_models={"3C": "claude-haiku-4-5"})

    assert model_for_phase(get_phase("3C"), settings) == "claude-haiku-4-5"
    assert model_for_phase(get_phase("1A"), settings) == "claude-sonnet-4-6"


@pytest.mark.parametrize(
    ("model", "region", "expected"),
    [
        ("claude-sonnet-4-5", "us-east-1", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("claude-haiku-4-5", "eu-west-1", "eu.anthropic.claude-haiku-4-5-20251001-v1:0"),
        ("claude-opus-4-1", "ap-northeast-1", "apac.anthropic.claude-opus-4-1-20250805-v1:0"),
        ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "us-east-1",
         "global.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("claude-sonnet-5-5", "eu-central-1", "anthropic.claude-sonnet-5-5"),  # the Messages-API endpoint
        ("claude-opus-4-6", "sa-east-1", "global.anthropic.claude-opus-4-6-v1"),
    ],
)  # fmt: skip
def test_anthropic_ids_map_to_bedrock_inference_profiles(model: str, region: str, expected: str) -> None:
    assert bedrock_model_id(model, region) == expected


def test_a_model_without_a_bedrock_id_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="WORLDGEN_DEFAULT_MODEL") as raised:
        bedrock_model_id("claude-imaginary-9", "us-east-1")

    assert "claude-sonnet-5-5" in str(raised.value)


def test_request_params_put_cache_breakpoints_on_tool_and_system_only() -> None:
    phase = get_phase("2A")
    tool = {"name": "record_phase_2a", "input_schema": {"type": "object"}, "strict": True}
    context = PhaseContext("2A", {}, [], {}, {})
    messages = [{"role": "user", "content": "go"}]
    request = ModelRequest(phase, "system text", messages, tool, 16000, context)

    params = request_params(request, "claude-haiku-4-5", 16000)

    assert params["tools"] == [{**tool, "cache_control": {"type": "ephemeral"}}]
    assert params["system"] == [{"type": "text", "text": "system text", "cache_control": {"type": "ephemeral"}}]
    assert params["messages"] is messages and "cache_control" not in str(messages)
    assert params["tool_choice"]["type"] == "tool" and params["tool_choice"]["name"] == "record_phase_2a"
    assert tool.get("cache_control") is None  # the request's tool is not mutated


def test_sonnet_5_5_params_ask_for_structured_output_without_any_setting_it_rejects() -> None:
    phase = get_phase("1A")
    tool = load_tool(phase)
    request = ModelRequest(phase, "system text", [{"role": "user", "content": "go"}], tool, 16000,
                           PhaseContext("1A", {}, [], {}, {}))  # fmt: skip

    params = request_params(request, "claude-sonnet-5-5", 16000)

    assert "tools" not in params and "tool_choice" not in params
    assert not {"temperature", "top_p", "top_k"} & set(params)
    assert params["thinking"] == {"type": "between_tools"}
    assert params["output_config"]["effort"] == "medium"
    output_format = params["output_config"]["format"]
    assert output_format == {"type": "json_schema", "schema": strict_variant(tool)["input_schema"]}
    assert "maxItems" not in json.dumps(output_format) and "minimum" not in json.dumps(output_format)
    assert params["messages"][-1]["role"] == "user"  # no assistant prefill
    *_, note = params["system"]
    assert params["system"][0] == {"type": "text", "text": "system text"}
    assert note["cache_control"] == {"type": "ephemeral"} and "record_phase_1a" in note["text"]
    assert "cache_control" not in json.dumps(tool)  # the request's tool is not mutated


def test_forced_tool_families_keep_the_forced_tool_and_send_no_thinking_or_output_config() -> None:
    phase = get_phase("1A")
    request = ModelRequest(phase, "s", [{"role": "user", "content": "go"}], load_tool(phase), 16000,
                           PhaseContext("1A", {}, [], {}, {}))  # fmt: skip

    for model in ("claude-sonnet-4-6", "claude-haiku-4-5", "eu.anthropic.claude-sonnet-4-6"):
        params = request_params(request, model, 16000)
        assert params["tool_choice"]["type"] == "tool"
        assert "thinking" not in params and "output_config" not in params


def test_an_unknown_model_is_a_configuration_error_before_any_request() -> None:
    phase = get_phase("1A")
    request = ModelRequest(phase, "s", [], load_tool(phase), 100, PhaseContext("1A", {}, [], {}, {}))

    with pytest.raises(ConfigurationError, match="unknown Claude model 'claude-imaginary-9'"):
        request_params(request, "claude-imaginary-9", 100)


def test_no_key_and_no_secret_fails_in_the_constructor() -> None:
    with pytest.raises(ConfigurationError, match="WORLDGEN_ANTHROPIC_API_KEY_SECRET_ARN"):
        ClaudeModel("anthropic", settings=Settings(anthropic_api_key=SecretStr("")))


def test_bedrock_needs_no_api_key_and_builds_its_client_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    model = ClaudeModel("bedrock", settings=Settings(bedrock_region="eu-central-1", sdk_max_retries=1))

    assert model._client is None and model._bedrock_clients == {}
    client = model.client_for(model_family("claude-sonnet-4-6"))
    mantle = model.client_for(model_family("claude-sonnet-5-5"))

    assert type(client).__name__ == "AnthropicBedrock" and type(mantle).__name__ == "AnthropicBedrockMantle"
    # ClaudeModel retries itself, with retry-after capped: the SDK would sleep any retry-after
    assert client.max_retries == mantle.max_retries == 0 and getattr(client, "aws_region", None) == "eu-central-1"
    assert model.model_id(get_phase("1A")) == "anthropic.claude-sonnet-5-5"


def test_importing_the_module_does_not_import_the_sdk() -> None:
    import subprocess

    code = "import sys, worldgen.model.claude; print('anthropic' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_a_phase_in_parts_on_sonnet_5_5_shares_its_tools_unforced_and_not_strict() -> None:
    from worldgen import outline

    phase = get_phase("1A")
    context = PhaseContext("1A", {"name": "x"}, [], {}, {})
    whole = ModelRequest(phase, "system", [{"role": "user", "content": "go"}], strict_variant(load_tool(phase)),
                         5000, context)  # fmt: skip
    parts = [outline.table_part_request(whole, tables) for tables in (("planes",), ("races", "feats"))]

    bodies = [request_params(part, "claude-sonnet-5-5", 5000) for part in parts]

    assert bodies[0]["tools"] == bodies[1]["tools"] and bodies[0]["system"] == bodies[1]["system"]
    assert all("tool_choice" not in b and "strict" not in t for b in bodies for t in b["tools"])
    assert all("format" not in b["output_config"] for b in bodies)
