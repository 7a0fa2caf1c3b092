"""The Step Functions client of the action services: start, describe and stop an execution.

boto3 is imported and the client made on first use (no I/O when a handler is imported); tests and
the local runtime substitute or reset it through ``sfn_client``.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from worldgen.errors import OrchestratorUnavailable
from worldgen.observability import logger
from worldgen.settings import get_settings

# Statuses of an execution that may still run a phase (a failed one waits for a redrive).
ALIVE_STATUSES = ("RUNNING", "PENDING_REDRIVE")


@cache
def sfn_client() -> Any:
    import boto3

    return boto3.client("stepfunctions", region_name=get_settings().aws_region)


def describe_execution(execution_arn: str) -> dict[str, Any] | None:
    """The execution as Step Functions sees it, or None when it does not exist (any more)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return dict(sfn_client().describe_execution(executionArn=execution_arn))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
            return None
        logger.exception("describe_execution failed")
        raise OrchestratorUnavailable("Step Functions did not answer; try again") from exc
    except BotoCoreError as exc:
        logger.exception("describe_execution failed")
        raise OrchestratorUnavailable("Step Functions did not answer; try again") from exc


def start_execution(state_machine_arn: str, name: str, payload: dict[str, Any]) -> str:
    """Start an execution named ``name``; its ARN. botocore's errors pass through to the caller."""
    response = sfn_client().start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload))
    return str(response["executionArn"])


def stop_execution(execution_arn: str, error: str, cause: str) -> None:
    sfn_client().stop_execution(executionArn=execution_arn, error=error, cause=cause)
