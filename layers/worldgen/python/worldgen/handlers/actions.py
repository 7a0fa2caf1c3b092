"""The Hasura action endpoint (a Lambda Function URL): the edge of the actions, and only the edge.

It follows Hasura's action contract: the body is ``{action: {name}, input, session_variables,
request_query}``; success is a JSON object; every failure is a 4xx with
``{"message", "extensions": {"code"}}`` (Hasura shows it to the client), never a 5xx but for a bug.
Here: the request checks (method, size, the shared secret, the payload), the action's input model,
the call of its service (``worldgen.services``) and the one table that turns a refusal into an
HTTP answer. The services answer at once: a generation runs for minutes, Hasura's action timeout
is 30 s.

One URL serves every action and Hasura names the action in the body, so there is no path or method
to route on: a table of actions by name, not Powertools' REST resolver.
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import psycopg
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worldgen import state
from worldgen.contracts import ACTION_SECRET_HEADER as SECRET_HEADER
from worldgen.db.connection import shared_connection
from worldgen.errors import (
    CampaignNotFound,
    ConfigurationError,
    DatabaseUnavailable,
    GenerationNotFound,
    OrchestratorUnavailable,
    PhaseDependencyMissing,
    RequestRefused,
    RerollFailed,
    RerollPostponed,
    RerollRefused,
    TransitionRefused,
    UnknownChoice,
    WorldgenError,
)
from worldgen.observability import logger, metrics, tracer
from worldgen.reroll import RerollOutcome
from worldgen.services import generations, rerolls
from worldgen.services.models import (
    Caller,
    GenerateInput,
    GenerationInput,
    GenerationStarted,
    GenerationUndone,
    RegenerateInput,
    RerollInput,
    ResumeInput,
    RowInput,
)
from worldgen.settings import get_settings

MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Action:
    """An action: its input model, its service, and the type its answer has (``output``: the
    fields of its GraphQL output type in actions.graphql)."""

    input: type[BaseModel]
    run: Callable[[psycopg.Connection[Any], Any, Caller], Any]
    output: type


ACTIONS: dict[str, Action] = {
    "generateWorld": Action(GenerateInput, generations.generate_world, GenerationStarted),
    "resumeGeneration": Action(ResumeInput, generations.resume_generation, GenerationStarted),
    "regenerateFromPhase": Action(RegenerateInput, generations.regenerate_from_phase, GenerationStarted),
    "cancelGeneration": Action(GenerationInput, generations.cancel_generation, GenerationUndone),
    "revertGeneration": Action(GenerationInput, generations.revert_generation, GenerationUndone),
    "discardGeneration": Action(GenerationInput, generations.discard_generation, GenerationUndone),
    "rerollRow": Action(RerollInput, rerolls.reroll_row, RerollOutcome),
    "undoReroll": Action(RowInput, rerolls.undo_reroll, RerollOutcome),
}
ACTION_NAMES = tuple(ACTIONS)


class HttpRefusal(Exception):
    """A request refused at the edge (before any service), or a refusal as REFUSALS answers it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# The one place a refusal becomes an HTTP answer: (error, status, Hasura's extensions.code). The
# first row whose class matches wins; a None code is the error's own ``code`` (a family of refusals
# sharing a status). A reroll refusal carries its own status: reroll.py chooses it per refusal.
REFUSALS: tuple[tuple[type[Exception], int, str | None], ...] = (
    (UnknownChoice, 400, None),  # unknown-profile, unknown-phase
    (CampaignNotFound, 404, "campaign-not-found"),
    (GenerationNotFound, 404, None),
    (state.GenerationActive, 409, "generation-active"),
    (PhaseDependencyMissing, 409, "phase-dependency-missing"),
    (TransitionRefused, 409, None),  # not-resumable, not-cancellable, not-revertible, not-discardable, newer-...
    (OrchestratorUnavailable, 409, None),  # orchestrator-unavailable, execution-not-started
    (RerollFailed, 422, None),
    (RerollPostponed, 409, None),
    (RerollRefused, 409, None),  # or the status the refusal names (400 a bad table, 404 a missing row)
    (RequestRefused, 409, None),
)
REFUSED: tuple[type[Exception], ...] = (HttpRefusal, *(error for error, _, _ in REFUSALS))


def refusal_of(exc: Exception) -> HttpRefusal:
    """The HTTP answer REFUSALS gives ``exc`` (one of REFUSED)."""
    if isinstance(exc, HttpRefusal):
        return exc
    status, code = next((status, code) for error, status, code in REFUSALS if isinstance(exc, error))
    return HttpRefusal(
        exc.status if isinstance(exc, RerollRefused) else status,
        code or str(getattr(exc, "code", RequestRefused.code)),
        exc.message if isinstance(exc, WorldgenError) else str(exc),
    )


class ActionName(BaseModel):
    name: str


class HasuraActionPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")
    action: ActionName
    input: dict[str, Any]
    session_variables: dict[str, str] = Field(default_factory=dict)
    request_query: str | None = None

    @property
    def caller(self) -> Caller:
        return Caller(self.session_variables.get("x-hasura-role", ""), self.session_variables.get("x-hasura-user-id"))


# -- the shared secret --------------------------------------------------------------------------

# Secrets Manager is read through Powertools' cache (``max_age``), never cached for the process
# lifetime: after a rotation a warm instance sees the new value within SECRET_MAX_AGE_SECONDS, and
# until then the previous version (AWSPREVIOUS) is still accepted, so no caller gets a 401.
SECRET_MAX_AGE_SECONDS = 300


@cache
def _previous_versions() -> Any:
    """A provider of its own: Powertools caches by secret name, not by version stage."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    return SecretsProvider()


def _expected_secrets() -> list[str]:
    settings = get_settings()
    if settings.action_secret is not None and settings.action_secret.get_secret_value():
        return [settings.action_secret.get_secret_value()]
    if settings.action_secret_arn:
        from aws_lambda_powertools.utilities import parameters

        accepted = [str(parameters.get_secret(settings.action_secret_arn, max_age=SECRET_MAX_AGE_SECONDS))]
        try:
            previous = _previous_versions().get(
                settings.action_secret_arn, max_age=SECRET_MAX_AGE_SECONDS, VersionStage="AWSPREVIOUS"
            )
            accepted.append(str(previous))
        except parameters.exceptions.GetParameterError:
            pass  # never rotated: there is no previous version
        return accepted
    raise ConfigurationError("set WORLDGEN_ACTION_SECRET or WORLDGEN_ACTION_SECRET_ARN")


def _check_secret(headers: dict[str, str]) -> None:
    given = headers.get(SECRET_HEADER, "")
    try:
        expected = _expected_secrets()
    except ConfigurationError as exc:
        logger.error("action secret not configured", extra={"error": str(exc)})
        raise HttpRefusal(401, "unauthorized", "the action secret is not configured on the server") from exc
    # compare_digest against every accepted value, without stopping at the first match
    matches = [hmac.compare_digest(given.encode(), value.encode()) for value in expected]
    if not given or not any(matches):
        raise HttpRefusal(401, "unauthorized", f"missing or wrong {SECRET_HEADER} header")


# -- the request --------------------------------------------------------------------------------


def _body(event: dict[str, Any]) -> bytes:
    raw = event.get("body") or ""
    data = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
    if len(data) > MAX_BODY_BYTES:
        raise HttpRefusal(413, "payload-too-large", f"the request body is over {MAX_BODY_BYTES} bytes")
    return data


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"]) or "body"
    return f"{where}: {error['msg']}"


def _payload(event: dict[str, Any]) -> HasuraActionPayload:
    method = event.get("requestContext", {}).get("http", {}).get("method", "POST")
    if method != "POST":
        raise HttpRefusal(405, "method-not-allowed", "POST a Hasura action payload")
    _check_secret({k.lower(): v for k, v in (event.get("headers") or {}).items()})
    try:
        return HasuraActionPayload.model_validate_json(_body(event))
    except ValidationError as exc:
        raise HttpRefusal(400, "invalid-payload", f"not a Hasura action payload: {_first_error(exc)}") from exc


def _serve(payload: HasuraActionPayload) -> dict[str, Any]:
    action = ACTIONS.get(payload.action.name)
    if action is None:
        known = ", ".join(ACTION_NAMES)
        raise HttpRefusal(400, "unknown-action", f"unknown action {payload.action.name!r}; known: {known}")
    caller = payload.caller
    if not caller.is_admin and not caller.user_id:
        raise HttpRefusal(403, "forbidden", "the action needs x-hasura-user-id (or the admin role)")
    ids = {k: str(v) for k, v in payload.input.items() if k in ("campaign_id", "generation_id")}
    logger.append_keys(action=payload.action.name, **ids)
    try:
        request = action.input.model_validate(payload.input)
    except ValidationError as exc:
        raise HttpRefusal(400, "validation-failed", _first_error(exc)) from exc
    result = action.run(shared_connection(), request, caller)
    answer: dict[str, Any] = result.model_dump() if isinstance(result, BaseModel) else result.payload()
    return answer


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def _error(refusal: HttpRefusal) -> dict[str, Any]:
    return _response(refusal.status, {"message": refusal.message, "extensions": {"code": refusal.code}})


def handle_action_request(event: dict[str, Any]) -> dict[str, Any]:
    """A Function URL event in, a Function URL response out; never raises."""
    try:
        answer = _serve(_payload(event))
    except REFUSED as exc:
        refusal = refusal_of(exc)
        logger.info("action refused", extra={"code": refusal.code, "status": refusal.status})
        return _error(refusal)
    except (DatabaseUnavailable, psycopg.OperationalError):
        logger.exception("database unavailable")  # host, port and libpq's words go to the log only
        return _error(HttpRefusal(409, "database-unavailable", "the database is unavailable, try again"))
    except Exception:  # a bug: the caller gets Hasura's shape and the request id, the log the traceback
        logger.exception("action failed")
        request_id = logger.get_current_keys().get("function_request_id", "unknown")
        return _error(
            HttpRefusal(500, "internal-error", f"the action failed on the server (request {request_id}); try again")
        )
    metrics.add_metric(name="ActionsServed", unit="Count", value=1)
    return _response(200, answer)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def start_generation(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_action_request(event)
