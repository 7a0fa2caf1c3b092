"""The rehearsal itself: moto (in this process and over HTTP for the workers), the stack's secrets and
state machines, one worker per function, Lambda dispatch, and the worlds."""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from worldgen import contracts
from worldgen.local.runtime import status_change_event, with_redrive_count
from worldgen.tools.assembly import can_mount_opt, load_template, packaged_functions
from worldgen.tools.rehearsal import RehearsalFailed
from worldgen.tools.rehearsal.checks import Report, check_permissions, check_settings, check_sizes
from worldgen.tools.rehearsal.functions import Worker, start_worker
from worldgen.tools.rehearsal.template import Stack

OWNER = "rehearsal-game-master"
INJECTED_ERROR = "InvalidModelOutput"  # a PermanentError: the state machine rolls back and fails
INJECTED_PHASE = "1B"
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


class Rehearsal:
    def __init__(self, env: str, outdir: Path, database_url: str) -> None:
        self.env = env
        self.outdir = outdir
        self.database_url = database_url
        self.stack = Stack(load_template(outdir), env)
        self.account, self.region, self.resolve = self.stack.account, self.stack.region, self.stack.resolve
        self.functions = packaged_functions(outdir)
        self.workers: dict[str, Worker] = {}
        self.by_arn: dict[str, Worker] = {}
        self.report = Report(env)
        self.failing_campaign: str | None = None  # its phase INJECTED_PHASE raises INJECTED_ERROR
        self._resources = ExitStack()

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
        self._resources.callback(mock.stop)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log lines in the report
        logging.getLogger("moto").setLevel(logging.CRITICAL)  # the interpreter logs every Fail state
        server.start()
        self._resources.callback(server.stop)
        host, port = server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        import boto3

        boto3.setup_default_session(region_name=self.region)
        self.sfn = boto3.client("stepfunctions", region_name=self.region)
        self.secretsmanager = boto3.client("secretsmanager", region_name=self.region)
        assert boto3.DEFAULT_SESSION is not None
        events = boto3.DEFAULT_SESSION.events
        events.register("before-call.lambda.Invoke", self._dispatch)  # type: ignore[arg-type]
        self._resources.callback(events.unregister, "before-call.lambda.Invoke", self._dispatch)  # type: ignore[arg-type]
        self._create_secrets()
        self._create_state_machines()
        self._start_workers()

    def __exit__(self, *exc: object) -> None:
        for worker in self.workers.values():
            worker.stop()
        self._resources.close()

    def _create_secrets(self) -> None:
        """The stack's own secrets, then every complete secret ARN the template names (imported)."""
        from moto.secretsmanager.models import secretsmanager_backends

        for logical_id, resource in self.stack.of_type("AWS::SecretsManager::Secret"):
            name = resource["Properties"].get("Name") or f"{self.stack.name}/{logical_id}"
            value = secrets.token_urlsafe(36)
            arn = self.secretsmanager.create_secret(Name=name, SecretString=value)["ARN"]
            self.resolve.refs[logical_id] = arn
        database_arn = self.stack.database_secret_arn(contracts.DATABASE_SECRET_ARN_ENV)
        store = secretsmanager_backends[self.account][self.region].secrets
        for arn in self.stack.secret_arns():
            name = arn.split(":secret:", 1)[1][:-7]
            value = database_secret_value(self.database_url) if arn == database_arn else "sk-ant-rehearsal-not-a-key"
            self.secretsmanager.create_secret(Name=name, SecretString=value)
            store[name].arn = arn  # read by the complete ARN the template names, as on AWS

    def _create_state_machines(self) -> None:
        """Every state machine of the template (one per profile); the full profile's is the stack's name."""
        machines = self.stack.of_type("AWS::StepFunctions::StateMachine")
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
        name = props.get("StateMachineName", self.stack.name)
        role = str(self.resolve(props["RoleArn"]))
        # moto's context object has no Execution.RedriveCount: the first run's is 0.
        definition = json.dumps(with_redrive_count(json.loads(definition), 0))
        arn = self.sfn.create_state_machine(name=name, definition=definition, roleArn=role)["stateMachineArn"]
        if name == self.stack.name:
            self.state_machine_arn = arn
        self.resolve.refs[logical_id] = arn
        self.resolve.attributes[(logical_id, "Name")] = name
        self.resolve.attributes[(logical_id, "Arn")] = arn

    def _start_workers(self) -> None:
        mount_opt = can_mount_opt()
        cwd = Path(self._resources.enter_context(tempfile.TemporaryDirectory(prefix="rehearsal-cwd-")))
        (cwd / "logs").mkdir()
        for logical_id, function in sorted(self.functions.items()):
            # one at a time: each cold import is timed on an otherwise idle rehearsal
            worker = start_worker(
                self.stack,
                logical_id,
                function,
                endpoint=self.endpoint,
                cwd=cwd,
                mount_opt=mount_opt,
                resources=self._resources,
            )
            self.workers[logical_id] = worker
            self.by_arn[worker.arn] = worker
            self.by_arn[worker.name] = worker

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

    def _rule_matches(self, event: dict[str, Any]) -> bool:
        from moto.events.models import EventPattern

        pattern = self.resolve(self.stack.failure_rule()["EventPattern"])
        return bool(EventPattern.load(json.dumps(pattern)).matches_event(event))  # type: ignore[arg-type]

    def _rule_target(self) -> Worker:
        (target,) = self.stack.failure_rule()["Targets"]
        arn = str(self.resolve(target["Arn"]))
        if arn not in self.by_arn:
            raise RehearsalFailed(f"the failure rule targets {arn}, not a function of the stack")
        return self.by_arn[arn]

    def run(self) -> Report:
        """Sizes, the two worlds, then the settings and permission checks (even after a failed world:
        what the functions did until then is checked too)."""
        check_sizes(self.workers, self.report)
        try:
            self.run_worlds()
        except RehearsalFailed as exc:
            self.report.failures.append(str(exc))
        check_settings(self.workers, self.report)
        check_permissions(self.stack, self.workers, self.report)
        return self.report


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
