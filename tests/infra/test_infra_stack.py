"""What the synthesized worldgen stack guarantees, in every environment."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.components.state_machine import profile_functions
from tests.infra.synthesized import Synthesized, render
from worldgen.functions_registry import (
    ALL_FUNCTIONS,
    FAILURE_FUNCTION,
    PHASE_FUNCTIONS,
    START_FUNCTION,
)
from worldgen.phases import ALL_PHASES, PROFILES
from worldgen.tools.statemachine import placeholders

pytestmark = pytest.mark.xdist_group("infra")


def task_states(states: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for state in states.values():
        if state["Type"] == "Task":
            found.append(state)
        for branch in state.get("Branches", []):
            found.extend(task_states(branch["States"]))
    return found


def test_stack_has_one_function_per_phase_plus_the_four_orchestration_functions(
    synthesized: Synthesized,
) -> None:
    functions = synthesized.of_type("AWS::Lambda::Function")
    assert len(functions) == len(ALL_PHASES) + 4  # the phases of every profile
    assert set(functions) == {spec.id for spec in ALL_FUNCTIONS}


def test_functions_take_runtime_architecture_memory_and_tracing_from_the_registry(
    synthesized: Synthesized,
) -> None:
    functions = synthesized.of_type("AWS::Lambda::Function")
    for spec in ALL_FUNCTIONS:
        properties = functions[spec.id]["Properties"]
        assert properties["Runtime"] == "python3.12"
        assert properties["Architectures"] == ["arm64"]
        assert properties["Handler"] == "app.handler"
        assert properties["MemorySize"] == spec.memory_mb
        assert properties["Timeout"] == spec.timeout_seconds
        assert properties["TracingConfig"] == {"Mode": "Active"}
        assert properties["LoggingConfig"]["LogGroup"]["Ref"] in synthesized.of_type("AWS::Logs::LogGroup")
        environment = properties["Environment"]["Variables"]
        assert environment["POWERTOOLS_SERVICE_NAME"] == "worldgen"
        assert environment["POWERTOOLS_METRICS_NAMESPACE"] == "Worldgen"
        assert "WORLDGEN_DATABASE_SECRET_ARN" in environment


def test_every_function_has_its_own_role(synthesized: Synthesized) -> None:
    functions = synthesized.of_type("AWS::Lambda::Function").values()
    roles = [fn["Properties"]["Role"]["Fn::GetAtt"][0] for fn in functions]
    assert len(set(roles)) == len(ALL_FUNCTIONS)


@pytest.mark.parametrize("profile", PROFILES)
def test_each_lambda_timeout_is_shorter_than_its_state_timeout(synthesized: Synthesized, profile: str) -> None:
    functions = synthesized.of_type("AWS::Lambda::Function")
    tasks = task_states(synthesized.definition(profile)["States"])
    assert len(tasks) == len(profile_functions(profile))
    for task in tasks:
        placeholder = task["Parameters"]["FunctionName"]
        function_id = placeholder.removeprefix("${").removesuffix("Arn}")
        assert functions[function_id]["Properties"]["Timeout"] < task["TimeoutSeconds"], function_id


def test_stack_has_one_state_machine_per_profile(synthesized: Synthesized) -> None:
    machines = synthesized.of_type("AWS::StepFunctions::StateMachine").values()
    assert sorted(m["Properties"]["StateMachineName"] for m in machines) == sorted(
        synthesized.state_machine_name(profile) for profile in PROFILES
    )
    quick_tasks = task_states(synthesized.definition("quick")["States"])
    assert [t["Parameters"]["Payload"].get("phase") for t in quick_tasks][:3] == ["Q1", "Q2", "Q3"]


@pytest.mark.parametrize("profile", PROFILES)
def test_definition_substitutions_fill_every_placeholder_with_its_function_arn(
    synthesized: Synthesized, profile: str
) -> None:
    properties = synthesized.state_machine_properties(profile)
    substitutions = properties["DefinitionSubstitutions"]
    assert set(substitutions) == placeholders(synthesized.definition(profile))
    assert {key: render(value) for key, value in substitutions.items()} == {
        spec.placeholder: f"<{spec.id}.Arn>" for spec in profile_functions(profile)
    }


@pytest.mark.parametrize("profile", PROFILES)
def test_state_machine_is_standard_logs_all_to_vendedlogs_and_traces(synthesized: Synthesized, profile: str) -> None:
    properties = synthesized.state_machine_properties(profile)
    name = synthesized.state_machine_name(profile)
    assert properties["StateMachineType"] == "STANDARD"
    assert properties["StateMachineName"] == name
    assert properties["TracingConfiguration"] == {"Enabled": True}
    assert properties["LoggingConfiguration"]["Level"] == "ALL"
    synthesized.template.has_resource_properties(
        "AWS::Logs::LogGroup", {"LogGroupName": f"/aws/vendedlogs/states/{name}"}
    )


@pytest.mark.parametrize("profile", PROFILES)
def test_state_machine_role_can_invoke_exactly_its_functions(synthesized: Synthesized, profile: str) -> None:
    role_id = synthesized.state_machine_properties(profile)["RoleArn"]["Fn::GetAtt"][0]
    invoked: set[str] = set()
    for policy in synthesized.of_type("AWS::IAM::Policy").values():
        if {"Ref": role_id} not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if "lambda:InvokeFunction" in actions:
                invoked |= {render(resource).split(".")[0].strip("<") for resource in statement["Resource"]}
    assert invoked == {spec.id for spec in profile_functions(profile)}


def test_failure_rule_sends_failed_timed_out_and_aborted_executions_to_the_recorder(
    synthesized: Synthesized,
) -> None:
    (rule,) = synthesized.of_type("AWS::Events::Rule").values()
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.states"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert sorted(pattern["detail"]["status"]) == ["ABORTED", "FAILED", "TIMED_OUT"]
    assert pattern["detail"]["stateMachineArn"] == [{"Ref": synthesized.state_machine_id(p)} for p in PROFILES]
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [FAILURE_FUNCTION.id, "Arn"]}


def test_a_failure_event_the_recorder_cannot_take_waits_in_a_dead_letter_queue_with_an_alarm(
    synthesized: Synthesized,
) -> None:
    (rule,) = synthesized.of_type("AWS::Events::Rule").values()
    (target,) = rule["Properties"]["Targets"]
    (queue_id,) = synthesized.of_type("AWS::SQS::Queue")
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 8
    alarms = [
        a["Properties"]
        for a in synthesized.of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
    ]
    assert len(alarms) == 1
    assert alarms[0]["Dimensions"][0]["Value"] == {"Fn::GetAtt": [queue_id, "QueueName"]}
    assert alarms[0]["AlarmActions"]


def test_action_endpoint_is_a_public_function_url_on_start_generation(synthesized: Synthesized) -> None:
    synthesized.template.has_resource_properties(
        "AWS::Lambda::Url",
        {"AuthType": "NONE", "TargetFunctionArn": {"Fn::GetAtt": [START_FUNCTION.id, "Arn"]}},
    )
    outputs = synthesized.template.to_json()["Outputs"]
    assert {"ActionUrl", "ActionSecretArn", "StateMachineArn"} <= set(outputs)


def test_action_secret_is_generated_and_readable_only_by_start_generation(synthesized: Synthesized) -> None:
    secrets = synthesized.of_type("AWS::SecretsManager::Secret")
    (action_id,) = [k for k, v in secrets.items() if v["Properties"]["Name"].endswith("/action-secret")]
    assert "GenerateSecretString" in secrets[action_id]["Properties"]
    readers = [
        policy["Properties"]["Roles"]
        for policy in synthesized.of_type("AWS::IAM::Policy").values()
        if f'"{action_id}"' in json.dumps(policy["Properties"]["PolicyDocument"])
    ]
    start_role = synthesized.of_type("AWS::Lambda::Function")[START_FUNCTION.id]["Properties"]["Role"]
    assert readers == [[{"Ref": start_role["Fn::GetAtt"][0]}]]


def test_only_start_generation_may_start_executions_of_the_state_machines(synthesized: Synthesized) -> None:
    started, starters = [], []
    for policy in synthesized.of_type("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "states:StartExecution" in json.dumps(statement["Action"]):
                started.append(statement["Resource"])
                starters.extend(policy["Properties"]["Roles"])
    start_role = synthesized.of_type("AWS::Lambda::Function")[START_FUNCTION.id]["Properties"]["Role"]
    assert {json.dumps(r) for r in started} == {json.dumps({"Ref": synthesized.state_machine_id(p)}) for p in PROFILES}
    assert {json.dumps(s) for s in starters} == {json.dumps({"Ref": start_role["Fn::GetAtt"][0]})}


def test_start_generation_knows_the_state_machine_of_each_profile(synthesized: Synthesized) -> None:
    start = synthesized.of_type("AWS::Lambda::Function")[START_FUNCTION.id]["Properties"]
    environment = start["Environment"]["Variables"]
    assert environment["WORLDGEN_STATE_MACHINE_ARN"] == {"Ref": synthesized.state_machine_id("full")}
    assert environment["WORLDGEN_QUICK_STATE_MACHINE_ARN"] == {"Ref": synthesized.state_machine_id("quick")}


@pytest.mark.parametrize("profile", PROFILES)
def test_operators_policy_allows_redrive_stop_describe_and_history_of_this_machines_executions(
    synthesized: Synthesized, profile: str
) -> None:
    name = synthesized.state_machine_name(profile)
    (policy,) = [
        p
        for p in synthesized.of_type("AWS::IAM::ManagedPolicy").values()
        if p["Properties"]["ManagedPolicyName"] == f"{name}-operators"
    ]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    on_executions = [s for s in statements if ":execution:" in render(s["Resource"])]
    # GetExecutionHistory: without it the console cannot show the failed state nor offer Redrive.
    assert [sorted(s["Action"]) for s in on_executions] == [
        [
            "states:DescribeExecution",
            "states:GetExecutionHistory",
            "states:RedriveExecution",
            "states:StopExecution",
        ]
    ]
    assert render(on_executions[0]["Resource"]).endswith(f":execution:{name}:*")


def test_alarms_cover_executions_and_errors_throttles_and_p95_duration_of_each_phase(
    synthesized: Synthesized,
) -> None:
    alarms = synthesized.of_type("AWS::CloudWatch::Alarm").values()
    # executions failed and timed out (of each profile's machine), undelivered failure events, and 3 per phase
    assert len(alarms) == 2 * len(PROFILES) + 1 + 3 * len(PHASE_FUNCTIONS)
    failed = {
        a["Properties"]["Dimensions"][0]["Value"]["Ref"]
        for a in alarms
        if a["Properties"].get("MetricName") == "ExecutionsFailed"
    }
    assert failed == {synthesized.state_machine_id(p) for p in PROFILES}
    durations = {
        alarm["Properties"]["Dimensions"][0]["Value"]["Ref"]: alarm["Properties"]["Threshold"]
        for alarm in alarms
        if alarm["Properties"].get("ExtendedStatistic") == "p95"
    }
    assert durations == {spec.id: spec.timeout_seconds * 1000 * 0.8 for spec in PHASE_FUNCTIONS}
    assert all(alarm["Properties"]["AlarmActions"] for alarm in alarms)


def test_dashboard_shows_executions_durations_tokens_cost_and_rows_per_phase(
    synthesized: Synthesized,
) -> None:
    (dashboard,) = synthesized.of_type("AWS::CloudWatch::Dashboard").values()
    body = render(dashboard["Properties"]["DashboardBody"])
    for metric in (
        "ExecutionsFailed",
        "InputTokens",
        "OutputTokens",
        "CacheReadInputTokens",
        "CostUsd",
        "PhaseRows",
        "ModelCalls",
    ):
        assert f'"{metric}"' in body, metric
    for phase in ALL_PHASES:
        assert f'"phase","{phase.id}"' in body, phase.id
    for profile in PROFILES:  # each profile's executions
        assert f'"StateMachineArn","<{synthesized.state_machine_id(profile)}>"' in body, profile


def test_stack_description_says_it_was_synthesized_without_the_dependencies_layer(
    synthesized: Synthesized,
) -> None:
    assert "WITHOUT the dependencies layer" in synthesized.template.to_json()["Description"]
    assert len(synthesized.of_type("AWS::Lambda::LayerVersion")) == 1
