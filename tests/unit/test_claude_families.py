"""The model family table: one entry per family, read by pricing, requests and configuration."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from worldgen.errors import ConfigurationError
from worldgen.model.factory import check_model_settings
from worldgen.model.families import (
    FAMILIES,
    FORCED_TOOL,
    PRICES_AS_OF,
    STRUCTURED_OUTPUT,
    ModelFamily,
    UnknownModel,
    family_of,
)
from worldgen.phases import PHASES
from worldgen.settings import Settings


@pytest.mark.parametrize(
    ("model", "family", "mode"),
    [
        ("claude-sonnet-5-5", "claude-sonnet-5-5", STRUCTURED_OUTPUT),
        ("anthropic.claude-sonnet-5-5", "claude-sonnet-5-5", STRUCTURED_OUTPUT),
        ("eu.anthropic.claude-sonnet-5-5", "claude-sonnet-5-5", STRUCTURED_OUTPUT),
        ("global.anthropic.claude-sonnet-5-5", "claude-sonnet-5-5", STRUCTURED_OUTPUT),
        ("claude-sonnet-4-6", "claude-sonnet-4-6", FORCED_TOOL),
        ("us.anthropic.claude-sonnet-4-6", "claude-sonnet-4-6", FORCED_TOOL),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5", FORCED_TOOL),
        ("apac.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5", FORCED_TOOL),
    ],
)
def test_api_and_bedrock_ids_name_their_family_and_its_request_mode(model: str, family: str, mode: str) -> None:
    assert family_of(model).name == family
    assert family_of(model).request_mode == mode


def test_only_families_that_reject_a_forced_tool_use_structured_outputs() -> None:
    structured = {name for name, f in FAMILIES.items() if f.request_mode == STRUCTURED_OUTPUT}

    assert structured == {"claude-sonnet-5-5"}
    sonnet = FAMILIES["claude-sonnet-5-5"]
    assert sonnet.thinking == {"type": "between_tools"} and sonnet.effort in ("low", "medium", "high")
    assert "disabled" not in sonnet.thinking_types and "enabled" not in sonnet.thinking_types
    assert sonnet.max_output_tokens == 128_000


def test_a_family_entry_refuses_settings_it_does_not_accept() -> None:
    price = FAMILIES["claude-sonnet-4-6"].price
    with pytest.raises(ValueError, match="forced tool cannot be combined with thinking"):
        ModelFamily("x", FORCED_TOOL, 1000, price, None, ("adaptive",), thinking={"type": "adaptive"})
    with pytest.raises(ValueError, match="not one it accepts"):
        ModelFamily("x", STRUCTURED_OUTPUT, 1000, price, None, ("adaptive", "between_tools"),
                    thinking={"type": "disabled"})  # fmt: skip
    with pytest.raises(ValueError, match="effort 'max'"):
        ModelFamily("x", STRUCTURED_OUTPUT, 1000, price, None, efforts=("low",), effort="max")


def test_the_prices_are_dated() -> None:
    assert PRICES_AS_OF == "2026-11-28"


def test_every_registry_default_model_is_known() -> None:
    for phase in PHASES:
        family_of(phase.model)


def test_an_unknown_model_is_refused_naming_every_known_family() -> None:
    with pytest.raises(UnknownModel) as raised:
        family_of("claude-imaginary-9")

    listed = str(raised.value).split("known model families: ")[1].split(" (")[0].split(", ")
    assert listed == [name for name, family in FAMILIES.items() if family.retired is None]


@pytest.mark.parametrize(
    "values",
    [{"default_model": "claude-imaginary-9"}, {"phase_models": {"3C": "gpt-9"}},
     {"default_model": "claude-sonnet-5-5", "phase_models": {"1A": "claude-haiku-9"}}],
)  # fmt: skip
def test_an_unknown_model_is_refused_where_the_model_is_made(values: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError) as raised:
        check_model_settings(Settings(**values))  # type: ignore[arg-type]

    message = str(raised.value)
    assert "WORLDGEN_DEFAULT_MODEL" in message or "WORLDGEN_PHASE_MODELS[" in message
    assert "claude-sonnet-5-5" in message and "claude-sonnet-4-6" in message
    assert "\n" not in message


def test_an_unknown_model_from_the_environment_is_refused_by_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLDGEN_PHASE_MODELS", json.dumps({"3C": "claude-haiku-9"}))

    with pytest.raises(ConfigurationError, match=r"WORLDGEN_PHASE_MODELS\[3C\]: unknown Claude model 'claude-haiku-9'"):
        check_model_settings(Settings())


def test_settings_accept_known_api_and_bedrock_ids_and_treat_empty_as_unset() -> None:
    settings = Settings(default_model="claude-sonnet-5-5", phase_models={"3C": "eu.anthropic.claude-haiku-4-5"})
    check_model_settings(settings)

    assert settings.default_model == "claude-sonnet-5-5"
    assert settings.phase_models == {"3C": "eu.anthropic.claude-haiku-4-5"}
    assert Settings(default_model="").default_model is None


def test_pydantic_does_not_wrap_the_configuration_error() -> None:
    try:
        check_model_settings(Settings(default_model="nope"))
    except ValidationError:  # pragma: no cover - the failure this test guards against
        pytest.fail("an unknown model surfaced as a pydantic ValidationError")
    except ConfigurationError:
        pass


def test_the_cdk_environments_refuse_an_unknown_model_and_use_known_ones() -> None:
    from infra.config import EnvironmentConfig, load_environments

    valid = {
        "name": "dev", "account": "111111111111", "region": "eu-west-1", "model_provider": "anthropic",
        "default_model": "claude-sonnet-5-5",
        "database_secret_arn": "arn:aws:secretsmanager:eu-west-1:111111111111:secret:worldgen/db-AbCdEf",
    }  # fmt: skip
    EnvironmentConfig.model_validate(valid)
    for bad in ({"default_model": "claude-sonnet-9"}, {"phase_models": {"3C": "claude-haiku-9"}}):
        with pytest.raises(ValidationError, match="unknown Claude model") as raised:
            EnvironmentConfig.model_validate({**valid, **bad})
        assert "claude-sonnet-5-5" in str(raised.value)
    environments = load_environments()
    for environment in environments.values():
        family_of(environment.default_model)
    assert environments["prod"].default_model == "claude-sonnet-5-5"


def test_the_cli_reports_an_unknown_model_in_one_line_before_any_work(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from worldgen.settings import get_settings
    from worldgen.tools.cli import main

    monkeypatch.setenv("WORLDGEN_DEFAULT_MODEL", "claude-imaginary-9")
    get_settings.cache_clear()
    try:
        status = main(["demo", "--model", "anthropic"])
    finally:
        monkeypatch.delenv("WORLDGEN_DEFAULT_MODEL")
        get_settings.cache_clear()

    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("configuration error: WORLDGEN_DEFAULT_MODEL: unknown Claude model 'claude-imaginary-9'")


@pytest.mark.parametrize(
    ("model", "retired"),
    [("claude-sonnet-4-5", "2026-11-30"), ("claude-sonnet-4-20250514", "2026-06-15"),
     ("us.anthropic.claude-opus-4-20250514-v1:0", "2026-06-15")],
)  # fmt: skip
def test_a_retired_model_is_refused_in_one_line_with_its_retirement_date(model: str, retired: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        check_model_settings(Settings(default_model=model))

    message = str(raised.value)
    assert f"retired on {retired}" in message and "\n" not in message
    assert "claude-sonnet-5-5" in message and "claude-sonnet-4-5," not in message


def test_a_retired_model_keeps_its_price_for_the_ledger_rows_it_left() -> None:
    assert FAMILIES["claude-sonnet-4-5"].price.output == 15.00


def test_families_that_think_by_default_are_sent_thinking_disabled_with_their_forced_tool() -> None:
    for name in ("claude-sonnet-5", "claude-opus-5"):
        assert FAMILIES[name].request_mode == FORCED_TOOL and FAMILIES[name].thinking == {"type": "disabled"}
    assert FAMILIES["claude-sonnet-4-6"].thinking is None


def test_the_sonnet_5_tokenizer_counts_more_tokens_for_the_same_text() -> None:
    assert FAMILIES["claude-sonnet-5-5"].tokenizer_factor == FAMILIES["claude-sonnet-5"].tokenizer_factor == 1.3
    assert FAMILIES["claude-sonnet-4-6"].tokenizer_factor == 1.0
