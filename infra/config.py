"""Typed, validated configuration of each deployment environment (``infra/environments.json``).

Account ids and ARNs are data, not code: an operator edits the JSON file; this module refuses a
file that would synthesize a broken stack (an unknown model provider or Claude model, a partial
secret ARN, a subnet list without security groups) before CDK runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from aws_cdk import aws_logs as logs
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from worldgen.settings import ModelProvider

EnvironmentName = Literal["dev", "staging", "prod"]
ENVIRONMENTS_FILE = Path(__file__).resolve().parent / "environments.json"

# A complete secret ARN ends in "-" + 6 characters that Secrets Manager appends to the name;
# IAM grants on a partial ARN would need a wildcard.
SECRET_ARN_PATTERN = r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+-[A-Za-z0-9]{6}$"
# The retention periods CloudWatch Logs accepts, in days.
RETENTION_DAYS: dict[int, logs.RetentionDays] = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    731: logs.RetentionDays.TWO_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NetworkConfig(_Frozen):
    """An existing VPC from which the functions reach a private database (imported, never looked up)."""

    vpc_id: str = Field(pattern=r"^vpc-[0-9a-f]+$")
    availability_zones: tuple[str, ...] = Field(min_length=1)
    subnet_ids: tuple[str, ...] = Field(min_length=1)
    security_group_ids: tuple[str, ...] = Field(min_length=1)


class EnvironmentConfig(_Frozen):
    name: EnvironmentName
    account: str = Field(pattern=r"^\d{12}$")
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    model_provider: ModelProvider
    default_model: str = Field(min_length=1)
    phase_models: dict[str, str] = Field(default_factory=dict)
    bedrock_region: str | None = None
    log_retention_days: int = 30
    alarm_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    database_secret_arn: str = Field(pattern=SECRET_ARN_PATTERN)
    # None: the stack creates an empty secret that the operator fills (infra/README.md).
    anthropic_api_key_secret_arn: str | None = Field(default=None, pattern=SECRET_ARN_PATTERN)
    network: NetworkConfig | None = None
    # Caps concurrent executions of EACH phase function (model API rate limits, DB connections).
    phase_reserved_concurrency: int | None = Field(default=None, ge=1)

    @property
    def stack_name(self) -> str:
        return f"worldgen-{self.name}"

    @property
    def is_production(self) -> bool:
        return self.name == "prod"

    @property
    def log_retention(self) -> logs.RetentionDays:
        return RETENTION_DAYS[self.log_retention_days]

    @field_validator("log_retention_days")
    @classmethod
    def _retention_is_accepted(cls, days: int) -> int:
        if days not in RETENTION_DAYS:
            raise ValueError(f"log_retention_days must be one of {sorted(RETENTION_DAYS)}")
        return days

    @field_validator("default_model")
    @classmethod
    def _default_model_is_known(cls, model: str) -> str:
        from worldgen.model.families import check_model

        return check_model(model)  # UnknownModel (a ValueError) lists the known families

    @field_validator("phase_models")
    @classmethod
    def _phase_models_are_known(cls, models: dict[str, str]) -> dict[str, str]:
        from worldgen.model.families import check_model

        return {phase: check_model(model) for phase, model in models.items()}

    @model_validator(mode="after")
    def _phases_exist(self) -> EnvironmentConfig:
        from worldgen.phases import PHASES_BY_ID

        unknown = sorted(set(self.phase_models) - set(PHASES_BY_ID))
        if unknown:
            raise ValueError(f"phase_models names unknown phases {unknown}; valid: {sorted(PHASES_BY_ID)}")
        return self


def load_environments(path: Path = ENVIRONMENTS_FILE) -> dict[str, EnvironmentConfig]:
    raw: dict[str, dict[str, object]] = json.loads(path.read_text())
    return {name: EnvironmentConfig.model_validate({"name": name, **values}) for name, values in raw.items()}


def load_environment(name: str, path: Path = ENVIRONMENTS_FILE) -> EnvironmentConfig:
    environments = load_environments(path)
    try:
        return environments[name]
    except KeyError:
        raise KeyError(f"unknown environment {name!r}; choose one of {sorted(environments)}") from None
