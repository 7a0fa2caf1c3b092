"""The rehearsal's side of its workers: one process per function, started from the function's assets
with the template's environment, invoked one request at a time as Lambda does."""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worldgen import contracts
from worldgen.tools.assembly import PackagedFunction, clean_environment, isolated_command, lambda_layout
from worldgen.tools.rehearsal import RehearsalFailed
from worldgen.tools.rehearsal.template import Stack

WORKER_PROGRAM = Path(__file__).with_name("worker.py")
# The only variables the rehearsal adds to a function's template environment, and why.
REHEARSAL_OVERRIDES = {
    contracts.MODEL_PROVIDER_ENV: "procedural",  # offline: no Claude, no Bedrock
    contracts.POWERTOOLS_TRACE_DISABLED_ENV: "true",  # no X-Ray daemon here
}


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


def worker_code(module: str, attribute: str) -> str:
    """The worker program, run by path: nothing of the repository becomes importable."""
    argv = [str(WORKER_PROGRAM), module, attribute]
    return f"import runpy, sys; sys.argv = {argv!r}; runpy.run_path({str(WORKER_PROGRAM)!r}, run_name='__main__')"


def start_worker(
    stack: Stack,
    logical_id: str,
    function: PackagedFunction,
    *,
    endpoint: str,
    cwd: Path,
    mount_opt: bool,
    resources: ExitStack,
) -> Worker:
    """The function's worker, ready: its assets laid out as Lambda does (kept until ``resources``
    closes), the template's environment plus Lambda's reserved variables, every SDK client on moto."""
    name = stack.resolve.refs[logical_id]
    environment = {key: str(stack.resolve(value)) for key, value in function.environment.items()}
    task, opt = resources.enter_context(lambda_layout(function))
    reserved = {
        "AWS_REGION": stack.region,
        "AWS_DEFAULT_REGION": stack.region,
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
        "AWS_ENDPOINT_URL": endpoint,  # every SDK client of the function talks to moto
    }
    log_path = cwd / "logs" / f"{logical_id}.log"
    process = subprocess.Popen(
        isolated_command(task, opt, worker_code(function.module, function.attribute), mount_opt=mount_opt),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log_path.open("w"),
        text=True,
        cwd=cwd,
        env=clean_environment({**environment, **reserved, **REHEARSAL_OVERRIDES}),
    )
    worker = Worker(function, name, stack.resolve.attributes[(logical_id, "Arn")], environment, process, log_path)
    worker.ready()
    return worker
