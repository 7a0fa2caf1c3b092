"""``make rehearse ENV=dev``: run whole worlds from the synthesized cloud assembly, not the repository.

What `cdk deploy` would upload is what runs here:

- the state machine is the template's definition (its ``DefinitionS3Location`` asset, or
  ``DefinitionString``) with ``DefinitionSubstitutions`` resolved to the rehearsal's function ARNs;
  moto executes it (in this process, also served over HTTP on 127.0.0.1 by ``ThreadedMotoServer``
  so the functions can reach Step Functions and Secrets Manager);
- every Lambda invocation goes to a warm worker process of that function: ``python -I -S`` with
  only its code asset, its layer assets (bind-mounted on ``/opt`` when possible) and the venv's
  third-party packages on ``sys.path``, cwd outside the repository, and exactly the template's
  environment plus Lambda's reserved variables, an endpoint override to the moto server, and the
  declared overrides (``REHEARSAL_OVERRIDES``);
- the secrets the template references are created in moto Secrets Manager under the template's
  account and region and read by ARN (the database secret holds the URL of a migrated embedded
  PostgreSQL database);
- a Hasura-shaped ``generateWorld`` request with the action secret read from Secrets Manager goes
  to the Function URL's handler and starts the world; a second world fails with an injected
  permanent error, and its failure event, matched against the EventBridge rule's pattern from the
  template, goes to the failure recorder;
- every AWS API call of every worker is recorded and checked against that function's role
  policies from the template (least privilege).

It fails on a handler that does not resolve, an import that needs the repository, a setting the
code reads that the template does not set, an ASL placeholder without a function, a size over
Lambda's limit, an API call the role does not allow, or a world that does not end as expected.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from worldgen import contracts
from worldgen.local.runtime import status_change_event, with_redrive_count
from worldgen.repository.paths import REPO_ROOT
from worldgen.settings import Settings
from worldgen.tools.assembly import (
    LAMBDA_UNZIPPED_LIMIT_BYTES,
    PackagedFunction,
    can_mount_opt,
    clean_environment,
    isolated_command,
    lambda_layout,
    load_template,
    packaged_functions,
)

# The only variables the rehearsal adds to a function's template environment, and why.
REHEARSAL_OVERRIDES = {
    contracts.MODEL_PROVIDER_ENV: "procedural",  # offline: no Claude, no Bedrock
    contracts.POWERTOOLS_TRACE_DISABLED_ENV: "true",  # no X-Ray daemon here
}
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
INJECTED_ERROR = "InvalidModelOutput"  # a PermanentError: the state machine rolls back and fails
INJECTED_PHASE = "1B"
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
# Calls the Lambda service makes with the function's role, not the code: declared, never recorded.
LAMBDA_SERVICE_ACTIONS = (
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
)


class RehearsalFailed(Exception):
    """The assembly would not work as deployed; the message says what and where."""


# -- the worker: one warm Lambda execution environment per function -----------------------------

WORKER = r"""
import importlib, json, os, sys, time, traceback
protocol = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)  # the handler's prints and logs go to stderr, never into the protocol
started = time.perf_counter()
try:
    module = importlib.import_module({module!r})
    handler = getattr(module, {attribute!r})
    if not callable(handler):
        raise TypeError({handler!r} + " is not callable")
except BaseException as exc:
    error = "".join(traceback.format_exception_only(exc)).strip()
    protocol.write(json.dumps({{"ready": False, "error": error}}) + "\n")
    sys.exit(1)
import_ms = (time.perf_counter() - started) * 1000
calls, settings_read = [], set()
import botocore.client
_make_api_call = botocore.client.BaseClient._make_api_call
KEYS = ("SecretId", "stateMachineArn", "executionArn", "modelId", "FunctionName", "name")
def _recorded(self, operation_name, api_params):
    calls.append({{"service": self.meta.service_model.signing_name, "operation": operation_name,
                  "region": self.meta.region_name,
                  "params": {{k: api_params[k] for k in KEYS if isinstance(api_params.get(k), str)}}}})
    return _make_api_call(self, operation_name, api_params)
botocore.client.BaseClient._make_api_call = _recorded
import worldgen.settings
_fields = set(worldgen.settings.Settings.model_fields)
_getattribute = worldgen.settings.Settings.__getattribute__
def _read(self, name):
    if name in _fields:
        settings_read.add(name)
    return _getattribute(self, name)
worldgen.settings.Settings.__getattribute__ = _read
import worldgen
protocol.write(json.dumps({{"ready": True, "import_ms": import_ms, "worldgen": worldgen.__file__}}) + "\n")

class Context:
    function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    function_version = "$LATEST"
    memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
    log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
    log_stream_name = "rehearsal"
    def __init__(self, request):
        self.aws_request_id = request["request_id"]
        self.invoked_function_arn = request["function_arn"]
        self._deadline = time.monotonic() + request["timeout"]
    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))

for line in sys.stdin:
    request = json.loads(line)
    del calls[:]
    try:
        if request.get("inject"):
            import worldgen.errors
            raise getattr(worldgen.errors, request["inject"])("injected by the deploy rehearsal")
        reply = {{"result": handler(request["event"], Context(request))}}
    except Exception as exc:
        traceback.print_exc()  # into the function's log, as Lambda's runtime does
        reply = {{"error": {{"errorType": type(exc).__name__, "errorMessage": str(exc)}}}}
    reply.update(calls=list(calls), settings_read=sorted(settings_read))
    protocol.write(json.dumps(reply, default=str) + "\n")
"""


@dataclass
class Worker:
    function: PackagedFunction
    name: str
    arn: str
    environment: dict[str, str]
    process: subprocess.Popen[str]
    log_path: Path
    import_ms: float = 0.0
    worldgen_file: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    settings_read: set[str] = field(default_factory=set)
    invocations: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ready(self) -> None:
        line = self.process.stdout.readline() if self.process.stdout else ""
        hello: dict[str, Any] = json.loads(line) if line else {"ready": False, "error": self.log_tail()}
        if not hello["ready"]:
            self.stop()
            raise RehearsalFailed(
                f"{self.function.logical_id}: handler {self.function.handler} does not import from its assets: "
                f"{hello['error']}"
            )
        self.import_ms, self.worldgen_file = hello["import_ms"], hello["worldgen"]

    def invoke(self, event: dict[str, Any], *, inject: str | None = None) -> dict[str, Any]:
        """One invocation, as Lambda runs them: one at a time per execution environment."""
        request = {
            "event": event,
            "request_id": str(uuid.uuid4()),
            "function_arn": self.arn,
            "timeout": self.function.timeout_seconds,
            "inject": inject,
        }
        with self.lock:
            assert self.process.stdin and self.process.stdout
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
            if not line:
                raise RehearsalFailed(f"{self.function.logical_id} worker died: {self.log_tail()}")
            reply: dict[str, Any] = json.loads(line)
            self.invocations += 1
            self.calls += reply.pop("calls")
            self.settings_read |= set(reply.pop("settings_read"))
        return reply

    def log_tail(self) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text.strip()[-1500:] or "no output"

    def stop(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- the template, resolved the way CloudFormation would for this rehearsal ---------------------


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


# -- the rehearsal --------------------------------------------------------------------------------


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


class Rehearsal:
    def __init__(self, env: str, outdir: Path, database_url: str) -> None:
        self.env = env
        self.outdir = outdir
        self.database_url = database_url
        self.template = load_template(outdir)
        self.resources: dict[str, dict[str, Any]] = self.template["Resources"]
        self.account, self.region = template_account_region(self.template)
        self.resolve = Resolver(self.account, self.region)
        self.functions = packaged_functions(outdir)
        self.workers: dict[str, Worker] = {}
        self.by_arn: dict[str, Worker] = {}
        self.report = Report(env)
        self.failing_campaign: str | None = None  # its phase INJECTED_PHASE raises INJECTED_ERROR
        self._stack = ExitStack()

    # -- setup -------------------------------------------------------------------------------

    def __enter__(self) -> Rehearsal:
        try:
            self._set_up()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _set_up(self) -> None:
        os.environ.update(
            MOTO_ACCOUNT_ID=self.account,
            AWS_ACCESS_KEY_ID="rehearsal",
            AWS_SECRET_ACCESS_KEY="rehearsal",  # noqa: S106 - moto's fake credentials
            AWS_DEFAULT_REGION=self.region,
        )
        from moto import mock_aws
        from moto.server import ThreadedMotoServer

        mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        mock.start()
        self._stack.callback(mock.stop)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log lines in the report
        logging.getLogger("moto").setLevel(logging.CRITICAL)  # the interpreter logs every Fail state
        server.start()
        self._stack.callback(server.stop)
        host, port = server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        import boto3

        boto3.setup_default_session(region_name=self.region)
        self.sfn = boto3.client("stepfunctions", region_name=self.region)
        self.secretsmanager = boto3.client("secretsmanager", region_name=self.region)
        assert boto3.DEFAULT_SESSION is not None
        events = boto3.DEFAULT_SESSION.events
        events.register("before-call.lambda.Invoke", self._dispatch)  # type: ignore[arg-type]
        self._stack.callback(events.unregister, "before-call.lambda.Invoke", self._dispatch)  # type: ignore[arg-type]
        self._name_resources()
        self._create_secrets()
        self._create_state_machines()
        self._start_workers()

    def __exit__(self, *exc: object) -> None:
        for worker in self.workers.values():
            worker.stop()
        self._stack.close()

    def _name_resources(self) -> None:
        stack = self._stack_name()
        for logical_id, resource in self.resources.items():
            kind, props = resource["Type"], resource.get("Properties", {})
            if kind == "AWS::Lambda::Function":
                name = f"{stack}-{logical_id}"
                self.resolve.refs[logical_id] = name
                arn = f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"
                self.resolve.attributes[(logical_id, "Arn")] = arn
            elif kind == "AWS::IAM::Role":
                name = f"{stack}-{logical_id}"[:64]
                self.resolve.refs[logical_id] = name
                self.resolve.attributes[(logical_id, "Arn")] = f"arn:aws:iam::{self.account}:role/{name}"
            elif kind == "AWS::Logs::LogGroup":
                name = props.get("LogGroupName") or f"/aws/lambda/{stack}-{logical_id}"
                self.resolve.refs[logical_id] = name
                self.resolve.attributes[(logical_id, "Arn")] = (
                    f"arn:aws:logs:{self.region}:{self.account}:log-group:{name}:*"
                )
            elif kind == "AWS::SNS::Topic":
                self.resolve.refs[logical_id] = f"arn:aws:sns:{self.region}:{self.account}:{logical_id}"
            elif kind == "AWS::Lambda::LayerVersion":
                self.resolve.refs[logical_id] = f"arn:aws:lambda:{self.region}:{self.account}:layer:{logical_id}:1"

    def _stack_name(self) -> str:
        names = [
            str(resource["Properties"].get("StateMachineName", f"worldgen-{self.env}"))
            for resource in self.resources.values()
            if resource["Type"] == "AWS::StepFunctions::StateMachine"
        ]
        # One machine per profile: the full profile's bears the stack's name, the others a suffix.
        return min(names, key=len, default=f"worldgen-{self.env}")

    def _create_secrets(self) -> None:
        """The stack's own secrets, then every complete secret ARN the template names (imported)."""
        from moto.secretsmanager.models import secretsmanager_backends

        for logical_id, resource in self.resources.items():
            if resource["Type"] != "AWS::SecretsManager::Secret":
                continue
            name = resource["Properties"].get("Name") or f"{self._stack_name()}/{logical_id}"
            value = secrets.token_urlsafe(36)
            arn = self.secretsmanager.create_secret(Name=name, SecretString=value)["ARN"]
            self.resolve.refs[logical_id] = arn
        database_arn = self._database_secret_arn()
        store = secretsmanager_backends[self.account][self.region].secrets
        for arn in sorted(set(re.findall(r"arn:aws:secretsmanager:[^\"*]+-[A-Za-z0-9]{6}", json.dumps(self.template)))):
            name = arn.split(":secret:", 1)[1][:-7]
            value = database_secret_value(self.database_url) if arn == database_arn else "sk-ant-rehearsal-not-a-key"
            self.secretsmanager.create_secret(Name=name, SecretString=value)
            store[name].arn = arn  # read by the complete ARN the template names, as on AWS

    def _database_secret_arn(self) -> str:
        for worker_env in self._raw_environments().values():
            value = worker_env.get(contracts.DATABASE_SECRET_ARN_ENV)
            if isinstance(value, str):
                return value
        raise RehearsalFailed(f"no function sets {contracts.DATABASE_SECRET_ARN_ENV}")

    def _raw_environments(self) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource["Properties"].get("Environment", {}).get("Variables", {})
            for logical_id, resource in self.resources.items()
            if resource["Type"] == "AWS::Lambda::Function"
        }

    def _create_state_machines(self) -> None:
        """Every state machine of the template (one per profile); the full profile's is the stack's name."""
        machines = [(k, r) for k, r in self.resources.items() if r["Type"] == "AWS::StepFunctions::StateMachine"]
        if not machines:
            raise RehearsalFailed("no state machine in the template")
        for logical_id, machine in machines:
            self._create_state_machine(logical_id, machine)

    def _create_state_machine(self, logical_id: str, machine: dict[str, Any]) -> None:
        props = machine["Properties"]
        if "DefinitionS3Location" in props:
            definition = (self.outdir / f"asset.{props['DefinitionS3Location']['Key']}").read_text()
        else:
            definition = str(self.resolve(props["DefinitionString"]))
        function_arns = {self.resolve.attributes[(f, "Arn")]: f for f in self.functions}
        for placeholder, value in props.get("DefinitionSubstitutions", {}).items():
            resolved = str(self.resolve(value))
            if resolved not in function_arns:
                raise RehearsalFailed(f"ASL placeholder ${{{placeholder}}} is not a function of the stack: {value}")
            definition = definition.replace(f"${{{placeholder}}}", resolved)
        left = sorted(set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", definition)))
        if left:
            raise RehearsalFailed(f"ASL placeholders with no function: {left}")
        name = props.get("StateMachineName", self._stack_name())
        role = str(self.resolve(props["RoleArn"]))
        # moto's context object has no Execution.RedriveCount: the first run's is 0.
        definition = json.dumps(with_redrive_count(json.loads(definition), 0))
        arn = self.sfn.create_state_machine(name=name, definition=definition, roleArn=role)["stateMachineArn"]
        if name == self._stack_name():
            self.state_machine_arn = arn
        self.resolve.refs[logical_id] = arn
        self.resolve.attributes[(logical_id, "Name")] = name
        self.resolve.attributes[(logical_id, "Arn")] = arn

    def _start_workers(self) -> None:
        mount_opt = can_mount_opt()
        cwd = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="rehearsal-cwd-")))
        logs = cwd / "logs"
        logs.mkdir()
        for logical_id, function in sorted(self.functions.items()):
            name = self.resolve.refs[logical_id]
            environment = {key: str(self.resolve(value)) for key, value in function.environment.items()}
            task, opt = self._stack.enter_context(lambda_layout(function))
            reserved = {
                "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region,
                "AWS_ACCESS_KEY_ID": "rehearsal",
                "AWS_SECRET_ACCESS_KEY": "rehearsal",
                "AWS_SESSION_TOKEN": "rehearsal",
                "AWS_LAMBDA_FUNCTION_NAME": name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
                "LAMBDA_TASK_ROOT": "/var/task",
                "_HANDLER": function.handler,
                "TZ": ":UTC",
                "AWS_ENDPOINT_URL": self.endpoint,  # every SDK client of the function talks to moto
            }
            code = WORKER.format(module=function.module, attribute=function.attribute, handler=function.handler)
            log_path = logs / f"{logical_id}.log"
            process = subprocess.Popen(
                isolated_command(task, opt, code, mount_opt=mount_opt),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_path.open("w"),
                text=True,
                cwd=cwd,
                env=clean_environment({**environment, **reserved, **REHEARSAL_OVERRIDES}),
            )
            arn = self.resolve.attributes[(logical_id, "Arn")]
            worker = Worker(function, name, arn, environment, process, log_path)
            worker.ready()  # one at a time: each cold import is timed on an otherwise idle rehearsal
            self.workers[logical_id] = worker
            self.by_arn[worker.arn] = worker
            self.by_arn[name] = worker

    # -- Lambda dispatch ---------------------------------------------------------------------

    def _dispatch(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        """botocore's before-call hook: the state machine's ``lambda:Invoke`` goes to the worker."""
        import io

        from botocore.awsrequest import AWSResponse, HTTPHeaders
        from botocore.response import StreamingBody

        name = unquote(params["url_path"].split("/functions/", 1)[1].split("/", 1)[0])
        payload = params.get("body") or b"{}"
        event = json.loads(payload if isinstance(payload, (str, bytes)) else payload.read())
        parsed: dict[str, Any] = {"StatusCode": 200, "ExecutedVersion": "$LATEST"}
        worker = self.by_arn.get(name)
        if worker is None:
            body: Any = {"errorType": "ResourceNotFoundException", "errorMessage": f"no function {name}"}
            parsed["FunctionError"] = "Unhandled"
        else:
            failing = str(event.get("campaign_id")) == self.failing_campaign and event.get("phase") == INJECTED_PHASE
            inject = INJECTED_ERROR if failing else None
            reply = worker.invoke(event, inject=inject)
            if "error" in reply:
                body = reply["error"]
                parsed["FunctionError"] = "Unhandled"
            else:
                body = reply["result"]
        data = json.dumps(body, default=str).encode()
        parsed["Payload"] = StreamingBody(io.BytesIO(data), len(data))
        return AWSResponse(name, 200, HTTPHeaders(), None), parsed

    # -- the worlds --------------------------------------------------------------------------

    def _function_with_env(self, name: str) -> Worker:
        found = [w for w in self.workers.values() if name in w.environment]
        if len(found) != 1:
            raise RehearsalFailed(f"expected one function with {name}, found {[w.function.logical_id for w in found]}")
        return found[0]

    def start_world(self, campaign_id: uuid.UUID, profile: str | None = None) -> dict[str, Any]:
        """A Hasura ``generateWorld`` request to the Function URL's handler, secret from Secrets Manager."""
        from worldgen.local.runtime import function_url_event

        start = self._function_with_env(contracts.ACTION_SECRET_ARN_ENV)
        secret_arn = start.environment[contracts.ACTION_SECRET_ARN_ENV]
        secret = self.secretsmanager.get_secret_value(SecretId=secret_arn)["SecretString"]
        body = {
            "action": {"name": "generateWorld"},
            "input": {"campaign_id": str(campaign_id), **({"profile": profile} if profile else {})},
            "session_variables": {"x-hasura-role": "user", "x-hasura-user-id": OWNER},
            "request_query": "mutation { generateWorld(campaign_id: $id) { generation_id } }",
        }
        reply = start.invoke(function_url_event(json.dumps(body), secret))
        if "error" in reply:
            raise RehearsalFailed(f"the action endpoint raised {reply['error']}: {start.log_tail()}")
        response = reply["result"]
        answer = json.loads(response["body"])
        if response["statusCode"] != 200:
            raise RehearsalFailed(f"generateWorld answered {response['statusCode']}: {answer}")
        return dict(answer)

    def wait(self, execution_arn: str, timeout: float = 300) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            execution = dict(self.sfn.describe_execution(executionArn=execution_arn))
            if execution["status"] in TERMINAL:
                return execution
            if time.monotonic() > deadline:
                raise RehearsalFailed(f"execution {execution_arn} still {execution['status']} after {timeout:.0f} s")
            time.sleep(0.1)

    def run_worlds(self) -> None:
        import psycopg

        from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file

        campaign = read_campaign_file(SAMPLE_CAMPAIGN).model_copy(update={"owner_id": OWNER})
        with psycopg.connect(self.database_url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
            good, bad = insert_campaign(conn, campaign), insert_campaign(conn, campaign)
            quick = insert_campaign(conn, campaign)
            for campaign_id, profile in ((good, None), (quick, "quick")):  # each profile's state machine
                started = time.perf_counter()
                answer = self.start_world(campaign_id, profile)
                execution = self.wait(answer["execution_arn"])
                status = self._generation_status(conn, answer["generation_id"])
                rows = conn.execute(
                    "SELECT total_rows AS rows FROM generations WHERE id = %s", (answer["generation_id"],)
                ).fetchone()
                label = f"generateWorld(profile: {profile})" if profile else "generateWorld"
                self.report.worlds.append(
                    f"{label} -> execution {execution['status']}, generation {status}, "
                    f"{rows['rows'] if rows else '?'} rows, {time.perf_counter() - started:.1f} s"
                )
                if execution["status"] != "SUCCEEDED" or status != "succeeded":
                    raise RehearsalFailed(
                        f"the world did not succeed: execution {execution['status']}, generation {status}"
                    )

            answer = self._start_failing_world(bad)
            execution = self.wait(answer["execution_arn"])
            event = status_change_event(execution, account=self.account, region=self.region)
            matched = self._rule_matches(event)
            succeeded_event = {**event, "detail": {**event["detail"], "status": "SUCCEEDED"}}
            if self._rule_matches(succeeded_event):
                raise RehearsalFailed("the failure rule's pattern also matches a SUCCEEDED execution")
            if not matched:
                raise RehearsalFailed(f"the failure rule's pattern does not match the {execution['status']} event")
            recorder = self._rule_target()
            reply = recorder.invoke(event)
            if "error" in reply:
                raise RehearsalFailed(f"the failure recorder raised {reply['error']}")
            status = self._generation_status(conn, answer["generation_id"])
            self.report.worlds.append(
                f"injected {INJECTED_ERROR} at {INJECTED_PHASE} -> execution {execution['status']}, "
                f"rule matched, recorder {reply['result']}, generation {status}"
            )
            if execution["status"] != "FAILED" or status != "failed":
                raise RehearsalFailed(
                    f"the failing world did not end recorded as failed: execution {execution['status']}, "
                    f"generation {status}"
                )

    def _start_failing_world(self, campaign_id: uuid.UUID) -> dict[str, Any]:
        """A world whose phase INJECTED_PHASE raises INJECTED_ERROR (a permanent error) in its worker."""
        self.failing_campaign = str(campaign_id)
        return self.start_world(campaign_id)

    def _generation_status(self, conn: Any, generation_id: str) -> str:
        row = conn.execute("SELECT status FROM generations WHERE id = %s", (generation_id,)).fetchone()
        return str(row["status"]) if row else "missing"

    def _rule(self) -> dict[str, Any]:
        rules = [r for r in self.resources.values() if r["Type"] == "AWS::Events::Rule"]
        if len(rules) != 1:
            raise RehearsalFailed(f"expected one EventBridge rule, found {len(rules)}")
        return dict(rules[0]["Properties"])

    def _rule_matches(self, event: dict[str, Any]) -> bool:
        from moto.events.models import EventPattern

        pattern = self.resolve(self._rule()["EventPattern"])
        return bool(EventPattern.load(json.dumps(pattern)).matches_event(event))  # type: ignore[arg-type]

    def _rule_target(self) -> Worker:
        (target,) = self._rule()["Targets"]
        arn = str(self.resolve(target["Arn"]))
        if arn not in self.by_arn:
            raise RehearsalFailed(f"the failure rule targets {arn}, not a function of the stack")
        return self.by_arn[arn]

    # -- checks ------------------------------------------------------------------------------

    def check_sizes(self) -> None:
        deps = REPO_ROOT / "layers" / "dependencies" / "python"
        deps_bytes = sum(p.stat().st_size for p in deps.rglob("*") if p.is_file()) if deps.is_dir() else 0
        self.report.dependencies_layer_bytes = deps_bytes or None
        for logical_id, worker in sorted(self.workers.items()):
            size = worker.function.unzipped_bytes() + deps_bytes
            self.report.rows.append(
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
                self.report.failures.append(f"{logical_id}: {size / 2**20:.1f} MB unzipped, over Lambda's 250 MB")
            if "/opt/python/worldgen/" not in worker.worldgen_file:
                self.report.failures.append(f"{logical_id} imported worldgen from {worker.worldgen_file}")

    def check_settings(self) -> None:
        """A setting the code read must come from the template (or a reserved variable, or a
        declared override), unless its default is the production value by design."""
        for logical_id, worker in sorted(self.workers.items()):
            given = set(worker.environment) | set(REHEARSAL_OVERRIDES) | {"AWS_REGION"}
            set_fields = {name for name in Settings.model_fields if _env_names(name) & given}
            for name in sorted(worker.settings_read - set_fields - SETTINGS_WITH_PRODUCTION_DEFAULTS):
                group = next((g for g in SETTINGS_ALTERNATIVES if name in g), frozenset())
                if group & set_fields:
                    continue
                self.report.failures.append(
                    f"{logical_id} reads the setting {name} ({contracts.settings_env_name(name)}) "
                    "that the template does not set"
                )

    def declared_calls(self, worker: Worker) -> list[ApiCall]:
        """Calls the rehearsal cannot make but the function would: Claude on Bedrock or with the
        Anthropic key secret (the rehearsal runs the procedural model), and the Lambda service's."""
        env = worker.environment
        calls = []
        logging_config = self.resources[worker.function.logical_id]["Properties"].get("LoggingConfig", {})
        group = str(self.resolve(logging_config.get("LogGroup", f"/aws/lambda/{worker.name}")))
        log_group = f"arn:aws:logs:{self.region}:{self.account}:log-group:{group}:*"
        for action in LAMBDA_SERVICE_ACTIONS:
            resource = log_group if action.startswith("logs:") else "*"
            calls.append(ApiCall(action, resource, "the Lambda service (logs, active tracing)"))
        provider = env.get(contracts.MODEL_PROVIDER_ENV)
        if contracts.ANTHROPIC_API_KEY_SECRET_ARN_ENV in env and provider == "anthropic":
            calls.append(
                ApiCall("secretsmanager:GetSecretValue", env[contracts.ANTHROPIC_API_KEY_SECRET_ARN_ENV], "Claude key")
            )
        if provider == "bedrock" and worker.function.module == "app" and self._is_phase(worker):
            calls += self._bedrock_calls(worker)
        return calls

    def _is_phase(self, worker: Worker) -> bool:
        return "make_phase_handler" in worker.function.code_dir.joinpath("app.py").read_text()

    def _bedrock_calls(self, worker: Worker) -> list[ApiCall]:
        from worldgen.model.claude import bedrock_model_id

        env = worker.environment
        region = env.get(contracts.BEDROCK_REGION_ENV, self.region)
        phase_models = json.loads(env.get(contracts.PHASE_MODELS_ENV, "{}"))
        models = {env.get(contracts.DEFAULT_MODEL_ENV, ""), *phase_models.values()}
        calls = []
        for model in sorted(m for m in models if m):
            bedrock_id = bedrock_model_id(model, region)
            profile = bedrock_model_arn(bedrock_id, region, self.account)
            base = re.sub(r"^(us|eu|apac|global|jp|au|ca)\.", "", bedrock_id)
            for resource in (profile, f"arn:aws:bedrock:{region}::foundation-model/{base}"):
                calls.append(ApiCall("bedrock:InvokeModelWithResponseStream", resource, f"Claude {model} on Bedrock"))
        return calls

    def check_permissions(self) -> None:
        for logical_id, worker in sorted(self.workers.items()):
            role_id = self.resources[logical_id]["Properties"]["Role"]["Fn::GetAtt"][0]
            statements, managed = role_statements(self.template, role_id, self.resolve)
            recorded = [
                ApiCall(f"{call['service']}:{call['operation']}", call_resource(call, self.account))
                for call in worker.calls
            ]
            needed = recorded + self.declared_calls(worker)
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
                    self.report.failures.append(
                        f"{logical_id}: its role does not allow {call.action} on {call.resource}{why}"
                    )
                used |= set(matched)
            unused = sorted(
                {f"{action} on {resource}" for s in statements for action in s.actions for resource in s.resources}
                - {f"{a} on {r}" for a, r, _ in used}
            )
            in_vpc = "VpcConfig" in self.resources[logical_id]["Properties"]
            unused += [
                f"managed policy {arn} (document not in the template)"
                for arn in managed
                if not (in_vpc and arn.endswith(VPC_ACCESS_POLICY))  # the Lambda service's ENIs
            ]
            if unused:
                self.report.unused[logical_id] = unused
            for row in self.report.rows:
                if row["function"] == logical_id:
                    row["calls"] = len(recorded)

    def run(self) -> Report:
        """Sizes, the two worlds, then the settings and permission checks (even after a failed world:
        what the functions did until then is checked too)."""
        self.check_sizes()
        try:
            self.run_worlds()
        except RehearsalFailed as exc:
            self.report.failures.append(str(exc))
        self.check_settings()
        self.check_permissions()
        return self.report


def _env_names(field_name: str) -> set[str]:
    """Every environment variable that sets a Settings field (its prefixed name and its aliases)."""
    names = {contracts.settings_env_name(field_name)}
    alias = Settings.model_fields[field_name].validation_alias
    choices = getattr(alias, "choices", None)
    if choices:
        names |= {str(choice) for choice in choices}
    return names


OWNER = "rehearsal-game-master"


def database_secret_value(conninfo: str) -> str:
    """The database secret's value: a ``postgresql://`` URL (a form worldgen reads besides RDS's JSON)."""
    from urllib.parse import quote, urlencode

    import psycopg

    if conninfo.startswith("postgres"):
        return conninfo
    info = psycopg.conninfo.conninfo_to_dict(conninfo)
    user = quote(str(info.pop("user", "postgres")))
    password = info.pop("password", None)
    dbname = quote(str(info.pop("dbname", "postgres")))
    auth = f"{user}:{quote(str(password))}" if password else user
    return f"postgresql://{auth}@/{dbname}?{urlencode({k: str(v) for k, v in info.items()})}"


# -- command line -----------------------------------------------------------------------------------


def synthesize(env: str, outdir: Path) -> None:
    """``cdk synth`` of ``env`` without the arm64 dependency layer (the venv provides those packages)."""
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "infra" / "app.py"), "-c", f"env={env}", "-c", "skip_dependencies_layer=true"],
        cwd=REPO_ROOT,
        env={**os.environ, "CDK_OUTDIR": str(outdir)},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RehearsalFailed(f"cdk synth of {env} failed: {result.stderr.strip()[-2000:]}")


@contextmanager
def rehearsal_database(url: str | None) -> Iterator[str]:
    """``url`` (already migrated), else a fresh, migrated database of the embedded server."""
    if url:
        yield url
        return
    from worldgen.local.postgres import drop_database, embedded_server, with_database
    from worldgen.repository.migrator import migrate

    admin = str(embedded_server().get_uri())
    name = f"worldgen_rehearsal_{os.getpid()}"
    drop_database(admin, name)
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database = with_database(admin, name)
    migrate(database)
    try:
        yield database
    finally:
        from worldgen.db.connection import reset_shared_connection

        reset_shared_connection()
        drop_database(admin, name)


def rehearse(env: str, *, cdk_out: Path | None = None, database_url: str | None = None) -> Report:
    with ExitStack() as stack:
        if cdk_out is None:
            cdk_out = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"rehearsal-cdk-{env}-")))
            synthesize(env, cdk_out)
        database = stack.enter_context(rehearsal_database(database_url))
        rehearsal = Rehearsal(env, cdk_out, database)
        try:
            with rehearsal:
                return rehearsal.run()
        except RehearsalFailed as exc:
            rehearsal.report.failures.append(str(exc))
            return rehearsal.report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="worldgen rehearse", description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="dev", help="the environment to synthesize and rehearse")
    parser.add_argument("--cdk-out", type=Path, help="an already synthesized cloud assembly (skips synth)")
    parser.add_argument("--database-url", help="a migrated PostgreSQL database (default: the embedded server)")
    args = parser.parse_args(argv)
    try:
        report = rehearse(args.env, cdk_out=args.cdk_out, database_url=args.database_url)
    except (RehearsalFailed, FileNotFoundError, ValueError) as exc:
        print(f"worldgen rehearse: {exc}", file=sys.stderr)
        return 1
    print(report.render())
    return 1 if report.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
