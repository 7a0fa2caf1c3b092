"""The state machine's service Lambdas (complete, rollback) and the EventBridge failure recorder."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from worldgen import contracts, generations
from worldgen.db.connection import database_errors, shared_connection
from worldgen.handlers.events import ExecutionStatusChange, GenerationEvent, RollbackEvent
from worldgen.observability import add_metric, logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def complete_generation(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = GenerationEvent.model_validate(event)
    logger.append_keys(campaign_id=str(request.campaign_id), generation_id=str(request.generation_id))
    with database_errors():
        summary = generations.complete_generation(shared_connection(), request.generation_id)
    add_metric(contracts.GENERATIONS_SUCCEEDED, 1)
    logger.info("generation succeeded", extra=summary)
    return {"status": "succeeded", **summary}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def rollback_generation(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = RollbackEvent.model_validate(event)
    logger.append_keys(campaign_id=str(request.campaign_id), generation_id=str(request.generation_id))
    with database_errors():
        removed = generations.rollback_generation(
            shared_connection(), request.generation_id, request.error.Error, request.error.Cause
        )
    add_metric(contracts.GENERATIONS_ROLLED_BACK, 1)
    logger.warning("generation rolled back", extra={"error": request.error.Error, "rows_removed": removed})
    return {"status": "failed", "rows_removed": sum(removed.values())}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def record_generation_failure(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    change = ExecutionStatusChange.model_validate(event)
    detail = change.detail
    generation_id = (detail.input or {}).get("generation_id")
    if not generation_id:
        logger.warning("execution without a generation_id in its input", extra={"execution": detail.executionArn})
        return {"status": "ignored"}
    logger.append_keys(generation_id=str(generation_id), campaign_id=str((detail.input or {}).get("campaign_id")))
    with database_errors():
        status = generations.record_execution_end(
            shared_connection(), generation_id, detail.status, detail.error, detail.cause
        )
    add_metric(contracts.GENERATIONS_FAILED, 1)
    logger.warning("execution ended", extra={"execution_status": detail.status, "generation_status": status})
    return {"status": status}
