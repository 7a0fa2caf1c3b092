"""The synthesized stack of one environment, and helpers to read its template."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Template

from infra.stacks.worldgen_stack import WorldgenStack


@dataclass(frozen=True)
class Synthesized:
    env: str
    stack: WorldgenStack
    template: Template
    template_path: Path
    outdir: Path

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self.template.to_json()["Resources"])

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v["Type"] == resource_type}

    def state_machine_name(self, profile: str = "full") -> str:
        return f"worldgen-{self.env}" if profile == "full" else f"worldgen-{self.env}-{profile}"

    def state_machine_id(self, profile: str = "full") -> str:
        """The logical id of ``profile``'s state machine (one per profile)."""
        machines = self.of_type("AWS::StepFunctions::StateMachine")
        (machine_id,) = [
            k for k, v in machines.items() if v["Properties"]["StateMachineName"] == self.state_machine_name(profile)
        ]
        return machine_id

    def state_machine_properties(self, profile: str = "full") -> dict[str, Any]:
        return dict(self.of_type("AWS::StepFunctions::StateMachine")[self.state_machine_id(profile)]["Properties"])

    def definition(self, profile: str = "full") -> dict[str, Any]:
        """The ASL as deployed: the asset the template's DefinitionS3Location points at."""
        key = self.state_machine_properties(profile)["DefinitionS3Location"]["Key"]
        return dict(json.loads((self.outdir / f"asset.{key}").read_text()))


def render(value: Any) -> str:
    """Flatten an Fn::Join of strings and references into one readable string."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(render(part) for part in parts)
    if "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        return f"<{logical_id}.{attribute}>"
    if "Ref" in value:
        return f"<{value['Ref']}>"
    return json.dumps(value)
