"""The synthesized templates pass cfn-lint and cdk-nag AwsSolutions, each acknowledgment with a reason."""

from __future__ import annotations

import json

import pytest
from cfnlint.api import ManualArgs, lint_file

from tests.infra.synthesized import Synthesized

pytestmark = pytest.mark.xdist_group("infra")


def test_cfn_lint_finds_no_errors_in_the_template(synthesized: Synthesized) -> None:
    matches = lint_file(synthesized.template_path, config=ManualArgs(regions=[synthesized.stack.config.region]))
    errors = [f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.id.startswith("E")]
    assert errors == []


def test_cdk_nag_leaves_no_unacknowledged_finding(synthesized: Synthesized) -> None:
    # The fixture's synth raises ValidationFailed on any finding; a report, if written, lists none.
    report_path = synthesized.outdir / "validation-report.json"
    if report_path.exists():
        report = json.loads(report_path.read_text())
        violations = [v for plugin in report["pluginReports"] for v in plugin.get("violations", [])]
        assert violations == []


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
