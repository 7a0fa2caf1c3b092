"""cdk-nag acknowledgments: every suppressed finding names its rule, its finding and a written reason."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule: str, reason: str, *findings: str) -> None:
    """Acknowledge ``rule`` on ``construct``; with ``findings``, only those (``Resource::*`` ...).

    cdk-nag v3 matches one acknowledgment per finding: ``AwsSolutions-IAM5[Resource::*]``.
    """
    if not reason.strip():
        raise ValueError(f"acknowledging {rule} needs a reason")
    # The plugin's name prefixes the rule id, as the validation report's "Acknowledge with" hints show.
    pack = rule.split("-", 1)[0]
    ids = [f"{pack}::{rule}[{finding}]" for finding in findings] or [f"{pack}::{rule}"]
    Validations.of(construct).acknowledge(*(Acknowledgment(id=rule_id, reason=reason) for rule_id in ids))
