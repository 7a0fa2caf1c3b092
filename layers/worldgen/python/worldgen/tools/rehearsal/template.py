"""The synthesized template, resolved the way CloudFormation would for this rehearsal: the physical
names and ARNs the rehearsal gives the resources, and the stack's account and region."""

from __future__ import annotations

import json
import re
from typing import Any

from worldgen.tools.rehearsal import RehearsalFailed


class Resolver:
    """``Ref``, ``Fn::GetAtt``, ``Fn::Join``, ``Fn::Sub`` and the pseudo parameters, for the
    physical names and ARNs the rehearsal gave the resources."""

    def __init__(self, account: str, region: str) -> None:
        self.refs: dict[str, str] = {
            "AWS::AccountId": account,
            "AWS::Region": region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        self.attributes: dict[tuple[str, str], str] = {}

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(item) for item in value]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            return self._ref(value["Ref"])
        if "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            if (logical_id, attribute) not in self.attributes:
                raise RehearsalFailed(f"the rehearsal cannot resolve {logical_id}.{attribute}")
            return self.attributes[(logical_id, attribute)]
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return str(separator).join(str(self(part)) for part in parts)
        if "Fn::Sub" in value:
            text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
            return re.sub(r"\$\{([^}]+)\}", lambda m: self._sub(m.group(1)), text)
        return {key: self(item) for key, item in value.items()}

    def _ref(self, name: str) -> str:
        if name not in self.refs:
            raise RehearsalFailed(f"the rehearsal cannot resolve Ref {name}")
        return self.refs[name]

    def _sub(self, name: str) -> str:
        if "." in name:
            logical_id, attribute = name.split(".", 1)
            return self.attributes[(logical_id, attribute)]
        return self._ref(name)


def template_account_region(template: dict[str, Any]) -> tuple[str, str]:
    """The stack's account and region, from the database secret's ARN (the environment config
    fixes it; synth itself makes no AWS call, so the template names no other literal ARN)."""
    text = json.dumps(template)
    match = re.search(r"arn:aws:secretsmanager:([a-z0-9-]+):(\d{12}):secret:", text)
    if not match:
        raise RehearsalFailed("no Secrets Manager ARN in the template: cannot tell its account and region")
    return match.group(2), match.group(1)


class Stack:
    """The template with the physical names and ARNs this rehearsal gives its resources (a Lambda
    function ``<stack>-<logical id>``, a role, a log group, a topic, a layer); secrets and state
    machines get theirs when the rehearsal creates them in moto."""

    def __init__(self, template: dict[str, Any], env: str) -> None:
        self.template = template
        self.env = env
        self.resources: dict[str, dict[str, Any]] = template["Resources"]
        self.account, self.region = template_account_region(template)
        self.resolve = Resolver(self.account, self.region)
        self.name = self._stack_name()
        self._name_resources()

    def of_type(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        return [(logical_id, r) for logical_id, r in self.resources.items() if r["Type"] == kind]

    def _stack_name(self) -> str:
        names = [
            str(resource["Properties"].get("StateMachineName", f"worldgen-{self.env}"))
            for _, resource in self.of_type("AWS::StepFunctions::StateMachine")
        ]
        # One machine per profile: the full profile's bears the stack's name, the others a suffix.
        return min(names, key=len, default=f"worldgen-{self.env}")

    def _name_resources(self) -> None:
        region, account, refs, attributes = self.region, self.account, self.resolve.refs, self.resolve.attributes
        for logical_id, resource in self.resources.items():
            kind, props = resource["Type"], resource.get("Properties", {})
            if kind == "AWS::Lambda::Function":
                name = f"{self.name}-{logical_id}"
                refs[logical_id] = name
                attributes[(logical_id, "Arn")] = f"arn:aws:lambda:{region}:{account}:function:{name}"
            elif kind == "AWS::IAM::Role":
                name = f"{self.name}-{logical_id}"[:64]
                refs[logical_id] = name
                attributes[(logical_id, "Arn")] = f"arn:aws:iam::{account}:role/{name}"
            elif kind == "AWS::Logs::LogGroup":
                name = props.get("LogGroupName") or f"/aws/lambda/{self.name}-{logical_id}"
                refs[logical_id] = name
                attributes[(logical_id, "Arn")] = f"arn:aws:logs:{region}:{account}:log-group:{name}:*"
            elif kind == "AWS::SNS::Topic":
                refs[logical_id] = f"arn:aws:sns:{region}:{account}:{logical_id}"
            elif kind == "AWS::Lambda::LayerVersion":
                refs[logical_id] = f"arn:aws:lambda:{region}:{account}:layer:{logical_id}:1"

    def function_environments(self) -> dict[str, dict[str, Any]]:
        """Each function's environment as the template writes it (unresolved)."""
        return {
            logical_id: resource["Properties"].get("Environment", {}).get("Variables", {})
            for logical_id, resource in self.of_type("AWS::Lambda::Function")
        }

    def database_secret_arn(self, variable: str) -> str:
        """The secret ARN the functions read the database from (``variable``: its environment name)."""
        for environment in self.function_environments().values():
            value = environment.get(variable)
            if isinstance(value, str):
                return value
        raise RehearsalFailed(f"no function sets {variable}")

    def secret_arns(self) -> list[str]:
        """Every complete Secrets Manager ARN the template names (secrets it imports)."""
        return sorted(set(re.findall(r"arn:aws:secretsmanager:[^\"*]+-[A-Za-z0-9]{6}", json.dumps(self.template))))

    def failure_rule(self) -> dict[str, Any]:
        """The properties of the stack's one EventBridge rule (failed executions -> the recorder)."""
        rules = self.of_type("AWS::Events::Rule")
        if len(rules) != 1:
            raise RehearsalFailed(f"expected one EventBridge rule, found {len(rules)}")
        return dict(rules[0][1]["Properties"])
