"""Synthesize each environment's stack ONCE per test session (the same path as ``cdk synth``)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

REPO_ROOT = Path(__file__).resolve().parents[2]
for path in (REPO_ROOT / "layers" / "worldgen" / "python", REPO_ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from infra.app import build_app  # noqa: E402
from infra.stacks.worldgen_stack import WorldgenStack  # noqa: E402

ENVIRONMENTS = ("dev", "staging", "prod")


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

    def state_machine_properties(self) -> dict[str, Any]:
        (machine,) = self.of_type("AWS::StepFunctions::StateMachine").values()
        return dict(machine["Properties"])

    def definition(self) -> dict[str, Any]:
        """The ASL as deployed: the asset the template's DefinitionS3Location points at."""
        key = self.state_machine_properties()["DefinitionS3Location"]["Key"]
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


@pytest.fixture(scope="session", params=ENVIRONMENTS)
def synthesized(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    env = str(request.param)
    outdir = tmp_path_factory.mktemp(f"cdk-{env}")
    app = cdk.App(context={"env": env, "skip_dependencies_layer": "true"}, outdir=str(outdir))
    stack = build_app(app)
    assembly = app.synth()  # raises ValidationFailed on any unacknowledged cdk-nag finding
    template_path = Path(assembly.get_stack_artifact(stack.artifact_id).template_full_path)
    return Synthesized(env, stack, Template.from_stack(stack), template_path, outdir)
