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
        quick: GenerationStateMachine | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        machines = [generation, *([quick] if quick is not None else [])]
        # One ARN setting per profile: state_machine_arn (full), quick_state_machine_arn.
        arns = {
            ("state_machine_arn" if m.profile == "full" else f"{m.profile}_state_machine_arn"): (
                m.state_machine.state_machine_arn
            )
            for m in machines
        }
        for name, value in settings_environment(**arns).items():
            function.add_environment(name, value)
        for machine in machines:
            machine.state_machine.grant_start_execution(function)
        # cancel (StopExecution) and status (DescribeExecution) act on these machines' executions only
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["states:StopExecution", "states:DescribeExecution"],
                resources=[m.executions_arn for m in machines],
            )
        )
        self.function_url = function.add_function_url(auth_type=lambda_.FunctionUrlAuthType.NONE)
        acknowledge(
            function.role or function,
            "AwsSolutions-IAM5",
            "Execution ARNs end in a run-time execution name; the wildcard covers only "
            "executions of the generation state machines (cancel and status).",
            *(m.executions_finding for m in machines),
        )
