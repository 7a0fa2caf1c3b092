"""Alarms (to an SNS topic) and the CloudWatch dashboard of a worldgen deployment."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.components.nag import acknowledge
from infra.config import EnvironmentConfig
from worldgen.contracts import (
    COST_USD,
    METRICS_NAMESPACE,
    MODEL_CALLS,
    PHASE_DIMENSION,
    PHASE_ROWS,
    SERVICE_NAME,
    TOKEN_METRICS,
    MetricSpec,
)
from worldgen.errors import TRANSIENT_ERRORS
from worldgen.functions_registry import PHASE_FUNCTIONS
from worldgen.phases import get_phase

DURATION_ALARM_FRACTION = 0.8
# Metric-filter metric per phase: errors the state machine does not retry (namespace Worldgen, no dimensions).
FAILING_ERRORS_METRIC = "PhaseErrorsNotRetried"
PERIOD = Duration.minutes(5)


def phase_metric(metric: MetricSpec, phase_id: str) -> cloudwatch.Metric:
    """A metric the phase handlers emit (Powertools Metrics), dimensions service and phase."""
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=metric.name,
        dimensions_map={"service": SERVICE_NAME, PHASE_DIMENSION: phase_id},
        statistic="Sum",
        period=PERIOD,
        label=phase_id,
    )


def failing_errors_metric_name(phase_id: str) -> str:
    return f"{FAILING_ERRORS_METRIC}{phase_id}"


class Observability(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        state_machine: sfn.StateMachine,
        functions: Mapping[str, lambda_.Function],
        failure_dead_letters: sqs.IQueue | None = None,
        quick_state_machine: sfn.StateMachine | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Alarms", display_name=f"{config.stack_name} alarms", enforce_ssl=True)
        acknowledge(
            self.topic,
            "AwsSolutions-SNS2",
            "Alarm notifications carry no data beyond alarm names and states; CloudWatch "
            "cannot publish to a topic encrypted with the AWS-managed SNS key.",
        )
        # enforce_ssl replaces the topic's default policy, so CloudWatch may publish only when allowed here.
        self.alarm_name_prefix = f"{config.stack_name}-"
        self.topic.add_to_resource_policy(self._alarms_may_publish())
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        self.alarms: list[cloudwatch.Alarm] = []
        self._execution_alarms(state_machine)
        if quick_state_machine is not None:  # the quick profile's machine pages the same way
            self._execution_alarms(quick_state_machine, prefix="Quick")
        if failure_dead_letters is not None:
            self._alarm(
                "FailureEventsUndelivered",
                failure_dead_letters.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum"),
                1,
                "An execution's failure event could not be recorded (its generation may still say running): "
                "replay it to the failure recorder once the database is back (infra/README.md)",
            )
        for spec in PHASE_FUNCTIONS:
            self._phase_alarms(spec.id, str(spec.phase), functions[spec.id], spec.timeout_seconds)
        notify = actions.SnsAction(self.topic)
        for alarm in self.alarms:
            alarm.add_alarm_action(notify)
        self.dashboard = self._dashboard(config, state_machine, functions, quick_state_machine)

    def _alarms_may_publish(self) -> iam.PolicyStatement:
        """CloudWatch publishes for this account's alarms of this stack only (named ``<stack>-...``)."""
        stack = Stack.of(self)
        alarms_arn = stack.format_arn(
            service="cloudwatch",
            resource="alarm",
            resource_name=f"{self.alarm_name_prefix}*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        return iam.PolicyStatement(
            sid="CloudWatchAlarmsPublish",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["sns:Publish"],
            resources=[self.topic.topic_arn],
            conditions={"ArnLike": {"aws:SourceArn": alarms_arn}, "StringEquals": {"aws:SourceAccount": stack.account}},
        )

    def _alarm(self, construct_id: str, metric: cloudwatch.IMetric, threshold: float, description: str) -> None:
        self.alarms.append(
            cloudwatch.Alarm(
                self,
                construct_id,
                alarm_name=f"{self.alarm_name_prefix}{construct_id}",
                metric=metric,
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
        )

    def _execution_alarms(self, state_machine: sfn.StateMachine, prefix: str = "") -> None:
        which = f"{prefix.lower()} " if prefix else ""
        self._alarm(
            f"{prefix}ExecutionsFailed",
            state_machine.metric_failed(period=PERIOD, statistic="Sum"),
            1,
            f"A {which}generation execution failed: see the failure recorder's log, fix, then Redrive",
        )
        self._alarm(
            f"{prefix}ExecutionsTimedOut",
            state_machine.metric_timed_out(period=PERIOD, statistic="Sum"),
            1,
            f"A {which}generation execution timed out",
        )

    def _phase_alarms(self, function_id: str, phase_id: str, function: lambda_.Function, timeout: int) -> None:
        self._alarm(
            f"{function_id}Errors",
            self._failing_errors_metric(function_id, phase_id, function),
            1,
            f"Phase {phase_id} failed a generation: a permanent error (rolled back) or a bug (Redrive "
            "after the fix). Transient errors are retried and not counted here; one that outlives its "
            "retries raises ExecutionsFailed.",
        )
        self._alarm(
            f"{function_id}Throttles",
            function.metric_throttles(period=PERIOD, statistic="Sum"),
            1,
            f"Phase {phase_id} was throttled (reserved concurrency or account limit)",
        )
        limit_ms = timeout * 1000 * DURATION_ALARM_FRACTION
        self._alarm(
            f"{function_id}DurationP95",
            function.metric_duration(period=PERIOD, statistic="p95"),
            limit_ms,
            f"Phase {phase_id} p95 duration above {DURATION_ALARM_FRACTION:.0%} of its {timeout} s timeout",
        )

    def _failing_errors_metric(self, function_id: str, phase_id: str, function: lambda_.Function) -> cloudwatch.Metric:
        """Errors of this phase that end its generation: every unhandled error but the transient ones.

        Lambda's Errors metric counts every failed attempt, so a 429 that the retrier waits out would
        page although the generation recovers. The Python runtime logs each unhandled error as
        ``[ERROR] <errorType>: <message>``; the filter counts those lines whose type is not retried
        (permanent errors, bugs).
        """
        pattern = " ".join(['"[ERROR]"', *(f"-{error.__name__}" for error in TRANSIENT_ERRORS)])
        metric_filter = logs.MetricFilter(
            self,
            f"{function_id}ErrorsNotRetried",
            log_group=function.log_group,
            filter_pattern=logs.FilterPattern.literal(pattern),
            metric_namespace=METRICS_NAMESPACE,
            metric_name=failing_errors_metric_name(phase_id),
            metric_value="1",
        )
        return metric_filter.metric(period=PERIOD, statistic="Sum")

    def _dashboard(
        self,
        config: EnvironmentConfig,
        state_machine: sfn.StateMachine,
        functions: Mapping[str, lambda_.Function],
        quick_state_machine: sfn.StateMachine | None = None,
    ) -> cloudwatch.Dashboard:
        phase_ids = [str(spec.phase) for spec in PHASE_FUNCTIONS]
        executions = cloudwatch.GraphWidget(
            title="Generation executions",
            left=[
                state_machine.metric_started(period=PERIOD, statistic="Sum", label="started"),
                state_machine.metric_succeeded(period=PERIOD, statistic="Sum", label="succeeded"),
                state_machine.metric_failed(period=PERIOD, statistic="Sum", label="failed"),
                state_machine.metric_timed_out(period=PERIOD, statistic="Sum", label="timed out"),
                state_machine.metric_aborted(period=PERIOD, statistic="Sum", label="aborted"),
            ],
            right=[  # the quick profile's machine, beside the full one
                quick_state_machine.metric_started(period=PERIOD, statistic="Sum", label="quick started"),
                quick_state_machine.metric_succeeded(period=PERIOD, statistic="Sum", label="quick succeeded"),
                quick_state_machine.metric_failed(period=PERIOD, statistic="Sum", label="quick failed"),
            ]
            if quick_state_machine is not None
            else [],
            width=12,
        )
        durations = cloudwatch.GraphWidget(
            title="Phase duration p95 (ms)",
            left=[
                functions[spec.id].metric_duration(period=PERIOD, statistic="p95", label=str(spec.phase))
                for spec in PHASE_FUNCTIONS
            ],
            width=12,
        )
        tokens = [
            cloudwatch.GraphWidget(
                title=f"{metric.name} by phase",
                left=[phase_metric(metric, phase_id) for phase_id in phase_ids],
                stacked=True,
                width=8,
            )
            for metric in TOKEN_METRICS
        ]
        cost = cloudwatch.GraphWidget(
            title="Model cost (USD) by phase",
            left=[phase_metric(COST_USD, phase_id) for phase_id in phase_ids],
            stacked=True,
            width=12,
        )
        rows = cloudwatch.GraphWidget(
            title="Rows saved by phase",
            left=[phase_metric(PHASE_ROWS, phase_id) for phase_id in phase_ids],
            stacked=True,
            width=12,
        )
        calls = cloudwatch.GraphWidget(
            title="Model calls by phase (outline or cache primer, parts, repairs)",
            left=[phase_metric(MODEL_CALLS, phase_id) for phase_id in phase_ids],
            stacked=True,
            width=24,
        )
        header = cloudwatch.TextWidget(
            markdown=f"# {config.stack_name}\nPhases: " + ", ".join(f"{p} {get_phase(p).name}" for p in phase_ids),
            width=24,
            height=2,
        )
        return cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=config.stack_name,
            widgets=[[header], [executions, durations], tokens, [cost, rows], [calls]],
        )
