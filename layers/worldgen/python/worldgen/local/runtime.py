"""The local Step Functions runtime: moto executes the committed ASL; Lambda calls run in-process.

moto's Lambda backend runs code only in Docker, so the runtime answers the state machine's
``lambda:Invoke`` calls itself through botocore's ``before-call`` event (the hook botocore offers
for exactly this) and calls the handler of ``functions/<folder>/app.py`` with a Lambda context
whose remaining time counts down from the function's timeout. When an execution ends FAILED,
TIMED_OUT or ABORTED it delivers to ``record_generation_failure`` the EventBridge event AWS sends,
and keeps what a redrive of it needs (``redrive``: RedriveExecution as AWS documents it, which moto
lacks; ``worldgen.local.redrive``).
"""

from __future__ import annotations

import io
import json
import os
import secrets
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from worldgen import contracts
from worldgen.db.connection import connect, release_thread_connection
from worldgen.db.leases import acquire_execution_lease, mark_own_session, release_execution_lease
from worldgen.errors import LAMBDA_TIMEOUT
from worldgen.functions_registry import ALL_FUNCTIONS, FAILURE_FUNCTION, START_FUNCTION, LambdaFunction
from worldgen.local.aws_objects import (
    ACCOUNT,
    REGION,
    STATE_MACHINE_NAME,
    Handler,
    LocalLambdaContext,
    busy_response,
    function_arn,
    function_url_event,
    load_handler,
    status_change_event,
)
from worldgen.local.redrive import (
    ExecutionNotRedrivable,
    ExecutionRecord,
    check_redrivable,
    redrive_definition,
    with_redrive_count,
)
from worldgen.repository.paths import ASL_PATH, ASL_PATHS
from worldgen.settings import get_settings

# The ARN setting of each profile's state machine (the full profile's is the unsuffixed one).
PROFILE_ARN_ENVS = {"full": contracts.STATE_MACHINE_ARN_ENV, "quick": contracts.QUICK_STATE_MACHINE_ARN_ENV}
TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")

# How long a resume looks again for a lease whose process just ended (its session closing).
LEASE_RELEASE_GRACE_SECONDS = 2.0


class LambdaTimedOut(Exception):
    """The handler did not return within the function's timeout."""


def deployed_definition(definition: str | None = None) -> dict[str, Any]:
    """The ASL as deployed: the functions' ARNs for their placeholders."""
    text = definition if definition is not None else ASL_PATH.read_text()
    for function in ALL_FUNCTIONS:
        text = text.replace(f"${{{function.placeholder}}}", function_arn(function))
    parsed: dict[str, Any] = json.loads(text)
    return parsed


class LocalRuntime:
    """moto + in-process Lambda. Use as a context manager; ``overrides`` replace handlers by id."""

    def __init__(
        self,
        overrides: dict[str, Handler] | None = None,
        *,
        definition: str | None = None,
        environment: dict[str, str] | None = None,
        quick_definition: str | None = None,
        records_dir: Path | None = None,
        lambda_timeouts: dict[str, float] | None = None,
    ) -> None:
        """``records_dir``: where ended executions are kept for a redrive from another process
        (``worldgen redrive``); without it, only this runtime can redrive its executions.
        ``lambda_timeouts``: a function's timeout in seconds by id, instead of the registry's."""
        self.overrides = overrides or {}
        self.lambda_timeouts = lambda_timeouts or {}
        self.definition = definition
        self.quick_definition = quick_definition
        self.environment = environment or {}
        self.functions = {function_arn(f): f for f in ALL_FUNCTIONS}
        self.handlers: dict[str, Handler] = {}
        self.invocations: list[tuple[str, dict[str, Any]]] = []
        self.timings: list[tuple[str, float, float]] = []  # (function id, start, end), perf_counter
        self.delivered_failures: list[dict[str, Any]] = []
        self.records_dir = records_dir
        self.records: dict[str, ExecutionRecord] = {}  # ended executions, by ARN: what a redrive needs
        self.redrive_counts: dict[str, int] = {}  # executions redriven here, by ARN
        self._ran: dict[str, dict[str, Any]] = {}  # the definition each redriven execution runs
        self._saved_env: dict[str, str | None] = {}
        # Executions this runtime started through the action, by ARN -> generation id: each holds
        # an execution lease (worldgen.db.leases) until it ended and its end was recorded.
        self.leases: dict[str, str] = {}
        self._lease_conn: Any = None
        self._held: set[str] = set()
        self._resuming: Counter[str] = Counter()  # resume requests in their handler, per generation
        self._settled: set[str] = set()
        self._lock = threading.RLock()
        self._stop = threading.Event()

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> LocalRuntime:
        from moto import mock_aws

        self.action_secret = self.environment.get(contracts.ACTION_SECRET_ENV) or secrets.token_urlsafe(24)
        env = {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            contracts.POWERTOOLS_TRACE_DISABLED_ENV: "true",
            contracts.POWERTOOLS_METRICS_DISABLED_ENV: "true",
            contracts.POWERTOOLS_LOG_LEVEL_ENV: os.environ.get(contracts.POWERTOOLS_LOG_LEVEL_ENV, "WARNING"),
            contracts.ACTION_SECRET_ENV: self.action_secret,
            **self.environment,
        }
        # Parallel branches share one Metrics object in one process here (one per process on AWS).
        warnings.filterwarnings("ignore", message="Dimension 'phase' has already been added")
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start()
        self._set_env(env)
        import boto3

        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        boto3.DEFAULT_SESSION.events.register("before-call.lambda.Invoke", self._invoke)  # type: ignore[union-attr,arg-type]
        role = f"arn:aws:iam::{ACCOUNT}:role/{STATE_MACHINE_NAME}"
        # One state machine per profile, as CDK deploys them; the action starts its profile's.
        definitions = {"full": self.definition, "quick": self.quick_definition}
        self.definitions: dict[str, dict[str, Any]] = {}  # by state machine ARN, RedriveCount unresolved
        self.state_machine_arns = {}
        for profile in PROFILE_ARN_ENVS:
            deployed = deployed_definition(definitions[profile] or ASL_PATHS[profile].read_text())
            arn = self.sfn.create_state_machine(
                name=STATE_MACHINE_NAME if profile == "full" else f"{STATE_MACHINE_NAME}-{profile}",
                definition=json.dumps(with_redrive_count(deployed, 0)),
                roleArn=role,
            )["stateMachineArn"]
            self.state_machine_arns[profile] = arn
            self.definitions[arn] = deployed
        self.state_machine_arn = self.state_machine_arns["full"]
        self._set_env({PROFILE_ARN_ENVS[p]: arn for p, arn in self.state_machine_arns.items()})
        self._refresh_cached_clients()
        self._watcher = threading.Thread(target=self._watch, name="worldgen-execution-watcher", daemon=True)
        self._watcher.start()
        return self

    def __exit__(self, *exc: object) -> None:
        import boto3

        self._stop.set()
        self._watcher.join(timeout=5)
        if self._lease_conn is not None and not self._lease_conn.closed:
            self._lease_conn.close()  # a process that exits releases its leases the same way

        if boto3.DEFAULT_SESSION is not None:
            boto3.DEFAULT_SESSION.events.unregister("before-call.lambda.Invoke", self._invoke)  # type: ignore[arg-type]
        self._mock.stop()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._refresh_cached_clients()

    def _set_env(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _refresh_cached_clients(self) -> None:
        from worldgen import orchestrator
        from worldgen.handlers import actions

        get_settings.cache_clear()
        orchestrator.sfn_client.cache_clear()
        actions._previous_versions.cache_clear()

    # -- Lambda dispatch -----------------------------------------------------------------------

    def handler_for(self, function: LambdaFunction) -> Handler:
        if function.id in self.overrides:
            return self.overrides[function.id]
        if function.folder not in self.handlers:
            self.handlers[function.folder] = load_handler(function)
        return self.handlers[function.folder]

    def timeout_of(self, function: LambdaFunction) -> float:
        return self.lambda_timeouts.get(function.id, function.timeout_seconds)

    def invoke(self, function: LambdaFunction, event: dict[str, Any]) -> Any:
        """Call a function's handler as Lambda would (used for the action endpoint too)."""
        context = LocalLambdaContext(
            function_name=f"{STATE_MACHINE_NAME}-{function.id}",
            memory_limit_in_mb=function.memory_mb,
            timeout_seconds=self.timeout_of(function),
            aws_request_id=str(uuid.uuid4()),
            invoked_function_arn=function_arn(function),
        )
        self.invocations.append((function.id, event))
        started = time.perf_counter()
        resuming = self._resumed_generation(event) if function.id == START_FUNCTION.id else None
        if resuming is not None and not self._lease_before_resume(resuming):
            return busy_response(resuming)
        response: Any = None
        try:
            response = self.handler_for(function)(event, context)
            if function.id == START_FUNCTION.id:
                self._lease_started_execution(response)
            return response
        finally:
            if resuming is not None:
                self._end_resume(resuming)  # refused (or failed): the lease taken for it goes
            self.timings.append((function.id, started, time.perf_counter()))
            # moto runs every task in a thread of its own: the Lambda environment ends with it.
            release_thread_connection()

    def _invoke(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        from botocore.awsrequest import AWSResponse, HTTPHeaders
        from botocore.response import StreamingBody

        # ``params`` is botocore's serialized request: the function is in the path, the event the body.
        name = unquote(params["url_path"].split("/functions/", 1)[1].split("/", 1)[0])
        payload = params.get("body") or b"{}"
        event = json.loads(payload if isinstance(payload, (str, bytes)) else payload.read())
        function = self.functions.get(name)
        parsed: dict[str, Any] = {"StatusCode": 200, "ExecutedVersion": "$LATEST"}
        if function is None:
            body = {"errorType": "ResourceNotFoundException", "errorMessage": f"no function {name}"}
            parsed["FunctionError"] = "Unhandled"
        else:
            try:
                body = self._invoke_until_timeout(function, event)
            except LambdaTimedOut as exc:
                body = {"errorType": LAMBDA_TIMEOUT, "errorMessage": str(exc)}
                parsed["FunctionError"] = "Unhandled"
            except Exception as exc:  # Lambda reports any exception as errorType = its class name
                body = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
                parsed["FunctionError"] = "Unhandled"
        data = json.dumps(body, default=str).encode()
        parsed["Payload"] = StreamingBody(io.BytesIO(data), len(data))
        return AWSResponse(name, 200, HTTPHeaders(), None), parsed

    def _invoke_until_timeout(self, function: LambdaFunction, event: dict[str, Any]) -> Any:
        """Lambda ends an invocation at the function's timeout and its caller gets Sandbox.Timedout.
        A thread cannot be killed: the handler runs on, a zombie whose attempt the retry supersedes,
        so the fence (``state.fence_phase_commit``) keeps it from committing over the retry."""
        timeout = self.timeout_of(function)
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                outcome["result"] = self.invoke(function, event)
            except BaseException as exc:  # handed to the caller below, as Lambda would report it
                outcome["error"] = exc
            finally:
                done.set()

        threading.Thread(target=run, name=f"lambda-{function.id}", daemon=True).start()
        if not done.wait(timeout):
            raise LambdaTimedOut(f"Task timed out after {timeout:.2f} seconds")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"]

    # -- executions ----------------------------------------------------------------------------

    def describe(self, execution_arn: str) -> dict[str, Any]:
        return dict(self.sfn.describe_execution(executionArn=execution_arn))

    def wait(
        self,
        execution_arn: str,
        *,
        timeout: float = 600,
        poll_seconds: float = 0.05,
        on_poll: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Wait for the execution to end and its end to be recorded (the failure event delivered)."""
        deadline = time.monotonic() + timeout
        while True:
            execution = self.describe(execution_arn)
            if on_poll:
                on_poll()
            if execution["status"] in TERMINAL:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_arn} still {execution['status']} after {timeout} s")
            time.sleep(poll_seconds)
        self.settle(execution, deadline=deadline)
        return execution

    # -- ends of executions: leases and failure events (EventBridge's job on AWS) ---------------

    def _resumed_generation(self, event: dict[str, Any]) -> str | None:
        """The generation an authenticated ``resumeGeneration`` request names (None for any other)."""
        headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
        given = headers.get(contracts.ACTION_SECRET_HEADER.lower()) or ""
        if not secrets.compare_digest(str(given), self.action_secret or ""):
            return None  # the handler refuses it; no lease is taken for it
        try:
            body = json.loads(event.get("body") or "")
            generation_id = str(uuid.UUID(str(body["input"]["generation_id"])))
        except (TypeError, ValueError, KeyError, AttributeError):
            return None
        return generation_id if (body.get("action") or {}).get("name") == "resumeGeneration" else None

    def _lease_before_resume(self, generation_id: str) -> bool:
        """Take the generation's execution lease BEFORE the resume claims it, so the execution is
        never visible without its lease: another process's reconcile sees it alive, and of two
        processes resuming at once exactly one holds the lease and goes on (issue 29)."""
        with self._lock:
            if generation_id in self._held:
                self._resuming[generation_id] += 1
                return True
            try:
                if self._lease_conn is None or self._lease_conn.closed or self._lease_conn.broken:
                    self._lease_conn = connect()
                    mark_own_session(self._lease_conn)
                    self._held = set()
                # A process that just ended releases its lease as its server session ends, a moment
                # after its connection closed: look again briefly before calling the lease taken.
                deadline = time.monotonic() + LEASE_RELEASE_GRACE_SECONDS
                while not acquire_execution_lease(self._lease_conn, generation_id):
                    if time.monotonic() >= deadline:
                        return False
                    time.sleep(0.1)
            except Exception:  # the database is away: the handler answers for it
                self._lease_conn = None
                return True
            self._held.add(generation_id)
            self._resuming[generation_id] += 1
            return True

    def _end_resume(self, generation_id: str) -> None:
        """A resume request ended: the lease taken for it goes unless an execution of the
        generation runs here now, or another resume request of it is still in its handler."""
        with self._lock:
            self._resuming[generation_id] -= 1
            if self._resuming[generation_id] > 0:
                return
            del self._resuming[generation_id]
            if generation_id in self.leases.values() or generation_id not in self._held:
                return  # an execution of it runs here: its lease stays until it is settled
            self._held.discard(generation_id)
            try:
                if self._lease_conn is not None:
                    release_execution_lease(self._lease_conn, generation_id)
            except Exception:
                self._lease_conn = None  # a closed session released it already

    def _lease_started_execution(self, response: Any) -> None:
        try:
            body = json.loads(response["body"]) if response.get("statusCode") == 200 else {}
        except (TypeError, ValueError, AttributeError):
            return
        if body.get("status") == "running" and body.get("execution_arn") and body.get("generation_id"):
            with self._lock:
                self.leases[body["execution_arn"]] = body["generation_id"]
                self._hold_leases()

    def _hold_leases(self) -> None:
        """(Re)acquire every lease on the runtime's own session (after a database restart too)."""
        with self._lock:
            try:
                if self._lease_conn is None or self._lease_conn.closed or self._lease_conn.broken:
                    self._lease_conn = connect()
                    mark_own_session(self._lease_conn)
                    self._held = set()
                for generation_id in set(self.leases.values()) - self._held:
                    if acquire_execution_lease(self._lease_conn, generation_id):
                        self._held.add(generation_id)
            except Exception:  # the database is away: try again at the next watch
                self._lease_conn = None

    def _watch(self) -> None:
        """Settle every leased execution that ended; survive database outages (retry next round)."""
        while not self._stop.wait(0.2):
            with self._lock:
                pending = dict(self.leases)
            if not pending:
                continue
            self._hold_leases()
            for arn in pending:
                try:
                    execution = self.describe(arn)
                    if execution["status"] in TERMINAL:
                        self.settle(execution, deadline=time.monotonic())
                except Exception as exc:  # recorded next round: nothing is marked done before it is
                    warnings.warn(f"execution {arn} not recorded yet: {exc}", RuntimeWarning, stacklevel=1)

    def settle(self, execution: dict[str, Any], *, deadline: float) -> None:
        """Record an ended execution once: deliver its failure event (retried until ``deadline``
        through a database outage), then release its lease. Marked done only after it is recorded."""
        arn = execution["executionArn"]
        with self._lock:  # the waiting caller and the watcher never deliver the same end twice
            if arn in self._settled:
                return
            if execution["status"] != "SUCCEEDED":
                self._keep_record(execution)
                delay = 0.2
                while True:
                    try:
                        self.deliver_status_change(execution)
                        break
                    except Exception:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(delay)
                        delay = min(delay * 2, 2.0)
            self._settled.add(arn)
            generation_id = self.leases.pop(arn, None)
            if generation_id is not None and generation_id in self._held:
                self._held.discard(generation_id)
                try:
                    release_execution_lease(self._lease_conn, generation_id)
                except Exception:
                    self._lease_conn = None  # a closed session released it already

    def deliver_failures(self) -> int:
        """Record every execution of this runtime that ended unsuccessfully and was not recorded
        yet (what the EventBridge rule does on AWS); for `worldgen serve`, which never waits."""
        count = 0
        pages = [
            page
            for arn in self.state_machine_arns.values()
            for page in self.sfn.get_paginator("list_executions").paginate(stateMachineArn=arn)
        ]
        for page in pages:
            for summary in page["executions"]:
                if (
                    summary["status"] in ("FAILED", "TIMED_OUT", "ABORTED")
                    and summary["executionArn"] not in self._settled
                ):
                    self.settle(self.describe(summary["executionArn"]), deadline=time.monotonic() + 30)
                    count += 1
        return count

    def deliver_status_change(self, execution: dict[str, Any]) -> Any:
        """Deliver the execution's status-change event to the failure recorder, as the rule does on AWS."""
        event = status_change_event(
            execution,
            account=ACCOUNT,
            region=REGION,
            redrive_count=self.redrive_counts.get(execution["executionArn"], 0),
        )
        result = self.invoke(FAILURE_FUNCTION, event)
        self.delivered_failures.append(event)  # only once it was recorded
        return result

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        events: list[Any] = []
        token = None
        while True:
            kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
            if token:
                kwargs["nextToken"] = token
            page = self.sfn.get_execution_history(**kwargs)
            events += page["events"]
            token = page.get("nextToken")
            if not token:
                return events

    # -- redrive (RedriveExecution, which moto lacks) -------------------------------------------

    def _keep_record(self, execution: dict[str, Any]) -> None:
        """What a later redrive of this ended execution needs (in memory, and on disk when asked)."""
        arn = execution["executionArn"]
        state_machine_arn = execution["stateMachineArn"]
        stopped = execution.get("stopDate") or datetime.now(UTC)
        record = ExecutionRecord(
            execution_arn=arn,
            state_machine_arn=state_machine_arn,
            name=execution["name"],
            input=execution.get("input") or "{}",
            status=execution["status"],
            stop_date=stopped.astimezone(UTC).isoformat(),
            redrive_count=self.redrive_counts.get(arn, 0),
            definition=self._ran.get(arn) or self.definitions[state_machine_arn],
            history=[
                {key: event[key] for key in ("stateEnteredEventDetails", "stateExitedEventDetails") if key in event}
                for event in self.history(arn)
                if "stateEnteredEventDetails" in event or "stateExitedEventDetails" in event
            ],
            state_machine_type=str(self.sfn.describe_state_machine(stateMachineArn=state_machine_arn)["type"]),
        )
        self.records[arn] = record
        if self.records_dir is not None:
            record.save(self.records_dir)

    def record_of(self, execution_arn: str) -> ExecutionRecord | None:
        """The kept record of an ended execution of this runtime or, on disk, of an earlier one."""
        if execution_arn in self.records:
            return self.records[execution_arn]
        if self.records_dir is None:
            return None
        return ExecutionRecord.load(self.records_dir, execution_arn.rsplit(":", 1)[-1])

    def redrive(self, execution_arn: str, *, now: datetime | None = None) -> dict[str, Any]:
        """RedriveExecution: the same execution continues from its unsuccessful states, RedriveCount + 1.
        ExecutionNotRedrivable when AWS would refuse (running, succeeded, older than 14 days, unknown)."""
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        with self._lock:
            try:
                status = self.describe(execution_arn)["status"]
            except self.sfn.exceptions.ExecutionDoesNotExist:
                status = None
            if status in ("RUNNING", "SUCCEEDED"):
                raise ExecutionNotRedrivable(
                    f"execution {execution_arn.rsplit(':', 1)[-1]} {status.lower()}: only an ended,"
                    " unsuccessful execution can be redriven"
                )
            record = self.record_of(execution_arn)
            if record is None:
                raise ExecutionNotRedrivable(
                    f"no record of execution {execution_arn}: it ran in a runtime that kept none"
                )
            check_redrivable(record, now)
            definition = redrive_definition(record.definition, record.history)
            count = record.redrive_count + 1
            state_machine = stepfunctions_parser_backends[ACCOUNT][REGION].describe_state_machine(
                record.state_machine_arn
            )
            # The same name under the same state machine is the same ARN; moto snapshots the
            # definition when the execution starts, so the swap lasts only for the start.
            state_machine.executions[:] = [e for e in state_machine.executions if e.execution_arn != execution_arn]
            deployed = state_machine.definition
            state_machine.definition = json.dumps(with_redrive_count(definition, count))
            try:
                started = self.sfn.start_execution(
                    stateMachineArn=record.state_machine_arn, name=record.name, input=record.input
                )
            finally:
                state_machine.definition = deployed
            assert started["executionArn"] == execution_arn
            self.redrive_counts[execution_arn] = count
            self._ran[execution_arn] = definition
            self.records.pop(execution_arn, None)
            self._settled.discard(execution_arn)
            generation_id = json.loads(record.input).get("generation_id")
            if generation_id:  # held while it runs, settled (its end recorded) like a started one
                self.leases[execution_arn] = str(generation_id)
                self._hold_leases()
        return self.describe(execution_arn)

    # -- the action endpoint -------------------------------------------------------------------

    def action(
        self,
        name: str,
        data: dict[str, Any],
        *,
        user_id: str | None = None,
        role: str = "user",
        secret: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """POST a Hasura action to start_generation as the Function URL would."""
        from worldgen.functions_registry import START_FUNCTION

        session = {"x-hasura-role": role}
        if user_id:
            session["x-hasura-user-id"] = user_id
        body = {"action": {"name": name}, "input": data, "session_variables": session, "request_query": ""}
        response = self.invoke(START_FUNCTION, function_url_event(json.dumps(body), secret or self.action_secret))
        return response["statusCode"], json.loads(response["body"])


@contextmanager
def local_runtime(**kwargs: Any) -> Iterator[LocalRuntime]:
    with LocalRuntime(**kwargs) as runtime:
        yield runtime
