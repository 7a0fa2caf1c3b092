"""The `worldgen` command as a user runs it: a subprocess, against the test database."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from worldgen.phases import PHASES

pytestmark = pytest.mark.xdist_group("e2e")


def worldgen(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORLDGEN_", "ANTHROPIC_"))}
    env["WORLDGEN_DATABASE_URL"] = database_url
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

    status = worldgen("status", database_url=db_url)
    assert status.returncode == 0
    assert "status: succeeded" in status.stdout
    assert "model: procedural" in status.stdout


def test_an_unknown_model_provider_is_a_clear_cli_error_listing_the_valid_ones(db_url):
    result = worldgen("demo", "--model", "gpt-9", database_url=db_url)

    assert result.returncode == 2
    assert "unknown model 'gpt-9'; choose one of: procedural, anthropic, bedrock" in result.stderr


def test_migrate_twice_reports_nothing_to_do(db_url):
    result = worldgen("db", "migrate", database_url=db_url)
    assert result.returncode == 0
    assert "nothing to do" in result.stdout
