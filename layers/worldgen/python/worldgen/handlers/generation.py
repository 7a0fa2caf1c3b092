"""The state machine's service Lambdas (complete, rollback) and the EventBridge failure recorder."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from worldgen import contracts, generations, state
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
        conn = shared_connection()
        summary = generations.generation_summary(conn, request.generation_id)
        moved = state.complete_generation(conn, request.generation_id, summary, run=request.run)
    brief = {k: summary[k] for k in ("rows_total", "input_tokens", "output_tokens", "cost_usd")}
    if not moved.moved:  # a cancel won the race, or a redrive found it taken back: left as it is
        logger.warning("generation not completed", extra={"status": moved.status, "reason": moved.detail})
        return {"status": moved.status, **brief}
    add_metric(contracts.GENERATIONS_SUCCEEDED, 1)
    logger.info("generation succeeded", extra=brief)
    return {"status": "succeeded", **brief}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def rollback_generation(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = RollbackEvent.model_validate(event)
    logger.append_keys(campaign_id=str(request.campaign_id), generation_id=str(request.generation_id))
    with database_errors():
        # The failed phase wrote nothing (one transaction); the phases that succeeded keep their
        # rows, so `resume` (for instance with another model) continues from the failed phase, and
        # a regeneration can still be reverted to the world it replaced.
        run = request.run
        moved = state.fail_generation(
            shared_connection(),
            request.generation_id,
            request.error.Error,
            request.error.Cause,
            redrivable=False,
            # Only for its own execution's latest run: a redrive that found the generation
            # cancelled, resumed or superseded rolls back nothing of the run that replaced it.
            execution_arn=run.arn if run else state.ANY_EXECUTION,
            redrive_count=run.redrive_count if run else None,
        )
    add_metric(contracts.GENERATIONS_ROLLED_BACK, 1)
    logger.warning("generation failed", extra={"error": request.error.Error, "status": moved.status})
    return {"status": moved.status}


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
        moved = state.record_execution_end(
            shared_connection(),
            generation_id,
            detail.status,
            detail.error,
            detail.cause,
            execution_arn=detail.executionArn,
            redrive_count=detail.redriveCount,
            ended_at=detail.stopped_at,
        )
    if moved.moved:  # idempotent: a second delivery of the same event changes nothing
        add_metric(contracts.GENERATIONS_FAILED, 1)
    logger.warning("execution ended", extra={"execution_status": detail.status, "generation_status": moved.status})
    return {"status": moved.status}
