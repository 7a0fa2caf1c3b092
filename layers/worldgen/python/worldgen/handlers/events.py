"""Pydantic models of every event a worldgen Lambda receives."""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator


class GenerationEvent(BaseModel):
    """What the state machine passes around: ids only; the data lives in PostgreSQL."""

    generation_id: uuid.UUID
    campaign_id: uuid.UUID


class PhaseEvent(GenerationEvent):
    phase: str
    execution_id: str | None = None


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

    @field_validator("input", mode="before")
    @classmethod
    def _parse_input(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value


class ExecutionStatusChange(BaseModel):
    """EventBridge "Step Functions Execution Status Change"."""

    source: Literal["aws.states"]
    detail_type: str = Field(alias="detail-type")
    detail: ExecutionStatusDetail
