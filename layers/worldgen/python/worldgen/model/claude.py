"""ClaudeModel: one phase request to Claude over the Messages API or Amazon Bedrock.

Each model is asked in its family's dialect (``worldgen.model.families``): a forced phase tool
(the 4.x models), or structured outputs, the tool's schema as ``output_config.format`` and the rows
read from the JSON text (Sonnet 5.5, which refuses a forced tool). The anthropic SDK is imported
inside the class (importing it costs more than a second), and the client is created on the first
call. Every request marks the shared prefix for prompt caching and is streamed: a phase may ask for
up to the family's output limit after a ``max_tokens`` retry, beyond what the SDK allows without
streaming, and a stream keeps the connection busy so no proxy drops it as idle. The request timeout
is enforced as an overall deadline on top of the SDK's per-read timeout, so a slowly trickling
answer cannot outlive the Lambda. SDK errors are translated in ``model_error`` and stop reasons in
``_raise_for_stop_reason``, nowhere else.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from worldgen.errors import (
    ConfigurationError,
    ModelOutputTruncated,
    ModelOverloaded,
    ModelRateLimited,
    ModelRefused,
    ModelTimeout,
    ModelUnavailable,
    WorldgenError,
)
from worldgen.model import families
from worldgen.model.base import ModelRequest, ModelResponse, ModelUsage
from worldgen.model.families import BEDROCK_LEGACY_API_VERSION, FORCED_TOOL, ModelFamily, UnknownModel, family_of
from worldgen.model.pricing import cost_usd
from worldgen.observability import logger
from worldgen.phases import Phase
from worldgen.schema.tools import narrowed, strict_variant
from worldgen.settings import Settings, get_settings

if TYPE_CHECKING:
    import anthropic

EPHEMERAL: dict[str, str] = {"type": "ephemeral"}
SECRET_MAX_AGE_SECONDS = 3600  # a rotated key is picked up within the hour
KEY_SETTINGS = "WORLDGEN_ANTHROPIC_API_KEY (or ANTHROPIC_API_KEY) or WORLDGEN_ANTHROPIC_API_KEY_SECRET_ARN"
MODEL_SETTINGS = "WORLDGEN_DEFAULT_MODEL / WORLDGEN_PHASE_MODELS"

# Appended to the system prompt of a structured-output request: the phase prompts speak of "the
# tool", which such a request does not carry; its answer is the tool's input, as JSON text.
STRUCTURED_OUTPUT_NOTE = (
    "Answer format for this request: no tool is available. Where the instructions say to call the tool "
    "{tool_name}, write its input instead: your whole answer is one JSON object with every table, matching "
    "the response schema, and nothing else. The tool records: {description}"
)

# error.type of an ``error`` event inside a 200 stream (no status code to go by) -> our class
_STREAM_ERROR_TYPES: dict[str, type[WorldgenError]] = {
    "overloaded_error": ModelOverloaded,
    "rate_limit_error": ModelRateLimited,
    "api_error": ModelUnavailable,
    "timeout_error": ModelTimeout,
}


def model_for_phase(phase: Phase, settings: Settings) -> str:
    return settings.phase_models.get(phase.id) or settings.default_model or phase.model


def model_family(model: str) -> ModelFamily:
    """The family of a model id; ConfigurationError naming the known families when unknown."""
    try:
        return family_of(model)
    except UnknownModel as exc:
        raise ConfigurationError(f"{exc}; check {MODEL_SETTINGS}", model=model) from exc


def bedrock_model_id(model: str, region: str) -> str:
    """The Bedrock id (inference profile) of an Anthropic model id; Bedrock ids pass through."""
    try:
        return families.bedrock_model_id(model, region)
    except UnknownModel as exc:
        raise ConfigurationError(
            f"{exc}; set {MODEL_SETTINGS} to a Bedrock model id or one of {', '.join(families.FAMILIES)}",
            model=model,
        ) from exc


def max_output_tokens(model: str) -> int:
    return model_family(model).max_output_tokens


def output_schema(tool: dict[str, Any]) -> dict[str, Any]:
    """The tool's input schema within structured outputs' limits (those of strict tools)."""
    schema: dict[str, Any] = strict_variant(tool)["input_schema"]
    return schema


def request_params(request: ModelRequest, model: str, max_tokens: int) -> dict[str, Any]:
    """Keyword arguments of ``messages.stream`` for one phase request, in the dialect of the family.

    Forced tool: cache breakpoints on the tool (tools come first in the prompt) and on the system
    prompt, so a repair round or a retry of the same phase reads tool + system from the cache; an
    outlined phase lists the same tools in every call and adds its shared prompt (the phase prompt
    and context) as a third breakpoint, so its parts read what the outline call wrote.
    Structured output: no tools; the schema in ``output_config.format``, the family's thinking and
    effort, and the breakpoint on the system prompt (the schema is part of the cached prefix). Never
    sampling parameters, a thinking budget or an assistant prefill.
    """
    family = model_family(model)
    shared = (
        [{"type": "text", "text": request.shared_prompt, "cache_control": EPHEMERAL}] if request.shared_prompt else []
    )
    if family.request_mode == FORCED_TOOL:
        tools = [dict(t) for t in request.tools or [request.tool]]
        if request.tool.get("strict") and request.tables:  # strict: each part's schema within the limits
            tools = [narrowed(request.tool, request.tables)]
        tools[-1] = {**tools[-1], "cache_control": EPHEMERAL}
        system: list[dict[str, Any]] = [{"type": "text", "text": request.system, "cache_control": EPHEMERAL}]
        forced: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens,
            "system": system + shared,
            "messages": request.messages,
            "tools": tools,
            "tool_choice": {"type": "tool", "name": request.tool["name"], "disable_parallel_tool_use": True},
        }
        if family.thinking is not None:  # a family that thinks by default: {"type": "disabled"}
            forced["thinking"] = dict(family.thinking)
        return forced
    output_config: dict[str, Any] = {}
    if family.effort is not None:
        output_config["effort"] = family.effort
    params: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": request.messages}
    if family.thinking is not None:
        params["thinking"] = dict(family.thinking)
    if request.tools:
        # A call of a phase in parts on a model that refuses a forced tool: every call of the phase
        # lists the same tools and the same cached system prefix and lets the model choose the tool
        # (tool_choice auto, the default); the last message names the tool and the part. A format per
        # part would be a cache key per part ("changing output_config.format invalidates any prompt
        # cache", structured-outputs page, 2026-12-04): every part would write the phase's prompt
        # again at 1.25x and none would read it (`make bench-world`: $2.56 -> see docs/claude.md).
        # Not strict (WORLDGEN_STRICT_PHASES is for forced-tool families): the whole phase's schema
        # in one strict tool could pass the strict-tool limits its parts' narrowed schemas keep to.
        tools = [{k: v for k, v in t.items() if k != "strict"} for t in request.tools]
        tools[-1] = {**tools[-1], "cache_control": EPHEMERAL}
        params["tools"] = tools
        params["system"] = [{"type": "text", "text": request.system}, *shared]
        if output_config:
            params["output_config"] = output_config
        return params
    note = STRUCTURED_OUTPUT_NOTE.format(
        tool_name=request.tool["name"], description=request.tool.get("description", "the phase's rows.")
    )
    tool = narrowed(request.tool, request.tables) if request.tables else request.tool  # a part: its tables
    output_config["format"] = {"type": "json_schema", "schema": output_schema(tool)}
    params["system"] = [
        {"type": "text", "text": request.system},
        {"type": "text", "text": note, "cache_control": EPHEMERAL},
        *shared,
    ]
    params["output_config"] = output_config
    return params


def answers_in_text(params: dict[str, Any]) -> bool:
    """Whether a request's answer is the JSON of its text (structured outputs) or a tool's input."""
    return "format" in (params.get("output_config") or {})


STRUCTURED_OUTPUT_400_HINT = (
    "; a structured-output request: if the schema compiles to a grammar too large (an undocumented ceiling; "
    "the enums of existing keys grow with the world), send that phase to a forced-tool model with "
    'WORLDGEN_PHASE_MODELS, e.g. {"3C": "claude-haiku-4-5"}'
)


def model_error(exc: Exception, model: str, structured_output: bool = False) -> WorldgenError:
    """The worldgen error for an SDK error (the caller raises it ``from exc``)."""
    import anthropic

    details: dict[str, Any] = {"model": model}
    if isinstance(exc, anthropic.APIStatusError):
        details.update(status=exc.status_code, request_id=exc.request_id, error_type=exc.type)
    text = f"{type(exc).__name__} from model {model}: {getattr(exc, 'message', exc)}"
    if isinstance(exc, anthropic.APITimeoutError | anthropic.RequestTimeoutError):
        return ModelTimeout(text, **details)
    if isinstance(exc, anthropic.APIConnectionError):
        return ModelUnavailable(text, **details)
    if isinstance(exc, anthropic.RateLimitError):
        retry_after = exc.response.headers.get("retry-after")
        return ModelRateLimited(text, retry_after=retry_after, **details)
    if isinstance(exc, anthropic.OverloadedError):
        return ModelOverloaded(text, **details)
    if isinstance(exc, anthropic.InternalServerError):
        return ModelUnavailable(text, **details)
    if isinstance(exc, anthropic.AuthenticationError | anthropic.PermissionDeniedError):
        return ConfigurationError(f"{text}; check {KEY_SETTINGS} (or the IAM role for Bedrock)", **details)
    if isinstance(exc, anthropic.NotFoundError):
        return ConfigurationError(f"{text}; check WORLDGEN_DEFAULT_MODEL / WORLDGEN_PHASE_MODELS", **details)
    if isinstance(exc, anthropic.APIStatusError):
        if exc.status_code < 400:  # an ``error`` event inside a 200 stream: only error.type tells
            return _STREAM_ERROR_TYPES.get(exc.type or "", ModelUnavailable)(text, **details)
        # Any other 4xx rejects the request we built (schema, grammar too large for strict tools or
        # structured outputs, prompt too long), not the model's output: retrying cannot help, the
        # configuration must change.
        return ConfigurationError(text + (STRUCTURED_OUTPUT_400_HINT if structured_output else ""), **details)
    if isinstance(exc, anthropic.APIResponseValidationError):
        return ModelUnavailable(text, **details)
    return ConfigurationError(text, **details)  # credentials and client setup (CredentialsError)


class ClaudeModel:
    """The WorldModel of Claude: ``provider`` is ``anthropic`` (Messages API) or ``bedrock``."""

    def __init__(
        self, provider: str = "anthropic", settings: Settings | None = None, client: Any | None = None
    ) -> None:
        if provider not in ("anthropic", "bedrock"):
            raise ConfigurationError(f"ClaudeModel serves 'anthropic' or 'bedrock', not {provider!r}")
        self.provider = provider
        self.settings = settings or get_settings()
        self._client = client  # injected (tests): used for every family
        self._bedrock_clients: dict[str, Any] = {}  # Bedrock endpoint -> its client
        if provider == "anthropic" and client is None:
            key = self.settings.anthropic_api_key
            if not (key and key.get_secret_value().strip()) and not self.settings.anthropic_api_key_secret_arn:
                raise ConfigurationError(f"no Anthropic API key: set {KEY_SETTINGS}", setting=KEY_SETTINGS)

    # -- client --------------------------------------------------------------------------------

    @property
    def client(self) -> anthropic.Anthropic | anthropic.AnthropicBedrock:
        if self._client is None:
            self._client = self._bedrock_client() if self.provider == "bedrock" else self._anthropic_client()
        return self._client

    def client_for(self, family: ModelFamily) -> Any:
        """The client that serves ``family``: the Messages API, or on Bedrock the endpoint the family
        is served by (the legacy InvokeModel integration, or the Messages-API Bedrock endpoint
        through the SDK's Mantle client, which the 5.x models need)."""
        if self._client is not None or self.provider != "bedrock":
            return self.client
        endpoint = family.bedrock_endpoint
        if endpoint not in self._bedrock_clients:
            self._bedrock_clients[endpoint] = (
                self._bedrock_mantle_client() if endpoint == "messages" else self._bedrock_client()
            )
        return self._bedrock_clients[endpoint]

    def _anthropic_client(self) -> anthropic.Anthropic:
        import anthropic

        options: dict[str, Any] = {
            "api_key": self._api_key(),
            "max_retries": 0,  # ClaudeModel._send retries, with retry-after capped
            "timeout": self.settings.request_timeout_seconds,
        }
        if self.settings.anthropic_base_url:  # else the SDK reads ANTHROPIC_BASE_URL itself
            options["base_url"] = self.settings.anthropic_base_url
        return anthropic.Anthropic(**options)

    def _bedrock_client(self) -> anthropic.AnthropicBedrock:
        import anthropic

        return anthropic.AnthropicBedrock(
            aws_region=self.region,
            base_url=self.settings.bedrock_base_url,
            max_retries=0,  # ClaudeModel._send retries, with retry-after capped
            timeout=self.settings.request_timeout_seconds,
        )

    def _bedrock_mantle_client(self) -> anthropic.AnthropicBedrockMantle:
        import anthropic

        return anthropic.AnthropicBedrockMantle(
            aws_region=self.region,
            base_url=self.settings.bedrock_mantle_base_url,
            max_retries=0,  # ClaudeModel._send retries, with retry-after capped
            timeout=self.settings.request_timeout_seconds,
        )

    @property
    def region(self) -> str:
        return self.settings.bedrock_region or self.settings.aws_region

    def _api_key(self) -> str:
        key = self.settings.anthropic_api_key
        if key and key.get_secret_value().strip():
            return key.get_secret_value().strip()
        arn = self.settings.anthropic_api_key_secret_arn
        if not arn:
            raise ConfigurationError(f"no Anthropic API key: set {KEY_SETTINGS}", setting=KEY_SETTINGS)
        value = _secret_api_key(arn)
        if not value:
            raise ConfigurationError(
                f"the secret {arn} (WORLDGEN_ANTHROPIC_API_KEY_SECRET_ARN) holds no API key",
                setting="WORLDGEN_ANTHROPIC_API_KEY_SECRET_ARN",
            )
        return value

    def model_id(self, phase: Phase) -> str:
        model = model_for_phase(phase, self.settings)
        return bedrock_model_id(model, self.region) if self.provider == "bedrock" else model

    def params(self, request: ModelRequest, model: str, family: ModelFamily, max_tokens: int) -> dict[str, Any]:
        """``request_params`` plus what the provider's endpoint needs: the legacy Bedrock models get
        the API version they accept in the body (the SDK's own would be refused)."""
        params = request_params(request, model, max_tokens)
        if self.provider == "bedrock" and family.bedrock_endpoint == "invoke":
            params["extra_body"] = {"anthropic_version": BEDROCK_LEGACY_API_VERSION}
        return params

    # -- call ----------------------------------------------------------------------------------

    def call(self, request: ModelRequest) -> ModelResponse:
        """One phase request in the family's dialect; a ``max_tokens`` stop is retried once with a
        larger budget.

        Both HTTP calls of such a retry are summed into the one ModelUsage returned (or attached
        as ``details["usage"]`` to the error raised), so the ledger counts every token.
        """
        model = self.model_id(request.phase)
        family = model_family(model)
        client = self.client_for(family)
        started = time.perf_counter()
        # The phase budgets are measured in characters / 4; a family whose tokenizer counts more
        # tokens for the same text gets as many more (families.SONNET_5_TOKENIZER).
        budget = min(math.ceil(request.max_tokens * family.tokenizer_factor), family.max_output_tokens)
        usage = ModelUsage(provider=self.provider, model=model)
        # Each stream has its own deadline, counted from its first byte (a max_tokens retry gets one
        # of its own; a wait for a rate limit before an answer starts is not the answer's time).
        seconds = request.deadline_seconds or self.settings.request_timeout_seconds
        message = self._send(client, self.params(request, model, family, budget), usage, seconds)
        if message.stop_reason == "max_tokens":
            larger = min(budget * 2, family.max_output_tokens)
            if larger > budget:
                extra = {"phase": request.phase.id, "max_tokens": budget, "retry_max_tokens": larger}
                logger.info("answer hit max_tokens; retrying with a larger budget", extra=extra)
                budget = larger
                message = self._send(client, self.params(request, model, family, budget), usage, seconds)
        usage.latency_ms = int((time.perf_counter() - started) * 1000)
        usage.stop_reason = message.stop_reason
        usage.cost_usd = cost_usd(usage.model, usage)
        _raise_for_stop_reason(message.stop_reason, request.phase, budget, usage)
        if answers_in_text(request_params(request, model, budget)):
            return _structured_response(message, usage)
        return _tool_response(message, request.tool["name"], usage)

    def prime(self, request: ModelRequest) -> ModelUsage:
        """Send ``request`` for one output token: the API writes its cache breakpoints (the shared
        prefix of a phase's parts) and the parts sent next read them. Returns what it cost."""
        model = self.model_id(request.phase)
        usage = ModelUsage(provider=self.provider, model=model)
        started = time.perf_counter()
        seconds = request.deadline_seconds or self.settings.request_timeout_seconds
        family = model_family(model)
        message = self._send(self.client_for(family), self.params(request, model, family, 1), usage, seconds)
        usage.latency_ms = int((time.perf_counter() - started) * 1000)
        usage.stop_reason = message.stop_reason
        usage.cost_usd = cost_usd(usage.model, usage)
        return usage

    def _send(self, client: Any, params: dict[str, Any], usage: ModelUsage, seconds: float) -> Any:
        """``_stream``, retried (``WORLDGEN_SDK_MAX_RETRIES`` times; the SDK itself does not retry)
        when the API refused it before answering: a 429 waits its ``retry-after``, a 529 / 5xx /
        unreachable API a short backoff. A wait longer than ``WORLDGEN_RATE_LIMIT_MAX_WAIT_SECONDS``
        is not waited here: the error goes to the state machine, whose throttling retrier waits
        minutes outside the Lambda's budget (the SDK would sleep any ``retry-after`` it is told).

        Anthropic's rate limits (platform.claude.com/docs/en/api/rate-limits): a 429 carries
        ``retry-after``, and output tokens are reserved by ``max_tokens`` when a request starts, so a
        refused request has used nothing and may be sent again as it is."""
        for attempt in range(self.settings.sdk_max_retries + 1):
            try:
                return self._stream(client, params, usage, seconds)
            except (ModelRateLimited, ModelOverloaded, ModelUnavailable, ModelTimeout) as exc:
                if exc.details.get("answered") or attempt >= self.settings.sdk_max_retries:
                    raise
                wait = _retry_wait(exc, attempt)
                if wait > self.settings.rate_limit_max_wait_seconds:
                    exc.details["retry_wait_capped"] = self.settings.rate_limit_max_wait_seconds
                    raise
                extra = {"error": type(exc).__name__, "wait_seconds": round(wait, 3), "attempt": attempt + 1}
                logger.info("model request refused before answering; retrying", extra=extra)
                time.sleep(wait)
        raise AssertionError("unreachable")

    def _stream(self, client: Any, params: dict[str, Any], usage: ModelUsage, seconds: float) -> Any:
        """Stream one request to its final message within ``seconds`` of its first byte; add its
        usage to ``usage``.

        The deadline reached while the answer is still streaming is a truncation (permanent: a
        retry streams as long again); a stream that stalls (no bytes within the SDK's read
        timeout) is an APITimeoutError, ModelTimeout (transient). An error raised once the answer
        had begun carries ``answered`` (not retried by ``_send``).
        """
        import anthropic

        deadline: float | None = None
        try:
            with client.messages.stream(**params) as stream:
                for _event in stream:
                    now = time.monotonic()
                    deadline = deadline or now + seconds
                    if now > deadline:
                        _add_usage(usage, stream.current_message_snapshot)
                        usage.cost_usd = cost_usd(usage.model, usage)
                        raise ModelOutputTruncated(
                            f"model {params['model']} was still streaming at the call's deadline"
                            f" (max_tokens={params['max_tokens']}); the phase's budget does not fit its answer",
                            max_tokens=params["max_tokens"],
                            usage=asdict(usage),
                        )
                message = stream.get_final_message()
        except anthropic.AnthropicError as exc:
            translated = model_error(exc, params["model"], structured_output="output_config" in params)
            if deadline is not None or getattr(exc, "status_code", 400) < 400:  # inside a 200 stream
                translated.details["answered"] = True
            raise translated from exc
        except Exception as exc:  # the SDK wraps transport errors of the request, not of the stream's body
            cause = _transport_cause(exc)
            if cause is None:
                raise
            error = ModelTimeout if isinstance(cause, TimeoutError) else ModelUnavailable
            raise error(
                f"the stream from model {params['model']} broke off: {type(exc).__name__}: {exc}"
                + (" (no bytes within WORLDGEN_REQUEST_TIMEOUT_SECONDS)" if error is ModelTimeout else ""),
                model=params["model"],
                answered=True,
            ) from exc
        _add_usage(usage, message)
        return message


def _retry_wait(exc: WorldgenError, attempt: int) -> float:
    """Seconds to wait before retrying: the 429's ``retry-after`` when it says, else a short
    exponential backoff (0.5 s, 1 s, 2 s ... at most 8 s, as the SDK's own)."""
    retry_after = exc.details.get("retry_after")
    try:
        return max(0.0, float(retry_after)) if retry_after is not None else min(0.5 * 2**attempt, 8.0)
    except ValueError:  # an HTTP date: wait as long as the cap allows, no longer
        return float("inf")


def _transport_cause(exc: BaseException) -> OSError | None:
    """The socket error (TimeoutError is one) behind an HTTP client error raised mid-stream, if any."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _add_usage(usage: ModelUsage, message: Any) -> None:
    counts = message.usage
    usage.model = message.model or usage.model
    usage.input_tokens += counts.input_tokens or 0
    usage.output_tokens += counts.output_tokens or 0
    usage.cache_creation_input_tokens += counts.cache_creation_input_tokens or 0
    usage.cache_read_input_tokens += counts.cache_read_input_tokens or 0


def _raise_for_stop_reason(stop_reason: str | None, phase: Phase, budget: int, usage: ModelUsage) -> None:
    """The error of a stop reason that leaves no answer to read (the usage rides along for the ledger)."""
    spent = asdict(usage)
    if stop_reason == "max_tokens":
        raise ModelOutputTruncated(
            f"phase {phase.id}: the answer hit max_tokens={budget} even after the retry", max_tokens=budget, usage=spent
        )
    if stop_reason == "model_context_window_exceeded":
        raise ModelOutputTruncated(
            f"phase {phase.id}: prompt and answer exceeded the model's context window", max_tokens=budget, usage=spent
        )
    if stop_reason == "refusal":
        raise ModelRefused(f"phase {phase.id}: the model refused to answer", usage=spent)
    if stop_reason == "pause_turn":
        # Only server tools pause a turn, and worldgen sends none; continuing would need an assistant
        # prefill (a 400 on Sonnet 5.5), so the phase is retried from the start.
        raise ModelUnavailable(f"phase {phase.id}: the model paused its turn (pause_turn)", usage=spent)


def _tool_response(message: Any, tool_name: str, usage: ModelUsage) -> ModelResponse:
    content = [_block_param(block) for block in message.content]
    for block in message.content:
        if block.type == "tool_use" and block.name == tool_name:
            tool_input = block.input if isinstance(block.input, dict) else None
            return ModelResponse(tool_input, usage, content, block.id)
    return ModelResponse(None, usage, content, None, problem="the answer did not call the tool")


def _structured_response(message: Any, usage: ModelUsage) -> ModelResponse:
    """The rows of a structured-output answer: the JSON object of its text blocks (thinking skipped)."""
    content = [_block_param(block) for block in message.content]
    text = "".join(block.text for block in message.content if block.type == "text").strip()
    if not text:
        return ModelResponse(None, usage, content, request_mode="structured_output", problem="the answer had no text")
    try:
        answer = json.loads(text)
    except ValueError as exc:
        problem = f"the answer was not valid JSON ({exc})"
        return ModelResponse(None, usage, content, request_mode="structured_output", problem=problem)
    if not isinstance(answer, dict):
        problem = f"the answer was JSON {type(answer).__name__}, not one object with every table"
        return ModelResponse(None, usage, content, request_mode="structured_output", problem=problem)
    return ModelResponse(answer, usage, content, request_mode="structured_output")


def _block_param(block: Any) -> dict[str, Any]:
    """A response block as a request block, for the assistant turn of a repair round."""
    if block.type == "text":
        return {"type": "text", "text": block.text}
    if block.type == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    return dict(block.model_dump(mode="json", exclude_none=True))


def _secret_api_key(arn: str) -> str:
    """The API key stored in a Secrets Manager secret: the plain string or {"api_key": ...}."""
    from aws_lambda_powertools.utilities import parameters

    try:
        value = parameters.get_secret(arn, max_age=SECRET_MAX_AGE_SECONDS)
    except parameters.exceptions.GetParameterError as exc:
        raise ConfigurationError(
            f"cannot read the Anthropic API key secret {arn} (WORLDGEN_ANTHROPIC_API_KEY_SECRET_ARN): {exc}",
            setting="WORLDGEN_ANTHROPIC_API_KEY_SECRET_ARN",
        ) from exc
    text = value.decode() if isinstance(value, bytes) else str(value or "")
    if text.lstrip().startswith("{"):
        try:
            document = json.loads(text)
        except ValueError:
            return ""
        text = str(document.get("api_key") or document.get("ANTHROPIC_API_KEY") or "")
    return text.strip()
