"""Synthesize each environment's stack ONCE per test session (the same path as ``cdk synth``)."""

from __future__ import annotations

import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

REPO_ROOT = Path(__file__).resolve().parents[2]
for path in (REPO_ROOT / "layers" / "worldgen" / "python", REPO_ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from infra.app import build_app  # noqa: E402
from tests.infra.synthesized import Synthesized  # noqa: E402

ENVIRONMENTS = ("dev", "staging", "prod")


@pytest.fixture(scope="session", params=ENVIRONMENTS)
def synthesized(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    env = str(request.param)
    outdir = tmp_path_factory.mktemp(f"cdk-{env}")
    app = cdk.App(context={"env": env, "skip_dependencies_layer": "true"}, outdir=str(outdir))
    stack = build_app(app)
    assembly = app.synth()  # raises ValidationFailed on any unacknowledged cdk-nag finding
    template_path = Path(assembly.get_stack_artifact(stack.artifact_id).template_full_path)
    return Synthesized(env, stack, Template.from_stack(stack), template_path, outdir)
