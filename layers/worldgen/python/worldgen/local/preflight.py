"""What the CLI checks before it starts anything: each problem one line that says what to do."""

from __future__ import annotations

import argparse
import re
import socket
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from worldgen.settings import get_settings


def model_problems(provider: str) -> list[str]:
    """What stops ``provider`` from answering. The model settings are checked first, as making the
    model would check them: a wrong one raises ConfigurationError, which the CLI prints in one line."""
    from worldgen.model.factory import check_model_settings

    settings = get_settings()
    check_model_settings(settings, provider)
    if provider == "anthropic" and not (
        (settings.anthropic_api_key and settings.anthropic_api_key.get_secret_value())
        or settings.anthropic_api_key_secret_arn
    ):
        return [
            "--model anthropic needs an API key: set ANTHROPIC_API_KEY (or WORLDGEN_ANTHROPIC_API_KEY), "
            "or use --model procedural for the offline generator"
        ]
    if provider == "anthropic" and not settings.anthropic_api_key_secret_arn:
        return anthropic_reachable(settings.anthropic_base_url or "https://api.anthropic.com")
    if provider == "bedrock":
        import boto3

        if boto3.Session().get_credentials() is None:
            return ["--model bedrock needs AWS credentials: configure a profile (aws configure) or AWS_* variables"]
    return []


# Three tries of at most 4 s each, 1 s apart: an unreachable API is said within 15 s, not after the
# SDK's retries of a whole phase.
REACH_TRIES, REACH_TIMEOUT, REACH_PAUSE = 3, 4.0, 1.0


def anthropic_reachable(base_url: str) -> list[str]:
    """The Messages API's host answers a TCP connection; each failed try is said as it happens."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "api.anthropic.com", parts.port or (80 if parts.scheme == "http" else 443)
    reason = ""
    for attempt in range(1, REACH_TRIES + 1):
        try:
            socket.create_connection((host, port), timeout=REACH_TIMEOUT).close()
            return []
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
        if attempt < REACH_TRIES:
            print(
                f"cannot reach the Anthropic API at {host}:{port} ({reason});"
                f" trying again ({attempt + 1}/{REACH_TRIES})...",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(REACH_PAUSE)
    return [
        f"cannot reach the Anthropic API at {host}:{port} ({reason}) after {REACH_TRIES} tries: check the network"
        " (or ANTHROPIC_BASE_URL), or use --model procedural for the offline generator"
    ]


def url_passwords(url: str) -> list[str]:
    """The password in a database URL or conninfo string, as written and decoded, even when the
    rest of it is mistyped (``postgressql://gm:hunter2@...``): what no output may show."""
    found = re.findall(r"^[^:/]*:?//[^:@/]*:(.*)@", url.strip())  # up to the last @: a raw @ in it too
    found += [m.strip("'") for m in re.findall(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", url)]
    return [p for secret in found if secret for p in {secret, unquote(secret)}]


def redact(text: str) -> str:
    """``text`` with the configured database URL's password replaced by ``***``."""
    try:
        url = get_settings().database_url or ""
    except Exception:  # settings that do not load are reported elsewhere; nothing to mask by
        return text
    for secret in sorted(url_passwords(url), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def masked_url(url: str) -> str:
    return redact(url) if url == (get_settings().database_url or "") else url


def database_problems() -> list[str]:
    """The configured PostgreSQL answers (the embedded one is started on demand, nothing to check)."""
    import psycopg

    url = get_settings().database_url
    if not url:
        return []
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return ["WORLDGEN_DATABASE_URL (or DATABASE_URL) is not a PostgreSQL URL: use postgresql://user@host:5432/db"]
    where = f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}/{info.get('dbname') or ''}"
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [
            f"cannot reach PostgreSQL at {where} (WORLDGEN_DATABASE_URL or DATABASE_URL): {reason[:200]}; "
            "check the URL, or unset it to use the embedded PostgreSQL (`worldgen where`)"
        ]
    return []


def campaign_problems(path: str) -> list[str]:
    from worldgen.local.campaigns import CampaignFileError, read_campaign_file

    try:
        read_campaign_file(Path(path))
    except CampaignFileError as exc:
        return [f"campaign file {path}: {problem}" for problem in exc.problems]
    return []


def preflight(args: argparse.Namespace) -> list[str]:
    """Every problem found before the command starts (the cheap ones first)."""
    problems: list[str] = []
    if getattr(args, "campaign_file", None):
        problems += campaign_problems(args.campaign_file)
    if getattr(args, "model", None) or args.command in ("demo", "generate", "regenerate", "serve"):
        problems += model_problems(args.model or get_settings().model_provider)
    if getattr(args, "needs_database", True):
        problems += database_problems()
    return problems
