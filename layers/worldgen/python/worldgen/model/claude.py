"""ClaudeModel: one phase tool call to Claude over the Messages API or Amazon Bedrock.

The anthropic SDK is imported inside the class (importing it costs more than a second), and the
client is created on the first call. Every request forces the phase tool, marks the tool and the
system prompt for prompt caching, and is streamed: a phase may ask for up to 64K output tokens
after a ``max_tokens`` retry, beyond what the SDK allows without streaming, and a stream keeps the
connection busy so no proxy drops it as idle. The request timeout is enforced as an overall
deadline on top of the SDK's per-read timeout, so a slowly trickling answer cannot outlive the
Lambda. SDK errors are translated in ``model_error`` and nowhere else.
"""

from __future__ import annotations

import json
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
from worldgen.model.base import ModelRequest, ModelResponse, ModelUsage
from worldgen.model.pricing import cost_usd, price_family
from worldgen.observability import logger
from worldgen.phases import Phase
from worldgen.settings import Settings, get_settings

if TYPE_CHECKING:
    import anthropic

EPHEMERAL: dict[str, str] = {"type": "ephemeral"}
SECRET_MAX_AGE_SECONDS = 3600  # a rotated key is picked up within the hour
DEFAULT_MAX_OUTPUT_TOKENS = 64_000
MAX_OUTPUT_TOKENS = {"claude-opus-4-1": 32_000, "claude-opus-4": 32_000, "claude-3-5-haiku": 8_192}
KEY_SETTINGS = "WORLDGEN_ANTHROPIC_API_KEY (or ANTHROPIC_API_KEY) or WORLDGEN_ANTHROPIC_API_KEY_SECRET_ARN"

# Anthropic model id -> Bedrock model id. The 4.5 models are served on demand only through
# cross-region inference profiles, so ``bedrock_model_id`` prefixes the geography of the region.
BEDROCK_MODEL_IDS: dict[str, str] = {
    "claude-sonnet-4-6": "anthropic.claude-sonnet-4-6",
    "claude-sonnet-4-5": "anthropic.claude-sonnet-4-5-20250929-v1:0",
    "claude-haiku-4-5": "anthropic.claude-haiku-4-5-20251001-v1:0",
    "claude-opus-4-5": "anthropic.claude-opus-4-5-20251101-v1:0",
    "claude-opus-4-1": "anthropic.claude-opus-4-1-20250805-v1:0",
    "claude-sonnet-4": "anthropic.claude-sonnet-4-20250514-v1:0",
}
_GEOGRAPHIES = {"us": "us", "ca": "us", "eu": "eu", "ap": "apac"}

# error.type of an ``error`` event inside a 200 stream (no status code to go by) -> our class
_STREAM_ERROR_TYPES: dict[str, type[WorldgenError]] = {
    "overloaded_error": ModelOverloaded,
    "rate_limit_error": ModelRateLimited,
    "api_error": ModelUnavailable,
    "timeout_error": ModelTimeout,
}


def model_for_phase(phase: Phase, settings: Settings) -> str:
    return settings.phase_models.get(phase.id) or settings.default_model or phase.model


def bedrock_model_id(model: str, region: str) -> str:
    """The Bedrock id (inference profile) of an Anthropic model id; Bedrock ids pass through."""
    if "anthropic." in model:
        return model
    base = BEDROCK_MODEL_IDS.get(price_family(model))
    if base is None:
        raise ConfigurationError(
            f"no Bedrock id known for model {model!r}; set WORLDGEN_DEFAULT_MODEL / WORLDGEN_PHASE_MODELS "
            f"to a Bedrock model id or one of {', '.join(BEDROCK_MODEL_IDS)}",
            model=model,
        )
    geography = _GEOGRAPHIES.get(region.split("-")[0], "global")
    return f"{geography}.{base}"


def max_output_tokens(model: str) -> int:
    return MAX_OUTPUT_TOKENS.get(price_family(model), DEFAULT_MAX_OUTPUT_TOKENS)


def request_params(request: ModelRequest, model: str, max_tokens: int) -> dict[str, Any]:
    """Keyword arguments of ``messages.stream`` for one phase request.

    Cache breakpoints sit on the tool (tools come first in the prompt) and on the system prompt,
    so a repair round or a retry of the same phase reads tool + system from the cache.
    """
    tool = {**request.tool, "cache_control": EPHEMERAL}
    return {
        "model": model,
        "max_tokens": max_tokens,
        "system": [{"type": "text", "text": request.system, "cache_control": EPHEMERAL}],
        "messages": request.messages,
        "tools": [tool],
        "tool_choice": {"type": "tool", "name": request.tool["name"], "disable_parallel_tool_use": True},
    }


def model_error(exc: Exception, model: str) -> WorldgenError:
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
        # Any other 4xx rejects the request we built (schema, grammar too large for strict tools,
        # prompt too long), not the model's output: retrying cannot help, the configuration must change.
        return ConfigurationError(text, **details)
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
        self._client = client
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

    def _anthropic_client(self) -> anthropic.Anthropic:
        import anthropic

        options: dict[str, Any] = {
            "api_key": self._api_key(),
            "max_retries": self.settings.sdk_max_retries,
            "timeout": self.settings.request_timeout_seconds,
        }
        if self.settings.anthropic_base_url:  # else the SDK reads ANTHROPIC_BASE_URL itself
            options["base_url"] = self.settings.anthropic_base_url
        return anthropic.Anthropic(**options)

    def _bedrock_client(self) -> anthropic.AnthropicBedrock:
        import anthropic

        return anthropic.AnthropicBedrock(
            aws_region=self.region,
            max_retries=self.settings.sdk_max_retries,
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

    # -- call ----------------------------------------------------------------------------------

    def call(self, request: ModelRequest) -> ModelResponse:
        """One tool call; a ``max_tokens`` stop is retried once with a larger budget.

        Both HTTP calls of such a retry are summed into the one ModelUsage returned (or attached
        as ``details["usage"]`` to the error raised), so the ledger counts every token.
        """
        model = self.model_id(request.phase)
        client = self.client
        started = time.perf_counter()
        budget = request.max_tokens
        usage = ModelUsage(provider=self.provider, model=model)
        # One deadline for the whole call (both streams of a max_tokens retry): the phase budgets it.
        deadline = time.monotonic() + (request.deadline_seconds or self.settings.request_timeout_seconds)
        message = self._stream(client, request_params(request, model, budget), usage, deadline)
        if message.stop_reason == "max_tokens":
            larger = min(budget * 2, max_output_tokens(model))
            if larger > budget:
                extra = {"phase": request.phase.id, "max_tokens": budget, "retry_max_tokens": larger}
                logger.info("answer hit max_tokens; retrying with a larger budget", extra=extra)
                budget = larger
                message = self._stream(client, request_params(request, model, budget), usage, deadline)
        usage.latency_ms = int((time.perf_counter() - started) * 1000)
        usage.stop_reason = message.stop_reason
        usage.cost_usd = cost_usd(usage.model, usage)
        if message.stop_reason == "max_tokens":
            raise ModelOutputTruncated(
                f"phase {request.phase.id}: the answer hit max_tokens={budget} even after the retry",
                max_tokens=budget,
                usage=asdict(usage),
            )
        if message.stop_reason == "refusal":
            raise ModelRefused(f"phase {request.phase.id}: the model refused to answer", usage=asdict(usage))
        return _response(message, request.tool["name"], usage)

    def _stream(self, client: Any, params: dict[str, Any], usage: ModelUsage, deadline: float) -> Any:
        """Stream one request to its final message before ``deadline``; add its usage to ``usage``.

        The deadline reached while the answer is still streaming is a truncation (permanent: a
        retry streams as long again); a stream that stalls (no bytes within the SDK's read
        timeout) is an APITimeoutError, ModelTimeout (transient).
        """
        import anthropic

        try:
            with client.messages.stream(**params) as stream:
                for _event in stream:
                    if time.monotonic() > deadline:
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
            raise model_error(exc, params["model"]) from exc
        except Exception as exc:  # the SDK wraps transport errors of the request, not of the stream's body
            cause = _transport_cause(exc)
            if cause is None:
                raise
            error = ModelTimeout if isinstance(cause, TimeoutError) else ModelUnavailable
            raise error(
                f"the stream from model {params['model']} broke off: {type(exc).__name__}: {exc}"
                + (" (no bytes within WORLDGEN_REQUEST_TIMEOUT_SECONDS)" if error is ModelTimeout else ""),
                model=params["model"],
            ) from exc
        _add_usage(usage, message)
        return message


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


def _response(message: Any, tool_name: str, usage: ModelUsage) -> ModelResponse:
    content = [_block_param(block) for block in message.content]
    for block in message.content:
        if block.type == "tool_use" and block.name == tool_name:
            tool_input = block.input if isinstance(block.input, dict) else None
            return ModelResponse(tool_input, usage, content, block.id)
    return ModelResponse(None, usage, content, None)


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
