"""The lines the CLI prints for a refused action and a failed execution: words, not JSON in JSON."""

from __future__ import annotations

import json

import pytest

from worldgen.errors import DatabaseUnavailable, InvalidModelOutput
from worldgen.local.commands import failure_line, refusal_line
from worldgen.tools.cli import error_line


def test_a_failed_execution_shows_the_lambda_error_inside_the_cause() -> None:
    cause = json.dumps({"errorType": "ConfigurationError", "errorMessage": "no Anthropic API key", "trace": []})
    line = failure_line({"status": "FAILED", "error": "ConfigurationError", "cause": cause})
    assert line == "error: ConfigurationError: no Anthropic API key"


def test_a_cause_that_is_not_json_is_shown_as_it_is() -> None:
    assert failure_line({"error": "States.Timeout", "cause": "took too long"}) == "error: States.Timeout: took too long"
    assert failure_line({"error": "States.Timeout"}) == "error: States.Timeout"


def test_a_refused_action_is_its_message_and_code() -> None:
    body = {"message": "campaign 42 does not exist", "extensions": {"code": "campaign-not-found"}}
    assert refusal_line(404, body) == "error: campaign 42 does not exist [campaign-not-found]"


def test_an_error_that_ends_a_command_is_one_line() -> None:
    assert error_line(DatabaseUnavailable("connection to server at 10.0.0.1 failed\n\tIs it running?")) == (
        "error: the database is unavailable; check WORLDGEN_DATABASE_URL or that PostgreSQL is running"
    )
    assert error_line(InvalidModelOutput("line one\nline two")) == "error: InvalidModelOutput: line one line two"
    assert "\n" not in error_line(RuntimeError("a\nb"))


@pytest.mark.parametrize(
    ("url", "password"),
    [
        ("postgressql://gm:hunter2@localhost/worldgen", "hunter2"),  # a typo in the scheme
        ("postgresql://gm:p%40ss@db:5432/w", "p@ss"),  # percent-encoded: both spellings are masked
        ("postgresql://gm:raw@at@db/w", "raw@at"),
        ("host=db user=gm password='two words' dbname=w", "two words"),
        ("host=db password=plain dbname=w", "plain"),
    ],
)
def test_a_database_urls_password_is_masked_in_any_line(monkeypatch, url, password) -> None:
    from worldgen.local.preflight import redact, url_passwords
    from worldgen.settings import get_settings

    monkeypatch.setenv("WORLDGEN_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        assert password in url_passwords(url)
        line = redact(f"error: ProgrammingError: missing '=' after {url!r} ({password})")
    finally:
        get_settings.cache_clear()
    assert password not in line and "***" in line
