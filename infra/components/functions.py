"""The 16 Lambda functions (12 phases of the two profiles, 4 service functions), made in one loop
over ``worldgen.functions_registry.ALL_FUNCTIONS``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import cast

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.components.layers import ARCHITECTURE, RUNTIME
from infra.components.nag import acknowledge
from infra.components.secrets import WorldgenSecrets
from infra.config import EnvironmentConfig, NetworkConfig
from infra.paths import FUNCTIONS_DIR
from worldgen.contracts import POWERTOOLS_ENVIRONMENT, settings_env_name
from worldgen.functions_registry import ALL_FUNCTIONS, START_FUNCTION, LambdaFunction
from worldgen.settings import Settings


def grant_secret_key(config: EnvironmentConfig, role: iam.IRole) -> None:
    """kms:Decrypt on the database secret's customer-managed key, through Secrets Manager only
    (reading a secret so encrypted needs it: https://docs.aws.amazon.com/secretsmanager/latest/userguide/security-encryption.html)."""
    if config.database_secret_kms_key_arn is None:
        return
    role.add_to_principal_policy(
        iam.PolicyStatement(
            actions=["kms:Decrypt"],
            resources=[config.database_secret_kms_key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"secretsmanager.{config.region}.amazonaws.com"}},
        )
    )


def settings_environment(**values: str | None) -> dict[str, str]:
    """Lambda environment variables for ``worldgen.settings.Settings`` fields.

    A name that is not a Settings field fails synth, so the stack cannot set a variable that the
    functions would silently ignore.
    """
    unknown = sorted(set(values) - set(Settings.model_fields))
    if unknown:
        raise ValueError(f"not fields of worldgen.settings.Settings: {unknown}")
    return {settings_env_name(name): value for name, value in values.items() if value is not None}


class WorldgenFunctions(Construct):
    """``by_id[<registry id>]`` is the function; its CloudFormation logical id is the registry id."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        layers: list[lambda_.ILayerVersion],
        secrets: WorldgenSecrets,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._secrets = secrets
        self.network = _imported_network(self, config.network) if config.network else None
        self.by_id: dict[str, lambda_.Function] = {}
        for spec in ALL_FUNCTIONS:
            self.by_id[spec.id] = self._function(spec, layers)

    @property
    def start_generation(self) -> lambda_.Function:
        return self.by_id[START_FUNCTION.id]

    def _function(self, spec: LambdaFunction, layers: list[lambda_.ILayerVersion]) -> lambda_.Function:
        config = self._config
        scope = Construct(self, spec.id)
        log_group = logs.LogGroup(
            scope,
            "Logs",
            retention=config.log_retention,
            removal_policy=RemovalPolicy.RETAIN if config.is_production else RemovalPolicy.DESTROY,
        )
        role = iam.Role(
            scope,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{config.stack_name} {spec.id}: least privilege for this function only",
        )
        log_group.grant_write(role)
        function = lambda_.Function(
            scope,
            "Function",
            description=spec.description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler="app.handler",
            code=lambda_.Code.from_asset(str(FUNCTIONS_DIR / spec.folder), exclude=["**/__pycache__"]),
            layers=layers,
            timeout=Duration.seconds(spec.timeout_seconds),
            memory_size=spec.memory_mb,
            role=role,
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment={**POWERTOOLS_ENVIRONMENT, **self._environment(spec)},
            reserved_concurrent_executions=(
                config.phase_reserved_concurrency if spec.phase else config.service_reserved_concurrency
            ),
            vpc=self.network.vpc if self.network else None,
            vpc_subnets=ec2.SubnetSelection(subnets=self.network.subnets) if self.network else None,
            security_groups=self.network.security_groups if self.network else None,
        )
        cast(lambda_.CfnFunction, function.node.default_child).override_logical_id(spec.id)
        if self.network:
            self._grant_network_interfaces(role)
        self._grant_secrets(spec, role)
        if spec.calls_model and config.model_provider == "bedrock":
            self._grant_bedrock(role)
        acknowledge(
            function,
            "AwsSolutions-L1",
            "Pinned to Python 3.12: the dependencies layer is built for exactly this runtime "
            "(pip --python-version 3.12); upgrade both together.",
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level "
            "permissions; Lambda adds them for active tracing.",
            "Resource::*",
        )
        return function

    def _environment(self, spec: LambdaFunction) -> dict[str, str]:
        config, secrets = self._config, self._secrets
        values: dict[str, str | None] = {
            "database_secret_arn": secrets.database.secret_arn,
            "database_sslmode": config.database_sslmode,
            "model_provider": config.model_provider,
            "default_model": config.default_model,
        }
        if spec.calls_model:
            values["phase_models"] = json.dumps(config.phase_models) if config.phase_models else None
            values["bedrock_region"] = config.bedrock_region
            otpm = config.output_tokens_per_minute
            values["output_tokens_per_minute"] = str(otpm) if otpm else None
            if secrets.anthropic_api_key is not None:
                values["anthropic_api_key_secret_arn"] = secrets.anthropic_api_key.secret_arn
        if spec.id == START_FUNCTION.id:
            values["action_secret_arn"] = secrets.action.secret_arn
            cap = config.default_max_cost_usd
            values["default_max_cost_usd"] = str(cap) if cap else None
        return settings_environment(**values)

    def _grant_secrets(self, spec: LambdaFunction, role: iam.IRole) -> None:
        readable: list[secretsmanager.ISecret] = [self._secrets.database]
        if spec.calls_model and self._secrets.anthropic_api_key is not None:
            readable.append(self._secrets.anthropic_api_key)
        if spec.id == START_FUNCTION.id:
            readable.append(self._secrets.action)
        for secret in readable:
            secret.grant_read(role)
        grant_secret_key(self._config, role)

    def _grant_bedrock(self, role: iam.Role) -> None:
        stack = Stack.of(self)
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"],
                resources=[
                    "arn:aws:bedrock:*::foundation-model/anthropic.*",
                    f"arn:aws:bedrock:*:{stack.account}:inference-profile/*anthropic.*",
                ],
            )
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "Cross-region inference profiles route a Claude call to any region of the "
            "profile, so the model ARNs are scoped to Anthropic models, not to one region.",
            "Resource::arn:aws:bedrock:*::foundation-model/anthropic.*",
            f"Resource::arn:aws:bedrock:*:{stack.account}:inference-profile/*anthropic.*",
        )

    def _grant_network_interfaces(self, role: iam.Role) -> None:
        # A function given its own role gets no VPC permissions from CDK: attach AWS's policy for ENIs.
        role.add_managed_policy(
            iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSLambdaVPCAccessExecutionRole")
        )
        acknowledge(
            role,
            "AwsSolutions-IAM4",
            "AWSLambdaVPCAccessExecutionRole is the AWS-maintained minimum for a function "
            "to manage its ENIs in the database VPC (ec2:CreateNetworkInterface has no resource "
            "scoping).",
            "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",
        )


@dataclass(frozen=True)
class ImportedNetwork:
    vpc: ec2.IVpc
    subnets: list[ec2.ISubnet]
    security_groups: list[ec2.ISecurityGroup]


def _imported_network(scope: Construct, network: NetworkConfig) -> ImportedNetwork:
    """The configured VPC, subnets and security groups, imported by id (no lookup: synth stays offline)."""
    vpc = ec2.Vpc.from_vpc_attributes(
        scope, "Vpc", vpc_id=network.vpc_id, availability_zones=list(network.availability_zones)
    )
    subnets = [ec2.Subnet.from_subnet_id(scope, f"Subnet{i}", s) for i, s in enumerate(network.subnet_ids)]
    groups = [
        ec2.SecurityGroup.from_security_group_id(scope, f"SecurityGroup{i}", g, mutable=False)
        for i, g in enumerate(network.security_group_ids)
    ]
    return ImportedNetwork(vpc, subnets, groups)
