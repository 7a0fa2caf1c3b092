"""The synthesized templates pass cfn-lint and cdk-nag AwsSolutions, each acknowledgment with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from cfnlint.api import ManualArgs, lint_file

from infra.app import build_app
from tests.infra.synthesized import Synthesized

pytestmark = pytest.mark.xdist_group("infra")


def test_cfn_lint_finds_no_errors_in_the_template(synthesized: Synthesized) -> None:
    matches = lint_file(synthesized.template_path, config=ManualArgs(regions=[synthesized.stack.config.region]))
    errors = [f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.id.startswith("E")]
    assert errors == []


def test_cdk_nag_leaves_no_unacknowledged_finding(synthesized: Synthesized) -> None:
    # The fixture's synth raises on any finding; a report, when cdk writes one, lists none.
    report_path = synthesized.outdir / "validation-report.json"
    report = json.loads(report_path.read_text()) if report_path.exists() else {"pluginReports": []}
    violations = [v for plugin in report["pluginReports"] for v in plugin.get("violations", [])]
    assert violations == []
    assert synthesized.template_path.exists()  # synthesis ran to the end, past the validation plugins


def test_cdk_nag_interrupts_synthesis_on_an_unacknowledged_finding(tmp_path: Path) -> None:
    """The check above passes only because cdk-nag runs: the same app with one non-compliant bucket fails."""
    app = cdk.App(context={"env": "dev", "skip_dependencies_layer": "true"}, outdir=str(tmp_path))
    stack = build_app(app)
    s3.Bucket(stack, "BucketWithoutLogsOrSsl")

    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for plugin in report["pluginReports"] for v in plugin.get("violations", [])}
    assert any("AwsSolutions-S10" in rule for rule in rules), rules


def test_every_cdk_nag_acknowledgment_has_a_written_reason(synthesized: Synthesized) -> None:
    reasons: dict[str, str] = {}
    for node in synthesized.stack.node.find_all():
        for entry in node.node.metadata:
            if "acknowledge" in entry.type.lower():
                reasons.update({f"{node.node.path} {rule}": reason for rule, reason in entry.data.items()})
    assert any("AwsSolutions-IAM5" in key for key in reasons)
    assert all(key.split(" ")[1].startswith("AwsSolutions::") for key in reasons), sorted(reasons)
    unexplained = {key: reason for key, reason in reasons.items() if len(str(reason).split()) < 5}
    assert unexplained == {}
