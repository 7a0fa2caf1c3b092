"""The secrets the functions read: the database connection, the Anthropic API key, the action secret."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.components.nag import acknowledge
from infra.config import EnvironmentConfig
from worldgen.contracts import ACTION_SECRET_ENV, ACTION_SECRET_HEADER


class WorldgenSecrets(Construct):
    """``database`` (imported), ``anthropic_api_key`` (imported, created, or None) and ``action``."""

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig) -> None:
        super().__init__(scope, construct_id)
        self.database = secretsmanager.Secret.from_secret_complete_arn(self, "Database", config.database_secret_arn)
        self.anthropic_api_key: secretsmanager.ISecret | None = None
        if config.model_provider == "anthropic":
            if config.anthropic_api_key_secret_arn:
                self.anthropic_api_key = secretsmanager.Secret.from_secret_complete_arn(
                    self, "AnthropicApiKey", config.anthropic_api_key_secret_arn
                )
            else:
                # Created with a random placeholder; the operator puts the real key (infra/README.md).
                created = secretsmanager.Secret(
                    self,
                    "AnthropicApiKey",
                    secret_name=f"{config.stack_name}/anthropic-api-key",
                    description="Anthropic API key for worldgen: fill it as infra/README.md says",
                    removal_policy=RemovalPolicy.RETAIN if config.is_production else RemovalPolicy.DESTROY,
                )
                acknowledge(
                    created,
                    "AwsSolutions-SMG4",
                    "A third-party API key cannot be rotated by a Lambda: it is replaced "
                    "by hand in the Anthropic console, then put into this secret.",
                )
                self.anthropic_api_key = created
        self.action = secretsmanager.Secret(
            self,
            "ActionSecret",
            secret_name=f"{config.stack_name}/action-secret",
            description=f"Shared secret Hasura sends in the {ACTION_SECRET_HEADER} header to the action URL",
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=48, exclude_punctuation=True),
            removal_policy=RemovalPolicy.RETAIN if config.is_production else RemovalPolicy.DESTROY,
        )
        acknowledge(
            self.action,
            "AwsSolutions-SMG4",
            "Hasura reads the shared secret from its own environment "
            f"({ACTION_SECRET_ENV}); rotating it needs a coordinated Hasura redeploy, "
            "done by hand (infra/README.md).",
        )
