"""The generation state machine, from the committed ASL, and the operators' redrive policy."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import paths
from infra.components.nag import acknowledge
from infra.config import EnvironmentConfig
from worldgen.functions_registry import STATE_MACHINE_FUNCTIONS, LambdaFunction
from worldgen.phases import DEFAULT_PROFILE, get_phase
from worldgen.tools.statemachine import placeholders


def definition_substitutions(asl_path: Path, values: Mapping[str, str]) -> dict[str, str]:
    """``values`` if it fills every ``${...}`` placeholder of the ASL and nothing else; else ValueError.

    Step Functions would accept a definition with an unfilled placeholder and fail at run time
    on the literal ``${Phase1AFunctionArn}``; this check moves that failure to synth.
    """
    expected = placeholders(json.loads(asl_path.read_text()))
    missing = sorted(expected - set(values))
    unused = sorted(set(values) - expected)
    if missing or unused:
        raise ValueError(
            f"{asl_path.name}: placeholders without a value {missing}, "
            f"values without a placeholder {unused}; "
            "run `make asl` if the registry changed"
        )
    return dict(values)


def profile_functions(profile: str) -> tuple[LambdaFunction, ...]:
    """The functions ``profile``'s machine invokes: its phases' and the service functions."""
    return tuple(f for f in STATE_MACHINE_FUNCTIONS if f.phase is None or get_phase(f.phase).profile == profile)


class GenerationStateMachine(Construct):
    """One profile's state machine (``worldgen-<env>`` for full, ``worldgen-<env>-<profile>`` otherwise)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        functions: Mapping[str, lambda_.IFunction],
        asl_path: Path | None = None,
        profile: str = DEFAULT_PROFILE,
    ) -> None:
        super().__init__(scope, construct_id)
        self.profile = profile
        name = config.stack_name if profile == DEFAULT_PROFILE else f"{config.stack_name}-{profile}"
        asl_path = asl_path or paths.ASL_PATHS[profile]
        if not asl_path.is_file():
            raise FileNotFoundError(f"{asl_path} is missing: run `make asl`")
        specs = profile_functions(profile)
        invoked = [functions[spec.id] for spec in specs]
        substitutions = definition_substitutions(
            asl_path, {spec.placeholder: functions[spec.id].function_arn for spec in specs}
        )
        log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/vendedlogs/states/{name}",
            retention=config.log_retention,
            removal_policy=RemovalPolicy.RETAIN if config.is_production else RemovalPolicy.DESTROY,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=name,
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_file(str(asl_path)),
            definition_substitutions=substitutions,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True,
        )
        for function in invoked:
            function.grant_invoke(self.state_machine)
        acknowledge(
            self.state_machine,
            "AwsSolutions-IAM5",
            "Step Functions log delivery (logs:*LogDelivery, DescribeResourcePolicies) and X-Ray "
            "support no resource-level permissions.",
            "Resource::*",
        )
        acknowledge(
            self.state_machine,
            "AwsSolutions-IAM5",
            "lambda:InvokeFunction is scoped to this machine's own functions; <arn>:* adds only "
            "their versions and aliases.",
            *(f"Resource::<{spec.id}.Arn>:*" for spec in specs),
        )
        stack = Stack.of(self)
        # Built from the fixed name (not the state machine's Ref) so the policies read plainly.
        self.executions_arn = stack.format_arn(
            service="states",
            resource="execution",
            resource_name=f"{name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.executions_finding = (
            f"Resource::arn:<AWS::Partition>:states:{stack.region}:{stack.account}:execution:{name}:*"
        )
        self.operators_policy = self._operators_policy(name)

    def _operators_policy(self, name: str) -> iam.ManagedPolicy:
        executions = self.executions_arn
        policy = iam.ManagedPolicy(
            self,
            "OperatorsPolicy",
            managed_policy_name=f"{name}-operators",
            description=f"Redrive, stop and inspect (history included) executions of the {name} state machine",
            statements=[
                # GetExecutionHistory: the console shows the failed state (and offers Redrive) from it.
                iam.PolicyStatement(
                    actions=[
                        "states:RedriveExecution",
                        "states:StopExecution",
                        "states:DescribeExecution",
                        "states:GetExecutionHistory",
                    ],
                    resources=[executions],
                ),
                iam.PolicyStatement(
                    actions=["states:ListExecutions", "states:DescribeStateMachine"],
                    resources=[self.state_machine.state_machine_arn],
                ),
            ],
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5",
            "Execution ARNs end in a run-time execution name; the wildcard covers only "
            "executions of this one state machine.",
            self.executions_finding,
        )
        return policy
