"""The phase Lambda: one generation phase, idempotent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from worldgen import contracts
from worldgen.db.connection import database_errors, shared_connection
from worldgen.handlers.events import PhaseEvent
from worldgen.model.base import WorldModel
from worldgen.observability import add_metric, logger, metrics, tracer
from worldgen.pipeline import run_phase

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def make_phase_handler(model_factory: Callable[[], WorldModel | None] = lambda: None) -> Handler:
    """Build the handler; tests and the local runtime pass a model factory (None: from settings)."""

    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        request = PhaseEvent.model_validate(event)
        logger.append_keys(
            campaign_id=str(request.campaign_id),
            generation_id=str(request.generation_id),
            phase=request.phase,
        )
        with database_errors():
            outcome = run_phase(
                shared_connection(),
                request.generation_id,
                request.phase,
                model_factory(),
                remaining_ms=context.get_remaining_time_in_millis,
                run=request.run,
            )
        metrics.add_dimension(name=contracts.PHASE_DIMENSION, value=request.phase)
        if not outcome.replayed and outcome.status == "succeeded":
            add_metric(contracts.PHASE_ROWS, outcome.rows_total)
            add_metric(contracts.INPUT_TOKENS, outcome.input_tokens)
            add_metric(contracts.OUTPUT_TOKENS, outcome.output_tokens)
            add_metric(contracts.CACHE_READ_INPUT_TOKENS, outcome.cache_read_input_tokens)
            add_metric(contracts.COST_USD, outcome.cost_usd)
            add_metric(contracts.MODEL_CALLS, outcome.model_calls)
        logger.info("phase finished", extra=outcome.payload())
        return outcome.payload()

    return handler
