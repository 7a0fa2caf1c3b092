"""Pydantic models of every event a worldgen Lambda receives."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from worldgen.state import ExecutionRun


class GenerationEvent(BaseModel):
    """What the state machine passes around: ids only; the data lives in PostgreSQL.

    ``execution_id`` and ``redrive_count`` name the run of the execution that calls
    (``$$.Execution.Id``, ``$$.Execution.RedriveCount``); absent when a caller names none."""

    generation_id: uuid.UUID
    campaign_id: uuid.UUID
    execution_id: str | None = None
    redrive_count: int = Field(default=0, ge=0)

    @property
    def run(self) -> ExecutionRun | None:
        return ExecutionRun(self.execution_id, self.redrive_count) if self.execution_id else None


class PhaseEvent(GenerationEvent):
    phase: str


class StepFunctionsError(BaseModel):
    Error: str
    Cause: str = ""


class RollbackEvent(GenerationEvent):
    error: StepFunctionsError


class ExecutionStatusDetail(BaseModel):
    executionArn: str
    stateMachineArn: str
    name: str
    status: Literal["FAILED", "TIMED_OUT", "ABORTED", "SUCCEEDED", "RUNNING", "PENDING_REDRIVE"]
    input: dict[str, Any] | None = None
    error: str | None = None
    cause: str | None = None
    stopDate: int | None = None  # epoch milliseconds
    # The run the event is about (0: before any redrive); absent from older events.
    redriveCount: int | None = None

    @property
    def stopped_at(self) -> datetime | None:
        return datetime.fromtimestamp(self.stopDate / 1000, UTC) if self.stopDate is not None else None

    @field_validator("input", mode="before")
    @classmethod
    def _parse_input(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value


class ExecutionStatusChange(BaseModel):
    """EventBridge "Step Functions Execution Status Change"."""

    source: Literal["aws.states"]
    detail_type: str = Field(alias="detail-type")
    detail: ExecutionStatusDetail
