"""The Hasura action handler: generateWorld, resumeGeneration, regenerateFromPhase, cancelGeneration,
revertGeneration, discardGeneration, rerollRow and undoReroll.

Served by a Lambda Function URL. It follows Hasura's action contract: the body is
``{action: {name}, input, session_variables, request_query}``; success is a JSON object; every
failure is a 4xx with ``{"message", "extensions": {"code"}}`` (Hasura shows it to the client),
never a 5xx. It answers at once: a generation runs for minutes, Hasura's action timeout is 30 s.
A reroll is one row and one model call (and at most one repair): it is made inside the request,
within ``reroll.REROLL_SECONDS``.
"""

from __future__ import annotations

import base64
import hmac
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import psycopg
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worldgen import state
from worldgen.contracts import ACTION_SECRET_HEADER as SECRET_HEADER
from worldgen.cost_cap import MAX_COST_OPTION
from worldgen.db.connection import shared_connection
from worldgen.db.leases import execution_lease_held
from worldgen.errors import ConfigurationError, DatabaseUnavailable
from worldgen.observability import logger, metrics, tracer
from worldgen.phases import ANY_PHASE_BY_ID, PROFILE_NAMES, ancestors, descendants, get_phase
from worldgen.settings import ModelProvider, get_settings

ACTION_NAMES = (
    "generateWorld",
    "resumeGeneration",
    "regenerateFromPhase",
    "cancelGeneration",
    "revertGeneration",
    "discardGeneration",
    "rerollRow",
    "undoReroll",
)
MAX_BODY_BYTES = 64 * 1024


class ActionError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class ActionName(BaseModel):
    name: str


class HasuraActionPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")
    action: ActionName
    input: dict[str, Any]
    session_variables: dict[str, str] = Field(default_factory=dict)
    request_query: str | None = None

    @property
    def role(self) -> str:
        return self.session_variables.get("x-hasura-role", "")

    @property
    def user_id(self) -> str | None:
        return self.session_variables.get("x-hasura-user-id")


class CampaignInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaign_id: uuid.UUID


class GenerationInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    generation_id: uuid.UUID


class ResumeInput(GenerationInput):
    model_provider: ModelProvider | None = None  # another model for the rest (default: the generation's)
    max_cost_usd: float | None = Field(default=None, gt=0)  # a new cost cap (a generation stopped at its cap)


class GenerateInput(CampaignInput):
    profile: str | None = None  # full | quick; default: WORLDGEN_DEFAULT_PROFILE
    max_cost_usd: float | None = Field(default=None, gt=0)  # default: WORLDGEN_DEFAULT_MAX_COST_USD


class RegenerateInput(CampaignInput):
    phase: str


class RowInput(CampaignInput):
    table: str = Field(max_length=63)  # PostgreSQL's identifier length
    key: str = Field(max_length=200)


class RerollInput(RowInput):
    hint: str | None = None


@dataclass
class Caller:
    role: str
    user_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@cache
def sfn_client() -> Any:
    import boto3

    return boto3.client("stepfunctions", region_name=get_settings().aws_region)


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
        raise ActionError(401, "unauthorized", "the action secret is not configured on the server") from exc
    # compare_digest against every accepted value, without stopping at the first match
    matches = [hmac.compare_digest(given.encode(), value.encode()) for value in expected]
    if not given or not any(matches):
        raise ActionError(401, "unauthorized", f"missing or wrong {SECRET_HEADER} header")


def _load_campaign(conn: psycopg.Connection[Any], campaign_id: uuid.UUID, caller: Caller) -> dict[str, Any]:
    row = conn.execute("SELECT id, owner_id FROM campaigns WHERE id = %s", (str(campaign_id),)).fetchone()
    conn.commit()
    if row is None:
        raise ActionError(404, "campaign-not-found", f"campaign {campaign_id} does not exist")
    if not caller.is_admin and row["owner_id"] != caller.user_id:
        # The same answer as a missing campaign: never confirm that another user's campaign exists.
        raise ActionError(404, "campaign-not-found", f"campaign {campaign_id} does not exist")
    return dict(row)


def _load_generation(conn: psycopg.Connection[Any], generation_id: uuid.UUID, caller: Caller) -> dict[str, Any]:
    row = conn.execute(
        "SELECT g.id, g.campaign_id, g.status, g.execution_arn, g.resumed_count, g.status_changed_at, c.owner_id"
        " FROM generations g JOIN campaigns c ON c.id = g.campaign_id WHERE g.id = %s",
        (str(generation_id),),
    ).fetchone()
    conn.commit()
    if row is None or (not caller.is_admin and row["owner_id"] != caller.user_id):
        raise ActionError(404, "generation-not-found", f"generation {generation_id} does not exist")
    return reconcile(conn, dict(row))


def execution_status(execution_arn: str) -> dict[str, Any] | None:
    """The execution as Step Functions sees it, or None when it does not exist (any more)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return dict(sfn_client().describe_execution(executionArn=execution_arn))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
            return None
        logger.exception("describe_execution failed")
        raise ActionError(409, "orchestrator-unavailable", "Step Functions did not answer; try again") from exc
    except BotoCoreError as exc:
        logger.exception("describe_execution failed")
        raise ActionError(409, "orchestrator-unavailable", "Step Functions did not answer; try again") from exc


# A generation without an execution yet is being started; past this it is taken as lost.
STARTING_GRACE_SECONDS = 120


def reconcile(conn: psycopg.Connection[Any], generation: dict[str, Any]) -> dict[str, Any]:
    """The execution is the source of truth: an active generation whose execution ended, or no
    longer exists, is recorded as such before anyone acts on it, so nothing stays stuck."""
    if generation["status"] not in state.ACTIVE_STATUSES:
        return generation
    arn = generation["execution_arn"]
    execution = execution_status(arn) if arn else None
    if execution is not None and execution["status"] in ("RUNNING", "PENDING_REDRIVE"):
        return generation
    if execution is None:
        if execution_lease_held(conn, generation["id"]):  # a local runtime in another process runs it
            return generation
        if arn is None:
            age = conn.execute(
                "SELECT extract(epoch FROM now() - %s) AS age", (generation["status_changed_at"],)
            ).fetchone()
            if age is not None and float(age["age"]) < STARTING_GRACE_SECONDS:
                return generation
        moved = state.fail_generation(
            conn,
            generation["id"],
            "ExecutionLost",
            "its execution no longer exists",
            redrivable=True,
            execution_arn=arn,
        )
    else:
        moved = state.record_execution_end(
            conn,
            generation["id"],
            execution["status"],
            execution.get("error"),
            execution.get("cause"),
            execution_arn=arn,
            redrive_count=execution.get("redriveCount"),  # DescribeExecution's: the latest run's
        )
    logger.warning("generation reconciled with its execution", extra={"status": moved.status})
    return {**generation, "status": moved.status}


def _reconcile_active(conn: psycopg.Connection[Any], campaign_id: uuid.UUID) -> None:
    """Reconcile the campaign's active generations: one whose execution died does not block it."""
    for stale in conn.execute(
        "SELECT g.id, g.campaign_id, g.status, g.execution_arn, g.status_changed_at FROM generations g"
        " WHERE g.campaign_id = %s AND g.status IN ('pending', 'running')",
        (str(campaign_id),),
    ).fetchall():
        reconcile(conn, dict(stale))
    conn.commit()


def _profile_of(conn: psycopg.Connection[Any], generation_id: uuid.UUID) -> str:
    row = conn.execute("SELECT profile FROM generations WHERE id = %s", (str(generation_id),)).fetchone()
    conn.commit()
    return str(row["profile"]) if row else "full"


def _start_execution(
    conn: psycopg.Connection[Any], generation_id: uuid.UUID, campaign_id: Any, name: str, *, resumed: bool = False
) -> str:
    settings = get_settings()
    payload = {"generation_id": str(generation_id), "campaign_id": str(campaign_id)}
    profile = _profile_of(conn, generation_id)
    try:
        state_machine_arn = settings.state_machine_arn_of(profile)  # the machine of the generation's profile
        response = sfn_client().start_execution(stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload))
    except Exception as exc:  # botocore's errors, configuration: the generation must not stay active
        state.fail_generation(conn, generation_id, "ExecutionNotStarted", str(exc), redrivable=False)
        logger.exception("start_execution failed")
        raise ActionError(409, "execution-not-started", "the generation could not be started; try again") from exc
    arn = str(response["executionArn"])
    if resumed:
        state.set_execution_arn(conn, generation_id, arn)
    else:
        state.start_execution(conn, generation_id, arn)
    return arn


def _create_and_start(
    conn: psycopg.Connection[Any],
    campaign_id: uuid.UUID,
    options: dict[str, Any],
    phases: list[str] | None = None,
    profile: str = "full",
) -> dict[str, Any]:
    """A new generation row (at most one active per campaign), then its execution, named after it."""
    _reconcile_active(conn, campaign_id)
    try:
        generation_id = state.create_generation(
            conn, campaign_id, provider=get_settings().model_provider, options=options, phases=phases, profile=profile
        )
    except state.GenerationActive as exc:
        raise ActionError(409, "generation-active", str(exc)) from exc
    arn = _start_execution(conn, generation_id, campaign_id, str(generation_id))
    return {"generation_id": str(generation_id), "execution_arn": arn, "status": "running"}


def generate_world(conn: psycopg.Connection[Any], data: dict[str, Any], caller: Caller) -> dict[str, Any]:
    request = GenerateInput.model_validate(data)
    settings = get_settings()
    profile = request.profile or settings.default_profile
    if profile not in PROFILE_NAMES:
        raise ActionError(
            400, "unknown-profile", f"unknown profile {request.profile!r}; valid profiles: {', '.join(PROFILE_NAMES)}"
        )
    _load_campaign(conn, request.campaign_id, caller)
    options = {"seed": settings.seed, "scale": settings.scale, **_cost_cap(request.max_cost_usd)}
    return _create_and_start(conn, request.campaign_id, options, profile=profile)


def _cost_cap(max_cost_usd: float | None) -> dict[str, float]:
    """The generation's cost cap option (worldgen.cost_cap): the request's, else the default setting."""
    cap = max_cost_usd if max_cost_usd is not None else get_settings().default_max_cost_usd
    return {MAX_COST_OPTION: cap} if cap is not None else {}


def resume_generation(conn: psycopg.Connection[Any], data: dict[str, Any], caller: Caller) -> dict[str, Any]:
    request = ResumeInput.model_validate(data)
    generation = _load_generation(conn, request.generation_id, caller)
    if request.max_cost_usd is not None:
        state.set_cost_cap(conn, request.generation_id, request.max_cost_usd)
    try:
        moved, count = state.claim_resume(conn, request.generation_id, model_provider=request.model_provider)
    except state.GenerationActive as exc:
        raise ActionError(409, "generation-active", str(exc)) from exc
    _refuse_if_newer(request.generation_id, "resumed", moved)
    if not moved.moved:  # of two racing resumes, this one lost (or it was never failed)
        raise ActionError(
            409, "not-resumable", f"generation {request.generation_id} is {moved.status}; only a failed one resumes"
        )
    name = f"{request.generation_id}-resume-{count}"
    arn = _start_execution(conn, request.generation_id, generation["campaign_id"], name, resumed=True)
    return {"generation_id": str(request.generation_id), "execution_arn": arn, "status": "running"}


def regenerate_from_phase(conn: psycopg.Connection[Any], data: dict[str, Any], caller: Caller) -> dict[str, Any]:
    request = RegenerateInput.model_validate(data)
    phase = request.phase.upper()
    if phase not in ANY_PHASE_BY_ID:
        raise ActionError(
            400, "unknown-phase", f"unknown phase {request.phase!r}; valid phases: {', '.join(ANY_PHASE_BY_ID)}"
        )
    _load_campaign(conn, request.campaign_id, caller)
    _check_world_has(conn, request.campaign_id, phase)
    settings = get_settings()
    # Another seed, so the procedural model makes a different world for the regenerated phases.
    options = {"regenerate_from": phase, "seed": settings.seed + 1, "scale": settings.scale, **_cost_cap(None)}
    # The phase's profile runs the regeneration (Q2 regenerates with the quick machine).
    return _create_and_start(conn, request.campaign_id, options, descendants(phase), get_phase(phase).profile)


def _check_world_has(conn: psycopg.Connection[Any], campaign_id: uuid.UUID, phase: str) -> None:
    """A regeneration from ``phase`` keeps the phases before it: they must have succeeded for the
    campaign, in the same profile (a quick world regenerates from Q1..Q3, a full one from 1A..3C)."""
    done = {
        row["phase"]
        for row in conn.execute(
            "SELECT DISTINCT phase FROM phase_runs WHERE campaign_id = %s AND status = 'succeeded'",
            (str(campaign_id),),
        ).fetchall()
    }
    conn.commit()
    missing = sorted(ancestors(phase) - done)
    if missing:
        profile = get_phase(phase).profile
        raise ActionError(
            409,
            "phase-dependency-missing",
            f"cannot regenerate campaign {campaign_id} from {phase} ({profile} profile): phases {', '.join(missing)}"
            " never succeeded for it; regenerate from a phase of the profile its world was generated with,"
            " or generate the world again",
        )


def _refuse_if_newer(generation_id: uuid.UUID, verb: str, moved: state.Transition) -> None:
    """The order rule (``state.ONLY_WHILE_LATEST``): a 409 naming the newer generation."""
    if not moved.moved and moved.newer_generation:
        raise ActionError(
            409,
            "newer-generation",
            f"generation {generation_id} cannot be {verb}: generation {moved.newer_generation} of its campaign"
            " started after it; only a campaign's latest generation is resumed, cancelled, reverted or discarded",
        )


def cancel_generation(conn: psycopg.Connection[Any], data: dict[str, Any], caller: Caller) -> dict[str, Any]:
    request = GenerationInput.model_validate(data)
    generation = _load_generation(conn, request.generation_id, caller)
    moved = state.cancel_generation(conn, request.generation_id)
    _refuse_if_newer(request.generation_id, "cancelled", moved)
    if not moved.moved:
        raise ActionError(409, "not-cancellable", f"generation {request.generation_id} is already {moved.status}")
    if generation["execution_arn"] and generation["status"] in state.ACTIVE_STATUSES:
        # The cancel is already committed and fenced: no phase of it can commit any more. Stopping
        # the execution only saves its remaining model calls, so a failure here is logged, not fatal.
        try:
            sfn_client().stop_execution(
                executionArn=generation["execution_arn"], error="GenerationCancelled", cause="cancelled by its owner"
            )
        except Exception:
            logger.exception("stop_execution failed; the execution ends at its next phase")
    return {
        "generation_id": str(request.generation_id),
        "execution_arn": generation["execution_arn"],
        "status": "cancelled",
        "kept": list(moved.kept),  # rows the game master locked, edited or added, kept by the restore
    }


def _undo(
    conn: psycopg.Connection[Any],
    data: dict[str, Any],
    caller: Caller,
    transition: Callable[[psycopg.Connection[Any], uuid.UUID], state.Transition],
    code: str,
    refusal: Callable[[uuid.UUID, state.Transition], str],
) -> dict[str, Any]:
    """Revert or discard a failed or cancelled generation; a 409 saying why when it does not move."""
    request = GenerationInput.model_validate(data)
    _load_generation(conn, request.generation_id, caller)
    moved = transition(conn, request.generation_id)
    _refuse_if_newer(request.generation_id, "reverted" if code == "not-revertible" else "discarded", moved)
    if not moved.moved:
        raise ActionError(409, code, refusal(request.generation_id, moved))
    return {
        "generation_id": str(request.generation_id),
        "execution_arn": None,
        "status": moved.status,
        "kept": list(moved.kept),  # rows the game master locked, edited or added, kept by the restore
    }


def revert_generation(conn: psycopg.Connection[Any], data: dict[str, Any], caller: Caller) -> dict[str, Any]:
    return _undo(
        conn,
        data,
        caller,
        state.revert_generation,
        "not-revertible",
        lambda g, moved: (
            f"generation {g} cannot be reverted ({moved.detail}); only the campaign's latest"
            " failed or cancelled generation can"
        ),
    )


def discard_generation(conn: psycopg.Connection[Any], data: dict[str, Any], caller: Caller) -> dict[str, Any]:
    return _undo(
        conn,
        data,
        caller,
        state.discard_generation,
        "not-discardable",
        lambda g, moved: (
            f"generation {g} cannot be discarded: {moved.detail}"
            if moved.status in state.GENERATION_TRANSITIONS["discard"][0]
            else f"generation {g} is {moved.status}; only a failed or cancelled one is discarded"
        ),
    )


def _reroll_action(
    conn: psycopg.Connection[Any], campaign_id: uuid.UUID, caller: Caller, edit: Callable[[], Any]
) -> dict[str, Any]:
    """A reroll or its undo of a campaign the caller owns; a refusal or a failed call as a 4xx."""
    from worldgen import reroll
    from worldgen.errors import InvalidModelOutput, ModelOutputTruncated, ModelRefused, WorldgenError

    _load_campaign(conn, campaign_id, caller)
    _reconcile_active(conn, campaign_id)
    try:
        outcome = edit()
    except reroll.RerollRefused as exc:
        raise ActionError(exc.status, exc.code, exc.message) from exc
    except (InvalidModelOutput, ModelRefused, ModelOutputTruncated) as exc:
        raise ActionError(422, "reroll-failed", f"{type(exc).__name__}: {exc.message}"[:2000]) from exc
    except WorldgenError as exc:  # the model is unavailable (rate limit, overload, timeout): later
        raise ActionError(409, "model-unavailable", f"{type(exc).__name__}: {exc.message} (try again)"[:2000]) from exc
    payload: dict[str, Any] = outcome.payload()
    return payload


def reroll_row(conn: psycopg.Connection[Any], data: dict[str, Any], caller: Caller) -> dict[str, Any]:
    from worldgen import reroll

    request = RerollInput.model_validate(data)
    return _reroll_action(
        conn,
        request.campaign_id,
        caller,
        lambda: reroll.reroll_row(conn, request.campaign_id, request.table, request.key, hint=request.hint),
    )


def undo_reroll(conn: psycopg.Connection[Any], data: dict[str, Any], caller: Caller) -> dict[str, Any]:
    from worldgen import reroll

    request = RowInput.model_validate(data)
    return _reroll_action(
        conn,
        request.campaign_id,
        caller,
        lambda: reroll.undo_reroll(conn, request.campaign_id, request.table, request.key),
    )


ACTIONS: dict[str, Callable[[psycopg.Connection[Any], dict[str, Any], Caller], dict[str, Any]]] = {
    "generateWorld": generate_world,
    "resumeGeneration": resume_generation,
    "regenerateFromPhase": regenerate_from_phase,
    "cancelGeneration": cancel_generation,
    "revertGeneration": revert_generation,
    "discardGeneration": discard_generation,
    "rerollRow": reroll_row,
    "undoReroll": undo_reroll,
}


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def _error(exc: ActionError) -> dict[str, Any]:
    return _response(exc.status, {"message": exc.message, "extensions": {"code": exc.code}})


def _body(event: dict[str, Any]) -> bytes:
    raw = event.get("body") or ""
    data = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
    if len(data) > MAX_BODY_BYTES:
        raise ActionError(413, "payload-too-large", f"the request body is over {MAX_BODY_BYTES} bytes")
    return data


def handle_action_request(event: dict[str, Any]) -> dict[str, Any]:
    """A Function URL event in, a Function URL response out; never raises, never a 5xx."""
    try:
        method = event.get("requestContext", {}).get("http", {}).get("method", "POST")
        if method != "POST":
            raise ActionError(405, "method-not-allowed", "POST a Hasura action payload")
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        _check_secret(headers)
        try:
            payload = HasuraActionPayload.model_validate_json(_body(event))
        except ValidationError as exc:
            raise ActionError(400, "invalid-payload", f"not a Hasura action payload: {_first_error(exc)}") from exc
        action = ACTIONS.get(payload.action.name)
        if action is None:
            raise ActionError(
                400,
                "unknown-action",
                f"unknown action {payload.action.name!r}; known: {', '.join(ACTION_NAMES)}",
            )
        if payload.role != "admin" and not payload.user_id:
            raise ActionError(403, "forbidden", "the action needs x-hasura-user-id (or the admin role)")
        ids = {k: str(v) for k, v in payload.input.items() if k in ("campaign_id", "generation_id")}
        logger.append_keys(action=payload.action.name, **ids)
        try:
            result = action(shared_connection(), payload.input, Caller(payload.role, payload.user_id))
        except ValidationError as exc:
            raise ActionError(400, "validation-failed", _first_error(exc)) from exc
        metrics.add_metric(name="ActionsServed", unit="Count", value=1)
        return _response(200, result)
    except ActionError as exc:
        logger.info("action refused", extra={"code": exc.code, "status": exc.status})
        return _error(exc)
    except (DatabaseUnavailable, psycopg.OperationalError):
        logger.exception("database unavailable")  # host, port and libpq's words go to the log only
        return _error(ActionError(409, "database-unavailable", "the database is unavailable, try again"))
    except Exception:  # a bug: the caller gets Hasura's shape and the request id, the log the traceback
        logger.exception("action failed")
        request_id = logger.get_current_keys().get("function_request_id", "unknown")
        return _error(
            ActionError(500, "internal-error", f"the action failed on the server (request {request_id}); try again")
        )


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"]) or "body"
    return f"{where}: {error['msg']}"


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def start_generation(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_action_request(event)
