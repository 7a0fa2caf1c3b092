"""Synth refuses configurations and inputs that would deploy a broken stack."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from pydantic import ValidationError

from infra import paths
from infra.components.functions import settings_environment
from infra.components.layers import WorldgenLayers
from infra.components.state_machine import definition_substitutions, profile_functions
from infra.config import EnvironmentConfig, load_environments
from worldgen.phases import PROFILES

pytestmark = pytest.mark.xdist_group("infra")

VALID = {
    "name": "dev",
    "account": "111111111111",
    "region": "eu-west-1",
    "model_provider": "anthropic",
    "default_model": "claude-sonnet-4-6",
    "database_secret_arn": "arn:aws:secretsmanager:eu-west-1:111111111111:secret:worldgen/db-AbCdEf",
}


def test_committed_environments_file_defines_dev_staging_and_prod() -> None:
    assert set(load_environments()) == {"dev", "staging", "prod"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("database_secret_arn", "arn:aws:secretsmanager:eu-west-1:111111111111:secret:worldgen/db"),
        ("model_provider", "openai"),
        ("log_retention_days", 10),
        ("phase_models", {"9Z": "claude-haiku-4-5"}),
        ("account", "12345"),
        ("default_model", "claude-sonnet-4-5"),  # retired 2026-11-30
        ("output_tokens_per_minute", 0),
        ("default_max_cost_usd", -1),
    ],
)
def test_environment_config_rejects_a_value_that_would_synthesize_a_broken_stack(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as raised:
        EnvironmentConfig.model_validate({**VALID, field: value})
    # That field and only it: by its location, or named by a validator that checks fields together.
    failed = [str(error["loc"][0]) if error["loc"] else str(error["msg"]) for error in raised.value.errors()]
    assert failed and all(field in where for where in failed), failed


def _asl_with(tmp_path: Path, names: list[str]) -> Path:
    asl = tmp_path / "generation.asl.json"
    asl.write_text(json.dumps({"States": {n: {"Parameters": {"FunctionName": f"${{{n}}}"}} for n in names}}))
    return asl


def test_substitutions_fail_when_a_placeholder_has_no_value(tmp_path: Path) -> None:
    asl = _asl_with(tmp_path, ["AArn", "BArn"])
    with pytest.raises(ValueError, match=r"placeholders without a value \['BArn'\]"):
        definition_substitutions(asl, {"AArn": "arn:a"})


def test_substitutions_fail_when_a_value_has_no_placeholder(tmp_path: Path) -> None:
    asl = _asl_with(tmp_path, ["AArn"])
    with pytest.raises(ValueError, match=r"values without a placeholder \['ZArn'\]"):
        definition_substitutions(asl, {"AArn": "arn:a", "ZArn": "arn:z"})


@pytest.mark.parametrize("profile", PROFILES)
def test_committed_asl_placeholders_are_exactly_the_state_machine_functions_of_its_profile(profile: str) -> None:
    values = {spec.placeholder: "arn" for spec in profile_functions(profile)}
    assert definition_substitutions(paths.ASL_PATHS[profile], values) == values
    assert {spec.phase for spec in profile_functions(profile) if spec.phase} == {p.id for p in PROFILES[profile]}


def test_settings_environment_refuses_a_name_the_functions_would_ignore() -> None:
    assert settings_environment(model_provider="bedrock", bedrock_region=None) == {"WORLDGEN_MODEL_PROVIDER": "bedrock"}
    with pytest.raises(ValueError, match="modle_provider"):
        settings_environment(modle_provider="bedrock")


def test_synth_without_a_built_dependencies_layer_fails_and_names_make_layers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paths, "DEPENDENCIES_LAYER_DIR", tmp_path)
    stack = cdk.Stack(cdk.App())
    with pytest.raises(FileNotFoundError, match="make layers"):
        WorldgenLayers(stack, "Layers", skip_dependencies=False)


NETWORK = {
    "vpc_id": "vpc-0123456789abcdef0",
    "availability_zones": ["eu-west-1a"],
    "subnet_ids": ["subnet-0123456789abcdef0"],
    "security_group_ids": ["sg-0123456789abcdef0"],
}


def test_reserving_concurrency_without_stating_the_quota_fails_naming_the_quota_code() -> None:
    with pytest.raises(ValidationError, match=r"lambda_concurrency_quota is required.*at least 220.*L-B99A9384"):
        EnvironmentConfig.model_validate({**VALID, "phase_reserved_concurrency": 10})


def test_reservations_that_leave_fewer_than_100_unreserved_fail_with_the_quota_to_request() -> None:
    config = {**VALID, "phase_reserved_concurrency": 25, "service_reserved_concurrency": 10}
    # 12 phase functions (9 full, 3 quick) x 25 + 4 service functions x 10, and 100 unreserved
    with pytest.raises(ValidationError, match=r"quota 300 is below the 440 .*request an increase of quota L-B99A9384"):
        EnvironmentConfig.model_validate({**config, "lambda_concurrency_quota": 300})
    assert EnvironmentConfig.model_validate({**config, "lambda_concurrency_quota": 440}).reserved_concurrency == 340


def test_the_anthropic_api_cannot_be_reached_through_vpc_endpoints() -> None:
    with pytest.raises(ValidationError, match="only through a NAT gateway"):
        EnvironmentConfig.model_validate({**VALID, "network": {**NETWORK, "egress": "endpoints"}})
    bedrock = {**VALID, "model_provider": "bedrock", "network": {**NETWORK, "egress": "endpoints"}}
    assert EnvironmentConfig.model_validate(bedrock).network is not None
    with pytest.raises(ValidationError, match="serves its own region only"):
        EnvironmentConfig.model_validate({**bedrock, "bedrock_region": "us-east-1"})


def test_a_network_must_state_its_egress_and_a_proxy_needs_a_network() -> None:
    with pytest.raises(ValidationError, match="egress"):
        EnvironmentConfig.model_validate({**VALID, "network": NETWORK})
    with pytest.raises(ValidationError, match="database_proxy needs network"):
        EnvironmentConfig.model_validate({**VALID, "database_proxy": {"target": "instance", "identifier": "db"}})
