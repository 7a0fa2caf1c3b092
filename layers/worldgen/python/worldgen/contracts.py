"""Every string that the runtime shares with the stack, the local runtime or Hasura, defined once.

``infra/`` (function environments, alarms, the dashboard, the secret's description), the handlers
and ``worldgen.local`` import these names; a rename here changes all of them together, so it can
never silently empty the dashboard or unset a setting. Tests compare the synthesized template with
these constants.
"""

from __future__ import annotations

from dataclasses import dataclass

# The header Hasura sends to the action URL, holding the shared action secret.
ACTION_SECRET_HEADER = "x-worldgen-action-secret"

# Powertools: the service name (log field and metric dimension) and the CloudWatch namespace.
SERVICE_NAME = "worldgen"
METRICS_NAMESPACE = "Worldgen"

# Environment variable names Powertools reads (its own names, set per function by the stack).
POWERTOOLS_SERVICE_NAME_ENV = "POWERTOOLS_SERVICE_NAME"
POWERTOOLS_METRICS_NAMESPACE_ENV = "POWERTOOLS_METRICS_NAMESPACE"
POWERTOOLS_LOG_LEVEL_ENV = "POWERTOOLS_LOG_LEVEL"
POWERTOOLS_TRACE_DISABLED_ENV = "POWERTOOLS_TRACE_DISABLED"
POWERTOOLS_METRICS_DISABLED_ENV = "POWERTOOLS_METRICS_DISABLED"

# Every function's Powertools environment on AWS.
POWERTOOLS_ENVIRONMENT: dict[str, str] = {
    POWERTOOLS_SERVICE_NAME_ENV: SERVICE_NAME,
    POWERTOOLS_METRICS_NAMESPACE_ENV: METRICS_NAMESPACE,
    POWERTOOLS_LOG_LEVEL_ENV: "INFO",
}

# Where the state machine reads an execution's redrive count (a redrive keeps the execution's ARN
# and adds one to the count): written into every Lambda's payload by the ASL builder
# (worldgen.tools.statemachine), resolved by the local runtime as Step Functions does.
# https://docs.aws.amazon.com/step-functions/latest/dg/input-output-contextobject.html
REDRIVE_COUNT_PATH = "$$.Execution.RedriveCount"

# worldgen's settings (worldgen.settings.Settings) are read from WORLDGEN_<FIELD NAME>.
SETTINGS_ENV_PREFIX = "WORLDGEN_"


def settings_env_name(field: str) -> str:
    """The environment variable of a ``Settings`` field: ``database_secret_arn`` -> ``WORLDGEN_DATABASE_SECRET_ARN``."""
    return f"{SETTINGS_ENV_PREFIX}{field}".upper()


DATABASE_URL_ENV = settings_env_name("database_url")
DATABASE_SECRET_ARN_ENV = settings_env_name("database_secret_arn")
MODEL_PROVIDER_ENV = settings_env_name("model_provider")
DEFAULT_MODEL_ENV = settings_env_name("default_model")
PHASE_MODELS_ENV = settings_env_name("phase_models")
ANTHROPIC_API_KEY_ENV = settings_env_name("anthropic_api_key")
ANTHROPIC_API_KEY_SECRET_ARN_ENV = settings_env_name("anthropic_api_key_secret_arn")
BEDROCK_REGION_ENV = settings_env_name("bedrock_region")
STATE_MACHINE_ARN_ENV = settings_env_name("state_machine_arn")
QUICK_STATE_MACHINE_ARN_ENV = settings_env_name("quick_state_machine_arn")
DEFAULT_PROFILE_ENV = settings_env_name("default_profile")
ACTION_SECRET_ENV = settings_env_name("action_secret")
ACTION_SECRET_ARN_ENV = settings_env_name("action_secret_arn")
SEED_ENV = settings_env_name("seed")
SCALE_ENV = settings_env_name("scale")


@dataclass(frozen=True)
class MetricSpec:
    """A CloudWatch metric worldgen emits: its name and its unit (a Powertools ``MetricUnit`` value)."""

    name: str
    unit: str


# Phase metrics (dimensions service and phase).
PHASE_ROWS = MetricSpec("PhaseRows", "Count")
INPUT_TOKENS = MetricSpec("InputTokens", "Count")
OUTPUT_TOKENS = MetricSpec("OutputTokens", "Count")
CACHE_READ_INPUT_TOKENS = MetricSpec("CacheReadInputTokens", "Count")
# US dollars: CloudWatch has no currency unit, so a plain number (NoUnit), never "Count".
COST_USD = MetricSpec("CostUsd", "None")
# A phase's model calls: its outline or cache primer, its parts and their repairs (a retried
# attempt counts only the calls it made: what the failed attempt already got is reused).
MODEL_CALLS = MetricSpec("ModelCalls", "Count")
TOKEN_METRICS = (INPUT_TOKENS, OUTPUT_TOKENS, CACHE_READ_INPUT_TOKENS)
PHASE_METRICS = (PHASE_ROWS, *TOKEN_METRICS, COST_USD, MODEL_CALLS)

# Generation and action metrics (dimension service).
GENERATIONS_SUCCEEDED = MetricSpec("GenerationsSucceeded", "Count")
GENERATIONS_ROLLED_BACK = MetricSpec("GenerationsRolledBack", "Count")
GENERATIONS_FAILED = MetricSpec("GenerationsFailed", "Count")
ACTIONS_SERVED = MetricSpec("ActionsServed", "Count")
ALL_METRICS = (*PHASE_METRICS, GENERATIONS_SUCCEEDED, GENERATIONS_ROLLED_BACK, GENERATIONS_FAILED, ACTIONS_SERVED)

# The metric dimension that names the phase.
PHASE_DIMENSION = "phase"

# Secrets (issue 25): the column of a world row that only the game master reads, and the flag of a
# link (a relationship row) that players must not learn of. The migrations, Hasura's permissions,
# the tool schemas and every players export name them through these constants.
GM_NOTES_COLUMN = "gm_notes"
SECRET_LINK_COLUMN = "is_secret"
# What a row that leaves them out means (the model may, an older file does): no secret. The columns
# default to these in the database; the saver and the importer write them, since a COPY or an INSERT
# of many rows names every column for every row.
SECRET_DEFAULTS: dict[str, object] = {GM_NOTES_COLUMN: "", SECRET_LINK_COLUMN: False}
# Who an export is for (``worldgen export --audience``): the game master sees everything, the players
# nothing of the above.
GM_AUDIENCE = "gm"
PLAYERS_AUDIENCE = "players"
EXPORT_AUDIENCES = (GM_AUDIENCE, PLAYERS_AUDIENCE)
