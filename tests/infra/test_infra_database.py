"""The database path as deployed: TLS in staging and prod, kms:Decrypt for a customer-managed
secret key, and the README's concurrency figures written from the stack's own numbers."""

from __future__ import annotations

import json

from infra.readme import INFRA_README, readme_block, reservation
from tests.infra.synthesized import Synthesized
from worldgen.functions_registry import ALL_FUNCTIONS


def test_every_deployed_function_requires_tls_to_the_database(synthesized: Synthesized) -> None:
    functions = synthesized.of_type("AWS::Lambda::Function")
    for spec in ALL_FUNCTIONS:
        variables = functions[spec.id]["Properties"]["Environment"]["Variables"]
        assert variables["WORLDGEN_DATABASE_SSLMODE"] == "require"


def _decrypt_statements(policy: dict) -> list[dict]:
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    return [s for s in statements if "kms:Decrypt" in json.dumps(s["Action"])]


def test_a_customer_managed_secret_key_is_decryptable_through_secrets_manager_only(synthesized: Synthesized) -> None:
    config = synthesized.stack.config
    policies = synthesized.of_type("AWS::IAM::Policy")
    granted = [(pid, s) for pid, policy in policies.items() for s in _decrypt_statements(policy)]
    if config.database_secret_kms_key_arn is None:
        assert granted == []
        return
    for _, statement in granted:
        assert statement["Effect"] == "Allow"
        assert statement["Resource"] == config.database_secret_kms_key_arn
        assert statement["Condition"] == {
            "StringEquals": {"kms:ViaService": f"secretsmanager.{config.region}.amazonaws.com"}
        }
    # Every function's role, and RDS Proxy's, may decrypt the database secret.
    roles = {json.dumps(ref) for pid, _ in granted for ref in policies[pid]["Properties"]["Roles"]}
    functions = synthesized.of_type("AWS::Lambda::Function")
    function_roles = {json.dumps({"Ref": f["Properties"]["Role"]["Fn::GetAtt"][0]}) for f in functions.values()}
    assert function_roles <= roles
    if config.database_proxy is not None:
        (proxy,) = synthesized.of_type("AWS::RDS::DBProxy").values()
        assert json.dumps({"Ref": proxy["Properties"]["RoleArn"]["Fn::GetAtt"][0]}) in roles


def test_the_readme_states_the_stacks_own_reserved_concurrency(synthesized: Synthesized) -> None:
    config = synthesized.stack.config
    text = INFRA_README.read_text()
    assert readme_block() in text, "infra/README.md is stale: run `make infra-readme`"
    functions = synthesized.of_type("AWS::Lambda::Function").values()
    reserved = sum(f["Properties"].get("ReservedConcurrentExecutions", 0) for f in functions)
    assert reserved == config.reserved_concurrency
    if reserved:
        assert reservation(config).endswith(f"= {reserved}")
        assert f"reserves {reservation(config)}" in text
