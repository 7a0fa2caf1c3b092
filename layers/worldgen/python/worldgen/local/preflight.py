"""What the CLI checks before it starts anything: each problem one line that says what to do."""

from __future__ import annotations

import argparse
from pathlib import Path

from worldgen.settings import get_settings


def model_problems(provider: str) -> list[str]:
    settings = get_settings()
    if provider == "anthropic" and not (
        (settings.anthropic_api_key and settings.anthropic_api_key.get_secret_value())
        or settings.anthropic_api_key_secret_arn
    ):
        return [
            "--model anthropic needs an API key: set ANTHROPIC_API_KEY (or WORLDGEN_ANTHROPIC_API_KEY), "
            "or use --model procedural for the offline generator"
        ]
    if provider == "bedrock":
        import boto3

        if boto3.Session().get_credentials() is None:
            return ["--model bedrock needs AWS credentials: configure a profile (aws configure) or AWS_* variables"]
    return []


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
            "check the URL, or unset it to use the embedded PostgreSQL in .worldgen/"
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
    if getattr(args, "campaign", None):
        problems += campaign_problems(args.campaign)
    if getattr(args, "model", None) or args.command in ("demo", "generate", "regenerate", "serve"):
        problems += model_problems(args.model or get_settings().model_provider)
    if getattr(args, "needs_database", True):
        problems += database_problems()
    return problems
