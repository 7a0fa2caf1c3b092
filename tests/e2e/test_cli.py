"""The `worldgen` command as a user runs it: a subprocess, against the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest

from worldgen.local.campaigns import SAMPLE_CAMPAIGN
from worldgen.phases import PHASES, PROFILES

pytestmark = pytest.mark.xdist_group("e2e")


def worldgen(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORLDGEN_", "ANTHROPIC_"))}
    env["WORLDGEN_DATABASE_URL"] = database_url
    env["WORLDGEN_HOME"] = os.environ["WORLDGEN_HOME"]  # the test session's (tests/conftest.py)
    return subprocess.run(
        [sys.executable, "-m", "worldgen.tools.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_demo_generates_the_sample_world_with_progress_and_a_labelled_summary(db_url):
    demo = worldgen("demo", database_url=db_url)

    assert demo.returncode == 0, demo.stderr
    assert "procedural (offline generator, not Claude)" in demo.stdout
    for phase in PHASES:
        assert f"✓ {phase.id} {phase.name}" in demo.stdout
    assert "execution SUCCEEDED" in demo.stdout
    assert "rows per table:" in demo.stdout
    assert '"level"' not in demo.stdout + demo.stderr  # no Powertools log line without --verbose
    assert "Warning" not in demo.stdout + demo.stderr

    status = worldgen("status", database_url=db_url)
    assert status.returncode == 0
    assert "status: succeeded" in status.stdout
    assert "model: procedural" in status.stdout


def test_demo_profile_quick_generates_a_lean_world_in_three_phases_that_passes_the_world_checks(db_url):
    demo = worldgen("demo", "--profile", "quick", database_url=db_url)

    assert demo.returncode == 0, demo.stderr
    for phase in PROFILES["quick"]:
        assert f"✓ {phase.id} {phase.name}" in demo.stdout
    assert "✓ 1A" not in demo.stdout
    assert "profile: quick" in demo.stdout
    assert "execution SUCCEEDED" in demo.stdout
    assert "PCs with an NPC, a place and a quest: 4/4" in demo.stdout
    assert "orphans: 0" in demo.stdout
    assert '"level"' not in demo.stdout + demo.stderr


def test_an_unknown_profile_is_a_clear_cli_error_listing_the_valid_ones(db_url):
    result = worldgen("demo", "--profile", "slow", database_url=db_url)

    assert_one_clean_error(result, "'slow'")
    assert "full" in result.stderr and "quick" in result.stderr


def test_an_unknown_model_provider_is_a_clear_cli_error_listing_the_valid_ones(db_url):
    result = worldgen("demo", "--model", "gpt-9", database_url=db_url)

    assert_one_clean_error(result, "unknown model 'gpt-9'; choose one of: procedural, anthropic, bedrock")


def test_migrate_twice_reports_nothing_to_do(db_url):
    result = worldgen("db", "migrate", database_url=db_url)
    assert result.returncode == 0
    assert "nothing to do" in result.stdout


# -- a person's mistakes: one line each, a non-zero exit, no traceback, no log lines (issue 17) --


def assert_one_clean_error(result: subprocess.CompletedProcess[str], expected: str, code: int = 2) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert any(expected in line for line in lines), result.stderr
    assert all(line.startswith("error: ") for line in lines), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert '"level"' not in result.stderr + result.stdout  # no Powertools log line
    assert "Warning" not in result.stderr + result.stdout
    assert "{" not in result.stderr  # no raw JSON


def test_regenerate_with_a_campaign_and_a_phase_that_are_not_ones_is_a_one_line_error(db_url):
    result = worldgen("regenerate", "nope", "2B", database_url=db_url)
    assert_one_clean_error(result, "no campaign is named 'nope': `worldgen campaigns` lists them")

    result = worldgen("regenerate", "0b9e5c1e-0000-4000-8000-000000000000", "9Z", database_url=db_url)
    assert_one_clean_error(result, "unknown phase '9Z'; choose one of: 1A, 1B")


def test_regenerate_of_an_unknown_campaign_says_so_in_one_line_not_json(db_url):
    result = worldgen("regenerate", "0b9e5c1e-0000-4000-8000-000000000000", "2b", database_url=db_url)
    assert_one_clean_error(
        result, "no campaign or generation has the id 0b9e5c1e-0000-4000-8000-000000000000: `worldgen campaigns`"
    )


def test_cancel_of_an_unknown_generation_exits_non_zero_with_one_line(db_url):
    result = worldgen("cancel", "0b9e5c1e-0000-4000-8000-000000000000", database_url=db_url)
    assert_one_clean_error(result, "no campaign or generation has the id 0b9e5c1e-0000-4000-8000-000000000000")


def test_an_unreachable_database_is_one_line_naming_where_and_what_to_do():
    result = worldgen("status", database_url="postgresql://nobody@127.0.0.1:1/nowhere")
    assert_one_clean_error(result, "cannot reach PostgreSQL at 127.0.0.1:1/nowhere")
    assert "unset it to use the embedded PostgreSQL" in result.stderr


def test_demo_with_anthropic_and_no_key_stops_before_starting_a_generation(db_url):
    result = worldgen("demo", "--model", "anthropic", database_url=db_url)

    assert_one_clean_error(result, "--model anthropic needs an API key: set ANTHROPIC_API_KEY")
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM generations").fetchone() == (0,)


@pytest.mark.parametrize(
    ("label", "content", "expected"),
    [
        ("invalid JSON", '{\n  "name": "x",\n  "setting": oops\n}', "invalid JSON at line 3, column 14"),
        ("duplicate PC names", "DUPLICATE", "player characters need distinct names"),
        ("a NUL character", "NUL", "contains the NUL character"),
    ],
)
def test_a_bad_campaign_file_is_one_line_per_problem(db_url, tmp_path, label, content, expected):
    sample = json.loads(SAMPLE_CAMPAIGN.read_text())
    if content == "DUPLICATE":
        sample["player_characters"].append(dict(sample["player_characters"][0]))
        content = json.dumps(sample)
    elif content == "NUL":
        sample["setting"] += "\u0000"
        sample["player_characters"][0]["backstory"] += "\u0000"
        content = json.dumps(sample)
    path = tmp_path / "campaign.json"
    path.write_text(content)

    result = worldgen("generate", "--campaign", str(path), database_url=db_url)

    assert_one_clean_error(result, expected)
    assert f"error: campaign file {path}: " in result.stderr
    if label == "a NUL character":
        assert len(result.stderr.strip().splitlines()) == 2  # the setting and the backstory


def test_a_full_run_with_event_logging_leaks_no_secret(db_url):
    """POWERTOOLS_LOGGER_LOG_EVENT logs every event, the action's headers too: the secret is masked."""
    secrets = {"WORLDGEN_ACTION_SECRET": "action-secret-7d1c0f", "ANTHROPIC_API_KEY": "sk-ant-never-printed-5e2b"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORLDGEN_", "ANTHROPIC_", "POWERTOOLS_"))}
    env.update(secrets, WORLDGEN_DATABASE_URL=db_url, POWERTOOLS_LOGGER_LOG_EVENT="true")
    result = subprocess.run(
        [sys.executable, "-m", "worldgen.tools.cli", "demo", "--verbose"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert '"x-worldgen-action-secret":"*****"' in output  # the event was logged, masked
    for name, value in secrets.items():
        assert value not in output, f"{name} leaked"
