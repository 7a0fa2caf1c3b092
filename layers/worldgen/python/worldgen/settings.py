"""Typed settings (prefix ``WORLDGEN_``), validated once and cached.

Library code reads configuration only through ``get_settings()``; nothing else looks at
``os.environ``. Tests call ``get_settings.cache_clear()`` after changing the environment.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ModelProvider = Literal["procedural", "anthropic", "bedrock", "simulated"]
MODEL_PROVIDERS: tuple[str, ...] = ("procedural", "anthropic", "bedrock", "simulated")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WORLDGEN_", extra="ignore")

    # Database: a URL, else a Secrets Manager secret, else (locally) the embedded server.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("WORLDGEN_DATABASE_URL", "DATABASE_URL")
    )
    database_secret_arn: str | None = None
    local_data_dir: Path = Path(".worldgen")

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
    request_timeout_seconds: float = 240.0
    sdk_max_retries: int = 1
    repair_rounds: int = 2
    strict_phases: list[str] = Field(default_factory=list)  # phases whose tool is sent with strict: true

    # Simulated Claude (worldgen.local.simulator, started by the demo, the bench and tests)
    simulator_url: str | None = None
    simulator_time_factor: float = 1.0  # simulated seconds per real second

    # Procedural model
    seed: int = 7
    scale: float = 1.0

    # Orchestration
    state_machine_arn: str | None = None
    action_secret: SecretStr | None = None
    action_secret_arn: str | None = None
    aws_region: str = Field(default="us-east-1", validation_alias=AliasChoices("WORLDGEN_AWS_REGION", "AWS_REGION"))


@cache
def get_settings() -> Settings:
    return Settings()
