"""The Hasura action endpoint: a Function URL on start_generation, guarded by a shared secret."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.components.functions import settings_environment
from infra.components.nag import acknowledge
from infra.components.state_machine import GenerationStateMachine


class ActionEndpoint(Construct):
    """``url`` is what Hasura's action handler points at (``{{WORLDGEN_ACTION_URL}}``).

    Auth is NONE because Hasura cannot sign SigV4 requests; the handler rejects any request
    without the ``x-worldgen-action-secret`` header matching the generated secret.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.Function,
        generation: GenerationStateMachine,
    ) -> None:
        super().__init__(scope, construct_id)
        state_machine = generation.state_machine
        for name, value in settings_environment(state_machine_arn=state_machine.state_machine_arn).items():
            function.add_environment(name, value)
        state_machine.grant_start_execution(function)
        # cancel (StopExecution) and status (DescribeExecution) act on this machine's executions only
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:StopExecution", "states:DescribeExecution"],
                resources=[generation.executions_arn],
            )
        )
        self.function_url = function.add_function_url(auth_type=lambda_.FunctionUrlAuthType.NONE)
        acknowledge(
            function.role or function,
            "AwsSolutions-IAM5",
            "Execution ARNs end in a run-time execution name; the wildcard covers only "
            "executions of this one state machine (cancel and status).",
            generation.executions_finding,
        )
