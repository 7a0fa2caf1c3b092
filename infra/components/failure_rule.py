"""EventBridge: a FAILED, TIMED_OUT or ABORTED execution runs the failure recorder."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.components.nag import acknowledge

FAILED_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")


class GenerationFailureRule(Construct):
    """Uncaught failures (transient errors past their retries, bugs) end the execution AT the phase,
    so the state machine cannot record them itself; this rule marks the generation failed and
    redrivable."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine: sfn.IStateMachine,
        recorder: lambda_.IFunction,
        others: Sequence[sfn.IStateMachine] = (),  # the other profiles' machines
    ) -> None:
        super().__init__(scope, construct_id)
        # An event the recorder could not take after its retries (a long database outage) waits here
        # instead of being dropped; an alarm pages on it, and the recorder is idempotent, so an
        # operator can replay it (infra/README.md).
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            retention_period=Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        acknowledge(
            self.dead_letters,
            "AwsSolutions-SQS3",
            "This queue IS a dead-letter queue (the failure rule target's); a DLQ of a DLQ would only move "
            "the same events one step further.",
        )
        self.rule = events.Rule(
            self,
            "Rule",
            description="worldgen: record failed, timed-out and aborted generation executions",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={
                    "status": list(FAILED_STATUSES),
                    "stateMachineArn": [m.state_machine_arn for m in (state_machine, *others)],
                },
            ),
            targets=[
                targets.LambdaFunction(
                    recorder, retry_attempts=8, max_event_age=Duration.hours(6), dead_letter_queue=self.dead_letters
                )
            ],
        )
