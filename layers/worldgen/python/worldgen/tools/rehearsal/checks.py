"""What the rehearsal checks besides the worlds, and its report: sizes against Lambda's limit, the
settings the code read against the template's environment, and every AWS API call against the
function's role (least privilege)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from worldgen import contracts
from worldgen.repository.paths import REPO_ROOT
from worldgen.settings import Settings
from worldgen.tools.assembly import LAMBDA_UNZIPPED_LIMIT_BYTES
from worldgen.tools.rehearsal.functions import REHEARSAL_OVERRIDES, Worker
from worldgen.tools.rehearsal.template import Resolver, Stack

# Settings a function may read without the template setting them: their defaults are the
# production values (tuning knobs), or None means "use the registry / the region" by design.
SETTINGS_WITH_PRODUCTION_DEFAULTS = frozenset(
    {
        "seed",
        "scale",
        "request_timeout_seconds",
        "sdk_max_retries",
        "repair_rounds",
        "strict_phases",
        "phase_models",
        "default_model",
        "anthropic_base_url",
        "bedrock_region",
        "database_proxy_endpoint",  # unset means no RDS Proxy: what an environment without one wants
        "default_profile",  # full unless an environment chooses the quick profile for every request
        "output_tokens_per_minute",  # the documented tier default unless an environment sets its own
        "default_max_cost_usd",  # unset means no cap unless an environment sets one
        "rate_limit_max_wait_seconds",  # how long a phase waits out a 429 itself before the ASL retries
        "continuity_repair",  # none: continuity findings are advisory unless an environment chooses rules
    }
)
# One of each group is enough: a value, or the ARN of the secret holding it.
SETTINGS_ALTERNATIVES = (
    frozenset({"database_url", "database_secret_arn"}),
    frozenset({"action_secret", "action_secret_arn"}),
    frozenset({"anthropic_api_key", "anthropic_api_key_secret_arn"}),
)
# AWS's policy for the network interfaces of a function in a VPC: used by the Lambda service.
VPC_ACCESS_POLICY = ":iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
# Calls the Lambda service makes with the function's role, not the code: declared, never recorded.
LAMBDA_SERVICE_ACTIONS = (
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
)


@dataclass
class Report:
    env: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    worlds: list[str] = field(default_factory=list)
    unused: dict[str, list[str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    dependencies_layer_bytes: int | None = None

    def render(self) -> str:
        lines = [f"deploy rehearsal of {self.env}"]
        deps = self.dependencies_layer_bytes
        deps_note = (
            f"+ dependency layer ({deps / 2**20:.1f} MB)" if deps else "(dependency layer not built: make layers)"
        )
        header = f"{'function':<32} {'handler':<12} {'unzipped MB':>11} {'limit MB':>8} {'cold import ms':>14}  calls"
        lines += [f"unzipped = code + worldgen layer {deps_note}", header, "-" * len(header)]
        for row in self.rows:
            lines.append(
                f"{row['function']:<32} {row['handler']:<12} {row['mb']:>11.1f} {row['limit']:>8.0f} "
                f"{row['import_ms']:>14.0f}  {row['calls']}"
            )
        lines += [f"world: {world}" for world in self.worlds]
        if self.unused:
            lines.append("permissions no recorded or declared call needs:")
            for function, permissions in sorted(self.unused.items()):
                lines += [f"  {function}: {permission}" for permission in permissions]
        lines += [f"FAILED: {failure}" for failure in self.failures]
        lines.append("rehearsal " + ("FAILED" if self.failures else "passed"))
        return "\n".join(lines)


# -- IAM ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    source: str


def _iam_match(pattern: str, value: str, *, case_sensitive: bool) -> bool:
    """IAM wildcards: ``*`` any run of characters, ``?`` one character (fnmatch without ``[]``)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=0 if case_sensitive else re.IGNORECASE) is not None


def role_statements(template: dict[str, Any], role_id: str, resolve: Resolver) -> tuple[list[Statement], list[str]]:
    """The Allow statements of a role's inline and attached ``AWS::IAM::Policy`` documents, and the
    managed policy ARNs (their documents are not in the template)."""
    resources = template["Resources"]
    documents: list[tuple[str, dict[str, Any]]] = []
    role = resources[role_id]["Properties"]
    for policy in role.get("Policies", []):
        documents.append((f"{role_id}/{policy['PolicyName']}", policy["PolicyDocument"]))
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in resource["Properties"].get("Roles", []):
            documents.append((logical_id, resource["Properties"]["PolicyDocument"]))
    statements = []
    for source, document in documents:
        for raw in document["Statement"]:
            if raw.get("Effect") != "Allow":
                continue
            actions = raw["Action"] if isinstance(raw["Action"], list) else [raw["Action"]]
            targets = raw["Resource"] if isinstance(raw["Resource"], list) else [raw["Resource"]]
            statements.append(Statement(tuple(actions), tuple(str(resolve(t)) for t in targets), source))
    managed = [str(resolve(arn)) for arn in role.get("ManagedPolicyArns", [])]
    return statements, managed


@dataclass(frozen=True)
class ApiCall:
    action: str
    resource: str
    declared: str = ""  # why a call the rehearsal does not make is checked anyway


def call_resource(call: dict[str, Any], account: str) -> str:
    params, region = call["params"], call["region"]
    for key in ("SecretId", "stateMachineArn", "executionArn", "FunctionName"):
        if key in params:
            return str(params[key])
    if "modelId" in params:
        model = str(params["modelId"])
        return model if model.startswith("arn:") else bedrock_model_arn(model, region, account)
    return "*"


def bedrock_model_arn(model: str, region: str, account: str) -> str:
    if re.match(r"^(us|eu|apac|global|jp|au|ca)\.", model):
        return f"arn:aws:bedrock:{region}:{account}:inference-profile/{model}"
    return f"arn:aws:bedrock:{region}::foundation-model/{model}"


# -- the checks -----------------------------------------------------------------------------------


def check_sizes(workers: dict[str, Worker], report: Report) -> None:
    deps = REPO_ROOT / "layers" / "dependencies" / "python"
    deps_bytes = sum(p.stat().st_size for p in deps.rglob("*") if p.is_file()) if deps.is_dir() else 0
    report.dependencies_layer_bytes = deps_bytes or None
    for logical_id, worker in sorted(workers.items()):
        size = worker.function.unzipped_bytes() + deps_bytes
        report.rows.append(
            {
                "function": logical_id,
                "handler": worker.function.handler,
                "mb": size / 2**20,
                "limit": LAMBDA_UNZIPPED_LIMIT_BYTES / 2**20,
                "import_ms": worker.import_ms,
                "calls": 0,
            }
        )
        if size > LAMBDA_UNZIPPED_LIMIT_BYTES:
            report.failures.append(f"{logical_id}: {size / 2**20:.1f} MB unzipped, over Lambda's 250 MB")
        if "/opt/python/worldgen/" not in worker.worldgen_file:
            report.failures.append(f"{logical_id} imported worldgen from {worker.worldgen_file}")


def check_settings(workers: dict[str, Worker], report: Report) -> None:
    """A setting the code read must come from the template (or a reserved variable, or a
    declared override), unless its default is the production value by design."""
    for logical_id, worker in sorted(workers.items()):
        given = set(worker.environment) | set(REHEARSAL_OVERRIDES) | {"AWS_REGION"}
        set_fields = {name for name in Settings.model_fields if _env_names(name) & given}
        for name in sorted(worker.settings_read - set_fields - SETTINGS_WITH_PRODUCTION_DEFAULTS):
            group = next((g for g in SETTINGS_ALTERNATIVES if name in g), frozenset())
            if group & set_fields:
                continue
            report.failures.append(
                f"{logical_id} reads the setting {name} ({contracts.settings_env_name(name)}) "
                "that the template does not set"
            )


def declared_calls(stack: Stack, worker: Worker) -> list[ApiCall]:
    """Calls the rehearsal cannot make but the function would: Claude on Bedrock or with the
    Anthropic key secret (the rehearsal runs the procedural model), and the Lambda service's."""
    env = worker.environment
    calls = []
    logging_config = stack.resources[worker.function.logical_id]["Properties"].get("LoggingConfig", {})
    group = str(stack.resolve(logging_config.get("LogGroup", f"/aws/lambda/{worker.name}")))
    log_group = f"arn:aws:logs:{stack.region}:{stack.account}:log-group:{group}:*"
    for action in LAMBDA_SERVICE_ACTIONS:
        resource = log_group if action.startswith("logs:") else "*"
        calls.append(ApiCall(action, resource, "the Lambda service (logs, active tracing)"))
    provider = env.get(contracts.MODEL_PROVIDER_ENV)
    if contracts.ANTHROPIC_API_KEY_SECRET_ARN_ENV in env and provider == "anthropic":
        calls.append(
            ApiCall("secretsmanager:GetSecretValue", env[contracts.ANTHROPIC_API_KEY_SECRET_ARN_ENV], "Claude key")
        )
    if provider == "bedrock" and worker.function.module == "app" and _is_phase(worker):
        calls += _bedrock_calls(stack, worker)
    return calls


def _is_phase(worker: Worker) -> bool:
    return "make_phase_handler" in worker.function.code_dir.joinpath("app.py").read_text()


def _bedrock_calls(stack: Stack, worker: Worker) -> list[ApiCall]:
    from worldgen.model.claude import bedrock_model_id

    env = worker.environment
    region = env.get(contracts.BEDROCK_REGION_ENV, stack.region)
    phase_models = json.loads(env.get(contracts.PHASE_MODELS_ENV, "{}"))
    models = {env.get(contracts.DEFAULT_MODEL_ENV, ""), *phase_models.values()}
    calls = []
    for model in sorted(m for m in models if m):
        bedrock_id = bedrock_model_id(model, region)
        profile = bedrock_model_arn(bedrock_id, region, stack.account)
        base = re.sub(r"^(us|eu|apac|global|jp|au|ca)\.", "", bedrock_id)
        for resource in (profile, f"arn:aws:bedrock:{region}::foundation-model/{base}"):
            calls.append(ApiCall("bedrock:InvokeModelWithResponseStream", resource, f"Claude {model} on Bedrock"))
    return calls


def check_permissions(stack: Stack, workers: dict[str, Worker], report: Report) -> None:
    for logical_id, worker in sorted(workers.items()):
        role_id = stack.resources[logical_id]["Properties"]["Role"]["Fn::GetAtt"][0]
        statements, managed = role_statements(stack.template, role_id, stack.resolve)
        recorded = [
            ApiCall(f"{call['service']}:{call['operation']}", call_resource(call, stack.account))
            for call in worker.calls
        ]
        needed = recorded + declared_calls(stack, worker)
        used: set[tuple[str, str, str]] = set()
        for call in needed:
            matched = [
                (action, resource, s.source)
                for s in statements
                for action in s.actions
                for resource in s.resources
                if _iam_match(action, call.action, case_sensitive=False)
                and _iam_match(resource, call.resource, case_sensitive=True)
            ]
            if not matched:
                why = f" ({call.declared})" if call.declared else ""
                report.failures.append(f"{logical_id}: its role does not allow {call.action} on {call.resource}{why}")
            used |= set(matched)
        unused = sorted(
            {f"{action} on {resource}" for s in statements for action in s.actions for resource in s.resources}
            - {f"{a} on {r}" for a, r, _ in used}
        )
        in_vpc = "VpcConfig" in stack.resources[logical_id]["Properties"]
        unused += [
            f"managed policy {arn} (document not in the template)"
            for arn in managed
            if not (in_vpc and arn.endswith(VPC_ACCESS_POLICY))  # the Lambda service's ENIs
        ]
        if unused:
            report.unused[logical_id] = unused
        for row in report.rows:
            if row["function"] == logical_id:
                row["calls"] = len(recorded)


def _env_names(field_name: str) -> set[str]:
    """Every environment variable that sets a Settings field (its prefixed name and its aliases)."""
    names = {contracts.settings_env_name(field_name)}
    alias = Settings.model_fields[field_name].validation_alias
    choices = getattr(alias, "choices", None)
    if choices:
        names |= {str(choice) for choice in choices}
    return names
