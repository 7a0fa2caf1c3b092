"""The error taxonomy.

The class name of each error is the Lambda ``errorType`` that Step Functions matches in the
state machine's Retry and Catch lists, so those lists are derived from the two families below
(see ``worldgen.tools.statemachine``). Never rename a class without regenerating the ASL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from worldgen.db.problems import MAX_PROBLEM_CHARS, MAX_PROBLEMS_LISTED, Problem, as_problem, clip


class WorldgenError(Exception):
    """Base class; ``details`` is a small JSON-able dict shown to operators and to the model."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class TransientError(WorldgenError):
    """Retried by Step Functions with exponential backoff and full jitter."""


class PermanentError(WorldgenError):
    """Caught by Step Functions and routed to RollbackGeneration."""


# Transient family
class ModelRateLimited(TransientError):
    """The model API answered 429."""


class ModelOverloaded(TransientError):
    """The model API answered 529 (overloaded)."""


class ModelUnavailable(TransientError):
    """The model API answered 5xx or could not be reached."""


class ModelTimeout(TransientError):
    """The model API did not answer within the request timeout."""


class DatabaseUnavailable(TransientError):
    """PostgreSQL could not be reached or dropped the connection."""


class AttemptSuperseded(TransientError):
    """A newer attempt of the same phase owns the phase; this (zombie) attempt must not commit."""


# Permanent family
class PhaseDependencyMissing(PermanentError):
    """A phase ran before a phase it depends on had succeeded for the generation."""


class InvalidModelOutput(PermanentError):
    """The tool input was still invalid after the repair rounds.

    ``problems`` are data (``Problem``: table, key, column, message, the part that wrote the row);
    the details carry their text, bounded (the Step Functions payload holds 256 KB at most), and
    ``problem_count``, how many there are in all."""

    def __init__(self, message: str, *, problems: Sequence[Problem | str] = (), **details: Any) -> None:
        self.problems: list[Problem] = [as_problem(p) for p in problems]
        details.setdefault("problem_count", len(self.problems))
        listed = [clip(str(p), MAX_PROBLEM_CHARS) for p in self.problems[:MAX_PROBLEMS_LISTED]]
        super().__init__(message, problems=listed, **details)


class ModelRefused(PermanentError):
    """The model refused to answer (stop_reason ``refusal``)."""


class ModelOutputTruncated(PermanentError):
    """The answer hit max_tokens even with the larger budget."""


class CampaignNotFound(PermanentError):
    """The campaign or generation does not exist."""


class ConfigurationError(PermanentError):
    """A setting is missing or wrong (API key, model id, provider)."""


class GenerationCancelled(PermanentError):
    """The generation was cancelled by its owner."""


class CostCapReached(PermanentError):
    """The next model call could take the generation past its cost cap (``max_cost_usd``)."""


TRANSIENT_ERRORS: tuple[type[TransientError], ...] = (
    ModelRateLimited,
    ModelOverloaded,
    ModelUnavailable,
    ModelTimeout,
    DatabaseUnavailable,
    AttemptSuperseded,
)
PERMANENT_ERRORS: tuple[type[PermanentError], ...] = (
    PhaseDependencyMissing,
    InvalidModelOutput,
    ModelRefused,
    ModelOutputTruncated,
    CampaignNotFound,
    ConfigurationError,
    GenerationCancelled,
    CostCapReached,
)

# Errors raised by the Lambda service or by Step Functions itself, retried like ours
# (AWS's recommended Retry list for the Lambda integration).
LAMBDA_SERVICE_ERRORS: tuple[str, ...] = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.TooManyRequestsException",
)
STATES_TIMEOUT = "States.Timeout"

# A Lambda killed at its own timeout or by running out of memory: the Task sees the function's
# error, not States.Timeout (which fires only at the Task's TimeoutSeconds). Retried too, with a
# retrier of their own (a slow afternoon, not a bug: once or twice, then the execution fails at
# the phase and can be redriven). "Unhandled errors in Lambda are reported as Lambda.Unknown ...
# These include out-of-memory errors and function timeouts":
# https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html
# (the newer runtimes name a timeout Sandbox.Timedout).
LAMBDA_TIMEOUT = "Sandbox.Timedout"
LAMBDA_FAULT_ERRORS: tuple[str, ...] = (LAMBDA_TIMEOUT, "Lambda.Unknown")

# Throttling: the phase hit its reserved concurrency or the account's model rate limit. Waiting
# clears it, but only after minutes, so these get their own, longer retrier (evaluated first).
THROTTLING_ERRORS: tuple[str, ...] = ("Lambda.TooManyRequestsException", ModelRateLimited.__name__)


def transient_error_names() -> list[str]:
    """Every name Step Functions retries (throttling included)."""
    return [cls.__name__ for cls in TRANSIENT_ERRORS] + list(LAMBDA_SERVICE_ERRORS) + [STATES_TIMEOUT]


def throttling_error_names() -> list[str]:
    """The transient names retried by the throttling retrier, in ``transient_error_names()`` order."""
    return [name for name in transient_error_names() if name in THROTTLING_ERRORS]


def lambda_fault_error_names() -> list[str]:
    """A phase's Lambda timed out or crashed (retried by their own retrier)."""
    return list(LAMBDA_FAULT_ERRORS)


def permanent_error_names() -> list[str]:
    return [cls.__name__ for cls in PERMANENT_ERRORS]


# Refusals of a game master's request (the Hasura actions, the CLI). Not Step Functions errors, so
# in neither list above. ``code`` is the word a client branches on (Hasura's ``extensions.code``);
# the services raise them and ``worldgen.handlers.actions`` turns each class into an HTTP answer,
# in one table.
class RequestRefused(WorldgenError):
    """A request that is not carried out; the message says why, ``code`` names the kind."""

    code = "refused"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        if code is not None:
            self.code = code


class GenerationNotFound(RequestRefused):
    """No such generation, or not one of the caller's campaigns (the same answer, never a hint)."""

    code = "generation-not-found"


class UnknownChoice(RequestRefused):
    """A named option that does not exist: ``unknown-profile``, ``unknown-phase``."""


class TransitionRefused(RequestRefused):
    """The generation's status does not allow it: ``not-resumable``, ``not-cancellable``,
    ``not-revertible``, ``not-discardable``."""


class NewerGeneration(TransitionRefused):
    """A newer generation of the campaign started: only the latest is resumed, cancelled, reverted or discarded."""

    code = "newer-generation"


class OrchestratorUnavailable(RequestRefused):
    """Step Functions did not answer (``orchestrator-unavailable``) or did not start the execution
    (``execution-not-started``); trying again may work."""

    code = "orchestrator-unavailable"


class RerollRefused(RequestRefused):
    """A reroll or an undo that cannot be made. Its ``status`` (400 a bad table or hint, 404 a
    missing campaign or row, 409 a conflict) is chosen per refusal where it is raised."""

    def __init__(self, code: str, message: str, status: int = 409) -> None:
        super().__init__(message, code=code)
        self.status = status


class RerollFailed(RequestRefused):
    """The model's answer for a reroll stayed invalid, was refused or was cut short."""

    code = "reroll-failed"


class RerollPostponed(RequestRefused):
    """The model could not be reached for a reroll (rate limit, overload, timeout): try again later."""

    code = "model-unavailable"
