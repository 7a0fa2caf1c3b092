"""The synthesized templates pass cfn-lint and cdk-nag AwsSolutions (with a reason for every acknowledgment)."""

from __future__ import annotations

import json

import pytest
from cfnlint.api import ManualArgs, lint_file

from tests.infra.conftest import Synthesized

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
    acknowledgments = [
        entry.data
        for node in synthesized.stack.node.find_all()
        for entry in node.node.metadata
        if "acknowledge" in entry.type.lower()
    ]
    assert acknowledgments, "expected the stack's documented acknowledgments"
    for data in acknowledgments:
        for ack in data if isinstance(data, list) else [data]:
            reason = ack.get("reason", "") if isinstance(ack, dict) else ""
            assert len(reason.split()) >= 5, ack
