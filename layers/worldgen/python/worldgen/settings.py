"""Typed settings (prefix ``WORLDGEN_``), validated once and cached.

The checks that need the model table or the tool schemas (a known model, a phase's tool within the
limits of strict tools and structured outputs) are not made here but where the model is made
(``worldgen.model.factory.check_model_settings``): settings load nothing they configure.

Library code reads configuration only through ``get_settings()``; nothing else looks at
``os.environ``. Tests call ``get_settings.cache_clear()`` after changing the environment.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from worldgen.contracts import SETTINGS_ENV_PREFIX

ModelProvider = Literal["procedural", "anthropic", "bedrock", "simulated"]
MODEL_PROVIDERS: tuple[str, ...] = ("procedural", "anthropic", "bedrock", "simulated")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=SETTINGS_ENV_PREFIX, extra="ignore")

    # Database: a URL, else a Secrets Manager secret, else (locally) the embedded server.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("WORLDGEN_DATABASE_URL", "DATABASE_URL")
    )
    database_secret_arn: str | None = None
    # RDS Proxy: connect to this host instead of the secret's, with prepared statements off (no pinning).
    database_proxy_endpoint: str | None = None
    # Where the local commands keep the embedded PostgreSQL (worldgen.local.home): unset, the
    # platform's per-user data folder, whatever the working directory.
    home: Path | None = Field(default=None, validation_alias=AliasChoices("WORLDGEN_HOME", "WORLDGEN_LOCAL_DATA_DIR"))
    # libpq sslmode for every connection (staging and prod: require); None leaves libpq's default.
    database_sslmode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] | None = None

    # Model
    model_provider: ModelProvider = "procedural"
    default_model: str | None = None  # overrides every phase's registry default when set
    phase_models: dict[str, str] = Field(default_factory=dict)  # {"3C": "claude-haiku-4-5"}
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("WORLDGEN_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY")
    )
    anthropic_api_key_secret_arn: str | None = None
    anthropic_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("WORLDGEN_ANTHROPIC_BASE_URL", "ANTHROPIC_BASE_URL")
    )
    bedrock_region: str | None = None
    # Bedrock endpoints, when not the region's own (a VPC endpoint; tests point them at loopback): the
    # legacy InvokeModel runtime, and the Messages-API endpoint the 5.x models are served by.
    bedrock_base_url: str | None = None
    bedrock_mantle_base_url: str | None = None
    request_timeout_seconds: float = 240.0
    sdk_max_retries: int = 1  # retries of a request refused before answering (429, 529, 5xx), by ClaudeModel
    # The longest retry-after waited inside a phase; a longer one fails the call as ModelRateLimited,
    # which the state machine's throttling retrier waits out (minutes, outside the Lambda).
    rate_limit_max_wait_seconds: float = 30.0
    # Output tokens per minute of the model (the rate-limit tier: Anthropic's rate-limits page gives
    # 90,000 for Sonnet at tier 2). The API reserves max_tokens when a request starts: the parts of a
    # phase in flight at once reserve at most this many.
    output_tokens_per_minute: int = Field(default=90_000, gt=0)
    repair_rounds: int = 2
    # The cost cap of a generation whose request names none (worldgen.cost_cap); unset: no cap.
    default_max_cost_usd: float | None = Field(default=None, gt=0)
    # After the repair rounds: drop the invalid rows (and what refers to them) and save the rest when
    # they are at most this share of the phase's rows; above it the phase fails.
    partial_success_max_share: float = Field(default=0.10, ge=0.0, le=1.0)
    strict_phases: list[str] = Field(default_factory=list)  # phases whose tool is sent with strict: true
    # Continuity rules (worldgen.continuity.RULES) whose findings go back, as problems, to the phase that
    # wrote the row, in its repair rounds; the others (and these after the last round) stay advisory.
    continuity_repair: list[str] = Field(default_factory=list)

    @field_validator("continuity_repair")
    @classmethod
    def _continuity_rules_are_known(cls, rules: list[str]) -> list[str]:
        from worldgen.continuity import RULES

        unknown = [rule for rule in rules if rule not in RULES]
        if unknown:
            raise ValueError(f"unknown continuity rule(s) {', '.join(unknown)}; valid rules: {', '.join(RULES)}")
        return rules

    @field_validator("default_model")
    @classmethod
    def _empty_default_model_is_unset(cls, model: str | None) -> str | None:
        return model if model and model.strip() else None

    # Simulated Claude (worldgen.local.simulator, started by the demo, the bench and tests)
    simulator_url: str | None = None
    simulator_time_factor: float = 1.0  # simulated seconds per real second
    # The model the simulated provider asks, in its family's dialect (the bench: the default model).
    simulator_model: str = "claude-sonnet-4-6"

    # Procedural model
    seed: int = 7
    scale: float = 1.0

    # Orchestration
    state_machine_arn: str | None = None  # the full profile's state machine
    quick_state_machine_arn: str | None = None  # the quick profile's state machine
    default_profile: str = "full"  # the profile a generation follows when its request names none
    action_secret: SecretStr | None = None
    action_secret_arn: str | None = None
    aws_region: str = Field(default="us-east-1", validation_alias=AliasChoices("WORLDGEN_AWS_REGION", "AWS_REGION"))

    @field_validator("default_profile")
    @classmethod
    def _default_profile_is_known(cls, profile: str) -> str:
        from worldgen.phases import PROFILE_NAMES

        if profile not in PROFILE_NAMES:
            raise ValueError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILE_NAMES)}")
        return profile

    def state_machine_arn_of(self, profile: str) -> str:
        """The ARN of ``profile``'s state machine; ConfigurationError naming the setting when unset."""
        from worldgen.errors import ConfigurationError

        setting = "state_machine_arn" if profile == "full" else f"{profile}_state_machine_arn"
        arn = getattr(self, setting, None)
        if not arn:
            raise ConfigurationError(f"WORLDGEN_{setting.upper()} is not set on the server")
        return str(arn)

    @field_validator("strict_phases")
    @classmethod
    def _strict_phases_are_known(cls, phases: list[str]) -> list[str]:
        """Phase ids, upper-cased; whether their tools fit strict tool use is checked where the model
        is made (``worldgen.model.factory``), which reads the tool schemas."""
        from worldgen.phases import get_phase

        for phase_id in phases:
            try:
                get_phase(phase_id)
            except KeyError as exc:
                raise ValueError(str(exc.args[0])) from exc
        return [phase.upper() for phase in phases]


@cache
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        from worldgen.errors import ConfigurationError

        first = exc.errors()[0]
        where = "WORLDGEN_" + "_".join(str(p) for p in first["loc"]).upper()
        raise ConfigurationError(f"{where}: {first['msg'].removeprefix('Value error, ')}") from exc
