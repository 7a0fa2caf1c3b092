"""The template uses the contract strings of ``worldgen.contracts``, the ones the runtime uses.

A rename in ``worldgen.contracts`` changes the stack and the handlers together; these tests fail
when the template sets a variable, a namespace or a metric name the runtime does not know.
"""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools.metrics import MetricUnit

from tests.infra.synthesized import Synthesized
from worldgen import contracts
from worldgen.settings import Settings

pytestmark = pytest.mark.xdist_group("infra")


def test_every_function_environment_is_powertools_contracts_plus_settings_fields(synthesized: Synthesized) -> None:
    settings_names = {contracts.settings_env_name(name) for name in Settings.model_fields}
    for logical_id, function in synthesized.of_type("AWS::Lambda::Function").items():
        environment = function["Properties"]["Environment"]["Variables"]
        for name, value in contracts.POWERTOOLS_ENVIRONMENT.items():
            assert environment[name] == value, (logical_id, name)
        others = set(environment) - set(contracts.POWERTOOLS_ENVIRONMENT)
        assert others <= settings_names, f"{logical_id} sets variables no setting reads: {others - settings_names}"
        assert contracts.DATABASE_SECRET_ARN_ENV in environment


def test_the_action_function_gets_its_secret_and_state_machine_by_the_contract_names(
    synthesized: Synthesized,
) -> None:
    environment = synthesized.of_type("AWS::Lambda::Function")["StartGenerationFunction"]["Properties"]
    variables = environment["Environment"]["Variables"]
    assert {contracts.ACTION_SECRET_ARN_ENV, contracts.STATE_MACHINE_ARN_ENV} <= set(variables)
    secret = synthesized.of_type("AWS::SecretsManager::Secret")
    descriptions = [r["Properties"].get("Description", "") for r in secret.values()]
    assert any(contracts.ACTION_SECRET_HEADER in d for d in descriptions)


def test_dashboard_metrics_are_the_metrics_the_phases_emit(synthesized: Synthesized) -> None:
    (dashboard,) = synthesized.of_type("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert f'\\"{contracts.METRICS_NAMESPACE}\\",\\"{contracts.COST_USD.name}\\"' in body
    for metric in contracts.PHASE_METRICS:
        assert f'\\"{metric.name}\\"' in body, metric.name
    assert f'\\"service\\",\\"{contracts.SERVICE_NAME}\\"' in body


def test_alarm_metrics_live_in_the_namespaces_the_stack_owns(synthesized: Synthesized) -> None:
    namespaces = {
        alarm["Properties"].get("Namespace") for alarm in synthesized.of_type("AWS::CloudWatch::Alarm").values()
    }
    # Lambda and Step Functions metrics, and worldgen's own only under its contract namespace.
    assert namespaces <= {"AWS/Lambda", "AWS/States", "AWS/SQS", contracts.METRICS_NAMESPACE, None}


@pytest.mark.parametrize("synthesized", ["dev"], indirect=True)
def test_every_metric_unit_is_a_cloudwatch_unit_and_cost_is_not_a_count(synthesized: Synthesized) -> None:
    units = {unit.value for unit in MetricUnit}
    for metric in contracts.ALL_METRICS:
        assert metric.unit in units, metric
    assert contracts.COST_USD.unit == MetricUnit.NoUnit.value
