"""The Lambda functions of a deployment, derived from the phase registry.

Used by the ASL builder (placeholders), CDK (one function each, in a loop) and the local runtime
(in-process dispatch). The phase functions (nine of the full profile, three of the quick one)
share the code folder ``functions/phase``: they differ only in configuration (timeout, memory,
alarms), so one adapter serves them all.
"""

from __future__ import annotations

from dataclasses import dataclass

from worldgen.phases import ALL_PHASES


@dataclass(frozen=True)
class LambdaFunction:
    id: str  # CDK logical id; the ASL placeholder is ``${<id>Arn}``
    folder: str  # functions/<folder>/app.py
    description: str
    timeout_seconds: int = 30
    memory_mb: int = 256
    phase: str | None = None
    in_state_machine: bool = True
    calls_model: bool = False  # needs the model's settings, its API key secret or Bedrock access

    @property
    def placeholder(self) -> str:
        return f"{self.id}Arn"


PHASE_FUNCTIONS: tuple[LambdaFunction, ...] = tuple(
    LambdaFunction(
        id=phase.function_id,
        folder="phase",
        description=f"worldgen phase {phase.id}: {phase.name}",
        timeout_seconds=phase.lambda_timeout_seconds,
        memory_mb=phase.memory_mb,
        phase=phase.id,
        calls_model=True,
    )
    for phase in ALL_PHASES  # every profile's phases (the quick profile's Q1..Q3 too)
)
ROLLBACK_FUNCTION = LambdaFunction(
    "RollbackGenerationFunction", "rollback_generation", "Compensate a generation that failed permanently", 60
)
COMPLETE_FUNCTION = LambdaFunction(
    "CompleteGenerationFunction",
    "complete_generation",
    "Mark a generation succeeded and store its summary",
    60,
)
START_FUNCTION = LambdaFunction(
    "StartGenerationFunction",
    "start_generation",
    "Hasura action handler: start, resume, regenerate or cancel a generation; reroll a row",
    29,
    in_state_machine=False,
    calls_model=True,  # rerollRow: one model call inside the request (worldgen.reroll)
)
FAILURE_FUNCTION = LambdaFunction(
    "RecordGenerationFailureFunction",
    "record_generation_failure",
    "EventBridge target: record a FAILED, TIMED_OUT or ABORTED execution",
    60,
    in_state_machine=False,
)

ALL_FUNCTIONS: tuple[LambdaFunction, ...] = (
    *PHASE_FUNCTIONS,
    ROLLBACK_FUNCTION,
    COMPLETE_FUNCTION,
    START_FUNCTION,
    FAILURE_FUNCTION,
)
STATE_MACHINE_FUNCTIONS = tuple(f for f in ALL_FUNCTIONS if f.in_state_machine)
