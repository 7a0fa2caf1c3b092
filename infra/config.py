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

from worldgen.phases import ALL_PHASES, ANY_PHASE_BY_ID
from worldgen.settings import ModelProvider

EnvironmentName = Literal["dev", "staging", "prod"]
ENVIRONMENTS_FILE = Path(__file__).resolve().parent / "environments.json"

# A complete secret ARN ends in "-" + 6 characters that Secrets Manager appends to the name;
# IAM grants on a partial ARN would need a wildcard.
SECRET_ARN_PATTERN = r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+-[A-Za-z0-9]{6}$"
KMS_KEY_ARN_PATTERN = r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[0-9a-f-]{36}$"
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


# Lambda refuses a reservation that leaves fewer than this many executions unreserved in the account.
LAMBDA_MINIMUM_UNRESERVED = 100
# Service Quotas code of "Concurrent executions" (AWS Lambda), per account and region.
LAMBDA_CONCURRENCY_QUOTA_CODE = "L-B99A9384"
# Service functions (start, failure recorder, rollback, complete): see functions_registry.
SERVICE_FUNCTION_COUNT = 4
Egress = Literal["nat", "endpoints"]


class NetworkConfig(_Frozen):
    """An existing VPC from which the functions reach a private database (imported, never looked up).

    ``egress`` states how functions in these subnets reach AWS APIs (Secrets Manager for every
    function, Step Functions for start_generation, Bedrock for the phases): ``nat`` when the
    subnets route 0.0.0.0/0 to a NAT gateway (required for the Anthropic API, which is on the
    internet), ``endpoints`` to have the stack create interface VPC endpoints (one subnet per AZ).
    """

    vpc_id: str = Field(pattern=r"^vpc-[0-9a-f]+$")
    availability_zones: tuple[str, ...] = Field(min_length=1)
    subnet_ids: tuple[str, ...] = Field(min_length=1)
    security_group_ids: tuple[str, ...] = Field(min_length=1)
    egress: Egress


class DatabaseProxyConfig(_Frozen):
    """An RDS Proxy the stack creates in front of an existing PostgreSQL instance or Aurora cluster.

    The proxy reads the same database secret; the functions connect to its endpoint with psycopg's
    prepared statements off, so the proxy multiplexes them instead of pinning one connection each.
    """

    target: Literal["instance", "cluster"]
    identifier: str = Field(pattern=r"^[a-zA-Z][a-zA-Z0-9-]{0,62}$")
    # Share of the database's max_connections the proxy may open (RDS Proxy MaxConnectionsPercent).
    max_connections_percent: int = Field(default=90, ge=1, le=100)


class EnvironmentConfig(_Frozen):
    name: EnvironmentName
    account: str = Field(pattern=r"^\d{12}$")
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    model_provider: ModelProvider
    default_model: str = Field(min_length=1)
    phase_models: dict[str, str] = Field(default_factory=dict)
    bedrock_region: str | None = None
    # The model's output tokens per minute at the account's rate-limit tier (unset: the tier-2 default
    # of worldgen.settings), and the cost cap of a generation whose request names none (unset: none).
    output_tokens_per_minute: int | None = Field(default=None, gt=0)
    default_max_cost_usd: float | None = Field(default=None, gt=0)
    log_retention_days: int = 30
    alarm_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    database_secret_arn: str = Field(pattern=SECRET_ARN_PATTERN)
    # The customer-managed KMS key the database secret is encrypted with, if any (None: AWS's
    # managed key, which needs no grant): the functions and RDS Proxy get kms:Decrypt on it.
    database_secret_kms_key_arn: str | None = Field(default=None, pattern=KMS_KEY_ARN_PATTERN)
    # None: the stack creates an empty secret that the operator fills (infra/README.md).
    anthropic_api_key_secret_arn: str | None = Field(default=None, pattern=SECRET_ARN_PATTERN)
    network: NetworkConfig | None = None
    database_proxy: DatabaseProxyConfig | None = None
    # Caps concurrent executions of EACH phase function (model API rate limits, DB connections).
    phase_reserved_concurrency: int | None = Field(default=None, ge=1)
    # Caps EACH service function (start_generation behind the public Function URL, the failure
    # recorder, rollback, complete), so a flood of requests cannot exhaust the database.
    service_reserved_concurrency: int | None = Field(default=None, ge=1)
    # The account's Lambda "Concurrent executions" quota in this region, as the operator read it
    # (infra/README.md, pre-deploy checklist); required as soon as anything is reserved.
    lambda_concurrency_quota: int | None = Field(default=None, ge=10)

    @property
    def stack_name(self) -> str:
        return f"worldgen-{self.name}"

    @property
    def is_production(self) -> bool:
        return self.name == "prod"

    @property
    def database_sslmode(self) -> str:
        """TLS to the database (libpq sslmode) in every deployed environment: staging and prod reach
        it across a shared VPC, dev over the internet (infra/README.md, "dev database")."""
        return "require"

    @property
    def log_retention(self) -> logs.RetentionDays:
        return RETENTION_DAYS[self.log_retention_days]

    @property
    def reserved_concurrency(self) -> int:
        """Concurrent executions this stack reserves: every phase function (of every profile) and every
        service function."""
        return len(ALL_PHASES) * (self.phase_reserved_concurrency or 0) + SERVICE_FUNCTION_COUNT * (
            self.service_reserved_concurrency or 0
        )

    @property
    def required_concurrency_quota(self) -> int:
        """The account quota the reservations need: Lambda keeps 100 executions unreserved."""
        return self.reserved_concurrency + LAMBDA_MINIMUM_UNRESERVED if self.reserved_concurrency else 0

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
        unknown = sorted(set(self.phase_models) - set(ANY_PHASE_BY_ID))
        if unknown:
            raise ValueError(f"phase_models names unknown phases {unknown}; valid: {sorted(ANY_PHASE_BY_ID)}")
        return self

    @model_validator(mode="after")
    def _reservations_fit_the_quota(self) -> EnvironmentConfig:
        needed = self.required_concurrency_quota
        if not needed:
            return self
        breakdown = (
            f"{self.reserved_concurrency} reserved ({len(ALL_PHASES)} phases x {self.phase_reserved_concurrency or 0}"
            " + "
            f"{SERVICE_FUNCTION_COUNT} service functions x {self.service_reserved_concurrency or 0}) "
            f"+ {LAMBDA_MINIMUM_UNRESERVED} Lambda keeps unreserved"
        )
        if self.lambda_concurrency_quota is None:
            raise ValueError(
                f"lambda_concurrency_quota is required when reserving concurrency: the deploy needs at least "
                f"{needed} ({breakdown}); read it with `aws service-quotas get-service-quota --service-code "
                f"lambda --quota-code {LAMBDA_CONCURRENCY_QUOTA_CODE} --region {self.region}`"
            )
        if self.lambda_concurrency_quota < needed:
            raise ValueError(
                f"the Lambda concurrency quota {self.lambda_concurrency_quota} is below the {needed} this stack "
                f"needs ({breakdown}): request an increase of quota {LAMBDA_CONCURRENCY_QUOTA_CODE} "
                f"(Service Quotas, AWS Lambda, Concurrent executions, {self.region}) or lower the reservations"
            )
        return self

    @model_validator(mode="after")
    def _network_reaches_the_model(self) -> EnvironmentConfig:
        network = self.network
        if network is None or network.egress == "nat":
            return self
        if self.model_provider == "anthropic":
            raise ValueError(
                "network.egress is 'endpoints' but the Anthropic API is on the internet: functions in a VPC "
                "reach it only through a NAT gateway; route the subnets to one and set network.egress to 'nat'"
            )
        if self.model_provider == "bedrock" and self.bedrock_region not in (None, self.region):
            raise ValueError(
                f"network.egress is 'endpoints' but bedrock_region {self.bedrock_region} is not the stack's "
                f"region {self.region}: a VPC endpoint serves its own region only; use 'nat' or the same region"
            )
        return self

    @model_validator(mode="after")
    def _proxy_needs_a_network(self) -> EnvironmentConfig:
        if self.database_proxy is not None and self.network is None:
            raise ValueError("database_proxy needs network: RDS Proxy lives in the database's VPC")
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
