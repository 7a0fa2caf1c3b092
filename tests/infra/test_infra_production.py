"""What a real deploy needs beyond a clean synth: alarms that can publish, a network path, bounded
concurrency, pooled connections, throttling that waits, and operations (issue 16)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.components.network import endpoint_services
from infra.config import load_environment
from infra.paths import REPO_ROOT
from tests.infra.synthesized import Synthesized, render
from worldgen.errors import TRANSIENT_ERRORS, permanent_error_names, throttling_error_names
from worldgen.functions_registry import ALL_FUNCTIONS, PHASE_FUNCTIONS
from worldgen.tools.statemachine import THROTTLING_RETRY_POLICY

pytestmark = pytest.mark.xdist_group("infra")

SERVICE_FUNCTIONS = [spec for spec in ALL_FUNCTIONS if spec.phase is None]
INFRA_README = REPO_ROOT / "infra" / "README.md"


def statements_of(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return list(policy["Properties"]["PolicyDocument"]["Statement"])


# 1. Alarms that can publish
def test_alarm_topic_policy_lets_cloudwatch_publish_only_for_this_stacks_alarms(synthesized: Synthesized) -> None:
    (topic_id,) = synthesized.of_type("AWS::SNS::Topic")
    (policy,) = synthesized.of_type("AWS::SNS::TopicPolicy").values()
    assert policy["Properties"]["Topics"] == [{"Ref": topic_id}]
    (publish,) = [s for s in statements_of(policy) if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert publish["Effect"] == "Allow"
    assert publish["Action"] == "sns:Publish"
    source = render(publish["Condition"]["ArnLike"]["aws:SourceArn"])
    account = synthesized.stack.config.account
    assert source.endswith(f":cloudwatch:eu-west-1:{account}:alarm:worldgen-{synthesized.env}-*")
    assert publish["Condition"]["StringEquals"]["aws:SourceAccount"] == account
    # The TLS-only deny stays (enforce_ssl), so the allow is added to it, not instead of it.
    assert any(s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s) for s in statements_of(policy))


def test_every_alarm_is_named_inside_the_prefix_the_topic_policy_admits(synthesized: Synthesized) -> None:
    alarms = synthesized.of_type("AWS::CloudWatch::Alarm").values()
    assert alarms
    for alarm in alarms:
        assert alarm["Properties"]["AlarmName"].startswith(f"worldgen-{synthesized.env}-")


# 2. A network path that exists
def test_functions_without_a_nat_route_get_interface_endpoints_for_every_api_they_call(
    synthesized: Synthesized,
) -> None:
    config = synthesized.stack.config
    endpoints = synthesized.of_type("AWS::EC2::VPCEndpoint").values()
    if config.network is None or config.network.egress == "nat":
        assert list(endpoints) == []
        return
    services = sorted(render(e["Properties"]["ServiceName"]).rsplit(".", 1)[-1] for e in endpoints)
    assert services == sorted(endpoint_services(config))
    assert {"secretsmanager", "states"} <= set(services)
    assert ("bedrock-runtime" in services) is (config.model_provider == "bedrock")
    for endpoint in endpoints:
        assert endpoint["Properties"]["PrivateDnsEnabled"] is True
        assert endpoint["Properties"]["SubnetIds"] == list(config.network.subnet_ids)
    (group,) = synthesized.of_type("AWS::EC2::SecurityGroup").values()
    ingress = group["Properties"]["SecurityGroupIngress"]
    assert [(rule["FromPort"], rule["SourceSecurityGroupId"]) for rule in ingress] == [
        (443, group_id) for group_id in config.network.security_group_ids
    ]


def test_staging_uses_endpoints_and_prod_states_its_nat_route_for_the_anthropic_api() -> None:
    staging, prod = load_environment("staging"), load_environment("prod")
    assert staging.network is not None and staging.network.egress == "endpoints"
    assert prod.network is not None and prod.network.egress == "nat" and prod.model_provider == "anthropic"


# 3. Reserved concurrency that deploys and bounds the service functions
def test_service_functions_have_bounded_reserved_concurrency_where_the_config_reserves(
    synthesized: Synthesized,
) -> None:
    config = synthesized.stack.config
    functions = synthesized.of_type("AWS::Lambda::Function")
    reserved = {spec.id: functions[spec.id]["Properties"].get("ReservedConcurrentExecutions") for spec in ALL_FUNCTIONS}
    assert {reserved[spec.id] for spec in PHASE_FUNCTIONS} == {config.phase_reserved_concurrency}
    assert {reserved[spec.id] for spec in SERVICE_FUNCTIONS} == {config.service_reserved_concurrency}
    if config.name != "dev":  # dev accounts often have a quota of 10: nothing reserved there
        assert config.service_reserved_concurrency is not None
        assert 1 <= config.service_reserved_concurrency <= 20
    total = sum(value or 0 for value in reserved.values())
    assert total == config.reserved_concurrency
    assert config.lambda_concurrency_quota is None or config.lambda_concurrency_quota >= total + 100


# 4. Connections that scale
def test_prod_pools_connections_through_rds_proxy_and_the_functions_connect_to_it(synthesized: Synthesized) -> None:
    config = synthesized.stack.config
    proxies = synthesized.of_type("AWS::RDS::DBProxy")
    functions = synthesized.of_type("AWS::Lambda::Function").values()
    if config.database_proxy is None:
        assert proxies == {}
        assert all("WORLDGEN_DATABASE_PROXY_ENDPOINT" not in json.dumps(f) for f in functions)
        return
    (proxy_id,) = proxies
    proxy = proxies[proxy_id]["Properties"]
    assert proxy["EngineFamily"] == "POSTGRESQL" and proxy["RequireTLS"] is True
    (auth,) = proxy["Auth"]
    assert auth["SecretArn"] == config.database_secret_arn
    (targets,) = synthesized.of_type("AWS::RDS::DBProxyTargetGroup").values()
    assert targets["Properties"]["DBInstanceIdentifiers"] == [config.database_proxy.identifier]
    pool = targets["Properties"]["ConnectionPoolConfigurationInfo"]
    assert pool["MaxConnectionsPercent"] == config.database_proxy.max_connections_percent
    for function in functions:
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables["WORLDGEN_DATABASE_PROXY_ENDPOINT"] == {"Fn::GetAtt": [proxy_id, "Endpoint"]}


# 5. Throttling that waits
def test_deployed_definition_retries_throttling_first_with_waits_up_to_five_minutes(synthesized: Synthesized) -> None:
    def tasks(states: dict[str, Any]) -> list[dict[str, Any]]:
        found = [s for s in states.values() if s["Type"] == "Task"]
        for state in states.values():
            for branch in state.get("Branches", []):
                found.extend(tasks(branch["States"]))
        return found

    for task in tasks(synthesized.definition()["States"]):
        throttling, lambda_faults, general = task["Retry"]
        assert throttling["ErrorEquals"] == throttling_error_names()
        assert lambda_faults["ErrorEquals"] == ["Sandbox.Timedout", "Lambda.Unknown"]  # a killed Lambda, retried
        assert throttling["MaxDelaySeconds"] == THROTTLING_RETRY_POLICY["MaxDelaySeconds"] == 300
        assert throttling["MaxAttempts"] > general["MaxAttempts"]
        assert "Lambda.ClientExecutionTimeoutException" in general["ErrorEquals"]
        assert not set(throttling["ErrorEquals"]) & set(general["ErrorEquals"])


# 8. Operations
def test_only_prod_has_termination_protection(synthesized: Synthesized) -> None:
    assert synthesized.stack.termination_protection is (synthesized.env == "prod")


def test_phase_errors_alarms_count_only_errors_the_state_machine_does_not_retry(synthesized: Synthesized) -> None:
    filters = synthesized.of_type("AWS::Logs::MetricFilter")
    functions = synthesized.of_type("AWS::Lambda::Function")
    alarms = {
        alarm["Properties"]["AlarmName"]: alarm["Properties"]
        for alarm in synthesized.of_type("AWS::CloudWatch::Alarm").values()
    }
    for spec in PHASE_FUNCTIONS:
        alarm = alarms[f"worldgen-{synthesized.env}-{spec.id}Errors"]
        assert alarm["Namespace"] == "Worldgen"
        assert "Dimensions" not in alarm
        (metric_filter,) = [
            f["Properties"]
            for f in filters.values()
            if f["Properties"]["MetricTransformations"][0]["MetricName"] == alarm["MetricName"]
        ]
        assert metric_filter["LogGroupName"] == functions[spec.id]["Properties"]["LoggingConfig"]["LogGroup"]
        pattern = metric_filter["FilterPattern"]
        assert pattern.startswith('"[ERROR]"')  # the Python runtime's line for an unhandled error
        for transient in TRANSIENT_ERRORS:
            assert f"-{transient.__name__}" in pattern.split()
        assert not any(f"-{name}" in pattern.split() for name in permanent_error_names())


def test_readme_says_how_to_recreate_every_retained_resource_with_a_fixed_name(synthesized: Synthesized) -> None:
    if synthesized.env != "prod":
        pytest.skip("only prod retains resources")
    named = {
        "AWS::Logs::LogGroup": "LogGroupName",
        "AWS::SecretsManager::Secret": "Name",
    }
    retained = [
        render(resource["Properties"][named[resource["Type"]]])
        for resource in synthesized.resources.values()
        if resource.get("DeletionPolicy") == "Retain" and named.get(resource["Type"]) in resource.get("Properties", {})
    ]
    assert retained  # the state machine's log group, the action secret
    recreate = INFRA_README.read_text().split("### Recreate a deleted stack", 1)[1].split("\n## ", 1)[0]
    for name in retained:
        generic = name.replace("worldgen-prod", "worldgen-<env>")
        assert generic in recreate, generic
