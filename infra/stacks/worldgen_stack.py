"""One worldgen deployment: ``worldgen-<env>``."""

from __future__ import annotations

from aws_cdk import Annotations, CfnOutput, Environment, Stack
from constructs import Construct

from infra.components.action_endpoint import ActionEndpoint
from infra.components.database import WorldgenDatabaseProxy
from infra.components.failure_rule import GenerationFailureRule
from infra.components.functions import WorldgenFunctions, settings_environment
from infra.components.layers import WorldgenLayers
from infra.components.network import InterfaceEndpoints
from infra.components.observability import Observability
from infra.components.secrets import WorldgenSecrets
from infra.components.state_machine import GenerationStateMachine
from infra.config import EnvironmentConfig
from worldgen.contracts import ACTION_SECRET_ENV, ACTION_SECRET_HEADER
from worldgen.functions_registry import FAILURE_FUNCTION

NOT_DEPLOYABLE = " [synthesized WITHOUT the dependencies layer (skip_dependencies_layer): NOT deployable]"


class WorldgenStack(Stack):
    def __init__(self, scope: Construct, config: EnvironmentConfig, *, skip_dependencies_layer: bool = False) -> None:
        description = f"worldgen {config.name}: LLM world generation (Step Functions + Lambda)"
        super().__init__(
            scope,
            config.stack_name,
            stack_name=config.stack_name,
            env=Environment(account=config.account, region=config.region),
            description=description + (NOT_DEPLOYABLE if skip_dependencies_layer else ""),
            # prod: `cdk destroy` (or a mistaken delete) is refused until someone turns this off.
            termination_protection=config.is_production,
        )
        self.config = config
        layers = WorldgenLayers(self, "Layers", skip_dependencies=skip_dependencies_layer)
        secrets = WorldgenSecrets(self, "Secrets", config=config)
        self.functions = WorldgenFunctions(self, "Functions", config=config, layers=layers.layers, secrets=secrets)
        self._network(config, secrets)
        generation = GenerationStateMachine(self, "Generation", config=config, functions=self.functions.by_id)
        self.state_machine = generation.state_machine
        # The quick profile's machine (issue 12): the same functions but its own phases Q1..Q3.
        quick = GenerationStateMachine(
            self, "QuickGeneration", config=config, functions=self.functions.by_id, profile="quick"
        )
        self.quick_state_machine = quick.state_machine
        failure_rule = GenerationFailureRule(
            self,
            "FailureRule",
            state_machine=self.state_machine,
            recorder=self.functions.by_id[FAILURE_FUNCTION.id],
            others=[self.quick_state_machine],
        )
        action = ActionEndpoint(
            self, "Action", function=self.functions.start_generation, generation=generation, quick=quick
        )
        observability = Observability(
            self,
            "Observability",
            config=config,
            state_machine=self.state_machine,
            functions=self.functions.by_id,
            failure_dead_letters=failure_rule.dead_letters,
            quick_state_machine=self.quick_state_machine,
        )

        CfnOutput(
            self,
            "ActionUrl",
            value=action.function_url.url,
            description="Hasura action handler: WORLDGEN_ACTION_URL",
        )
        CfnOutput(
            self,
            "ActionSecretArn",
            value=secrets.action.secret_arn,
            description=f"Secret Hasura sends in {ACTION_SECRET_HEADER}: {ACTION_SECRET_ENV}",
        )
        CfnOutput(self, "StateMachineArn", value=self.state_machine.state_machine_arn)
        CfnOutput(self, "QuickStateMachineArn", value=self.quick_state_machine.state_machine_arn)
        CfnOutput(self, "OperatorsPolicyArn", value=generation.operators_policy.managed_policy_arn)
        CfnOutput(self, "AlarmTopicArn", value=observability.topic.topic_arn)
        if secrets.anthropic_api_key is not None:
            CfnOutput(self, "AnthropicApiKeySecretArn", value=secrets.anthropic_api_key.secret_arn)
        if config.reserved_concurrency:
            Annotations.of(self).add_info(
                f"reserves {config.reserved_concurrency} concurrent executions: the account's Lambda concurrency "
                f"quota in {config.region} must be at least {config.required_concurrency_quota} plus what other "
                "functions reserve (infra/README.md, pre-deploy checklist)"
            )

    def _network(self, config: EnvironmentConfig, secrets: WorldgenSecrets) -> None:
        """Interface endpoints and RDS Proxy, when the config asks for them (both need the VPC)."""
        network, imported = config.network, self.functions.network
        if network is None or imported is None:
            return
        if network.egress == "endpoints":
            InterfaceEndpoints(self, "Endpoints", config=config, network=network, imported=imported)
        if config.database_proxy is not None:
            proxy = WorldgenDatabaseProxy(
                self,
                "DatabaseProxy",
                config=config,
                proxy=config.database_proxy,
                network=network,
                imported=imported,
                secret=secrets.database,
            )
            for function in self.functions.by_id.values():
                for name, value in settings_environment(database_proxy_endpoint=proxy.endpoint).items():
                    function.add_environment(name, value)
            CfnOutput(
                self,
                "DatabaseProxySecurityGroupId",
                value=proxy.security_group.security_group_id,
                description="Admit it on 5432 in the database's security group",
            )
