"""The objects of AWS the local runtime makes itself: a function's ARN, its handler loaded as Lambda
loads it, its context object, a Function URL request and response, and the EventBridge event of an
execution's end."""

from __future__ import annotations

import importlib.util
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worldgen import contracts
from worldgen.functions_registry import LambdaFunction
from worldgen.repository.paths import FUNCTIONS_DIR

ACCOUNT = "123456789012"
REGION = "us-east-1"
STATE_MACHINE_NAME = "worldgen-local"

Handler = Callable[[dict[str, Any], Any], Any]


def function_arn(function: LambdaFunction) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{STATE_MACHINE_NAME}-{function.id}"


def load_handler(function: LambdaFunction) -> Handler:
    """Import ``functions/<folder>/app.py`` as Lambda would, and return its ``handler``."""
    path = FUNCTIONS_DIR / function.folder / "app.py"
    spec = importlib.util.spec_from_file_location(f"worldgen_function_{function.folder}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Handler = module.handler
    return handler


@dataclass
class LocalLambdaContext:
    """The attributes of Lambda's context object that Powertools and worldgen read."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: float
    aws_request_id: str
    invoked_function_arn: str

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.function_version = "$LATEST"
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "local"

    @property
    def function_memory_size(self) -> int:
        return self.memory_limit_in_mb

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def status_change_event(
    execution: dict[str, Any], *, account: str, region: str, redrive_count: int = 0
) -> dict[str, Any]:
    """The EventBridge "Step Functions Execution Status Change" event AWS sends for ``execution``
    (a ``DescribeExecution`` answer) after its run number ``redrive_count``."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [execution["executionArn"]],
        "detail": {
            "executionArn": execution["executionArn"],
            "stateMachineArn": execution["stateMachineArn"],
            "name": execution["name"],
            "status": execution["status"],
            "startDate": int(execution["startDate"].timestamp() * 1000),
            "stopDate": int(execution.get("stopDate", datetime.now(UTC)).timestamp() * 1000),
            "input": execution.get("input"),
            "output": execution.get("output"),
            "error": execution.get("error"),
            "cause": execution.get("cause"),
            "redriveCount": redrive_count,
        },
    }


def busy_response(generation_id: str) -> dict[str, Any]:
    """Hasura's error shape for a resume another local process is running (it holds the lease)."""
    body = {
        "message": f"generation {generation_id} is held by another worldgen process (resuming or still running it);"
        " `worldgen status` follows it",
        "extensions": {"code": "resume-in-progress"},
    }
    return {"statusCode": 409, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def function_url_event(body: str, secret: str | None, *, method: str = "POST") -> dict[str, Any]:
    """The event a Lambda Function URL delivers for an HTTP request (payload format 2.0)."""
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers[contracts.ACTION_SECRET_HEADER] = secret
    return {
        "version": "2.0",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {"http": {"method": method, "path": "/", "sourceIp": "127.0.0.1"}},
        "body": body,
        "isBase64Encoded": False,
    }
