"""One warm Lambda execution environment: the program of a rehearsal worker process.

Run by path (``runpy.run_path``) inside ``python -I -S`` with only the function's code asset, its
layers and the third-party packages on ``sys.path`` (``assembly.isolated_command``), so it imports
nothing of the repository: only the standard library at the top, then the handler and what it
imports, from the assets. ``sys.argv``: the handler's module and attribute.

The protocol, one JSON object per line: the worker writes ``{"ready": true, "import_ms",
"worldgen"}`` (or ``{"ready": false, "error"}``) once, then reads one request per line from stdin
(``{"event", "request_id", "function_arn", "timeout", "inject"}``) and answers each with
``{"result"}`` or ``{"error": {"errorType", "errorMessage"}}``, plus the AWS API calls the
invocation made and the settings read so far. The handler's prints and logs go to stderr.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import IO, Any

# The API parameters that name a call's resource, as the rehearsal checks it against the role.
RESOURCE_KEYS = ("SecretId", "stateMachineArn", "executionArn", "modelId", "FunctionName", "name")


class Context:
    """The Lambda context object, as the Python runtime builds it for one invocation."""

    function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
    function_version = "$LATEST"
    memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
    log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
    log_stream_name = "rehearsal"

    def __init__(self, request: dict[str, Any]) -> None:
        self.aws_request_id = request["request_id"]
        self.invoked_function_arn = request["function_arn"]
        self._deadline = time.monotonic() + request["timeout"]

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_handler(module: str, attribute: str) -> Callable[[Any, Any], Any]:
    handler = getattr(importlib.import_module(module), attribute)
    if not callable(handler):
        raise TypeError(f"{module}.{attribute} is not callable")
    return handler


def record_api_calls(calls: list[dict[str, Any]]) -> None:
    """Every AWS API call of every botocore client of the process, appended to ``calls``."""
    import botocore.client

    make_api_call = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]

    def recorded(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        params = {k: api_params[k] for k in RESOURCE_KEYS if isinstance(api_params.get(k), str)}
        calls.append(
            {
                "service": self.meta.service_model.signing_name,
                "operation": operation_name,
                "region": self.meta.region_name,
                "params": params,
            }
        )
        return make_api_call(self, operation_name, api_params)

    botocore.client.BaseClient._make_api_call = recorded  # type: ignore[attr-defined]


def record_settings_read(settings_read: set[str]) -> None:
    """The names of the ``Settings`` fields the code reads, added to ``settings_read``."""
    import worldgen.settings

    fields = set(worldgen.settings.Settings.model_fields)
    getattribute = worldgen.settings.Settings.__getattribute__

    def read(self: Any, name: str) -> Any:
        if name in fields:
            settings_read.add(name)
        return getattribute(self, name)

    worldgen.settings.Settings.__getattribute__ = read  # type: ignore[method-assign]


def invoke(handler: Callable[[Any, Any], Any], request: dict[str, Any]) -> dict[str, Any]:
    """One invocation; an exception is answered as Lambda's runtime reports it."""
    try:
        if request.get("inject"):
            import worldgen.errors

            raise getattr(worldgen.errors, request["inject"])("injected by the deploy rehearsal")
        return {"result": handler(request["event"], Context(request))}
    except Exception as exc:
        traceback.print_exc()  # into the function's log, as Lambda's runtime does
        return {"error": {"errorType": type(exc).__name__, "errorMessage": str(exc)}}


def serve(module: str, attribute: str, requests: IO[str], protocol: IO[str]) -> int:
    started = time.perf_counter()
    try:
        handler = load_handler(module, attribute)
    except BaseException as exc:
        error = "".join(traceback.format_exception_only(exc)).strip()
        protocol.write(json.dumps({"ready": False, "error": error}) + "\n")
        return 1
    import_ms = (time.perf_counter() - started) * 1000
    calls: list[dict[str, Any]] = []
    settings_read: set[str] = set()
    record_api_calls(calls)
    record_settings_read(settings_read)
    import worldgen

    protocol.write(json.dumps({"ready": True, "import_ms": import_ms, "worldgen": worldgen.__file__}) + "\n")
    for line in requests:
        del calls[:]
        reply = invoke(handler, json.loads(line))
        reply.update(calls=list(calls), settings_read=sorted(settings_read))
        protocol.write(json.dumps(reply, default=str) + "\n")
    return 0


def main() -> int:
    module, attribute = sys.argv[1:3]
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the handler's prints and logs go to stderr, never into the protocol
    return serve(module, attribute, sys.stdin, protocol)


if __name__ == "__main__":
    raise SystemExit(main())
