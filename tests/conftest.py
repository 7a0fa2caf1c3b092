"""Shared fixtures: a real PostgreSQL (embedded pgserver unless WORLDGEN_TEST_DATABASE_URL is set).

Each xdist worker starts its own server in a temporary folder, migrates a template database once,
and gives every test that asks for ``db_url`` a fresh clone of it (CREATE DATABASE ... TEMPLATE).
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from worldgen.db.connection import connect, reset_shared_connection
from worldgen.local.postgres import clone_database, drop_database, ensure_runtime_dir, migrated_template
from worldgen.settings import get_settings

ensure_runtime_dir()  # before anything imports platformdirs or pgserver
# The suite never writes into the user's worldgen home (worldgen.local.home): each test process
# (each xdist worker) has its own, removed at exit; a test that needs another sets WORLDGEN_HOME.
TEST_HOME = tempfile.mkdtemp(prefix="worldgen-test-home-")
os.environ["WORLDGEN_HOME"] = TEST_HOME
atexit.register(shutil.rmtree, TEST_HOME, ignore_errors=True)
REPO_ROOT = Path(__file__).resolve().parents[1]
_clone_numbers = itertools.count()


@pytest.fixture(scope="session")
def admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the ``postgres`` database of a server this test session may create databases on."""
    configured = os.environ.get("WORLDGEN_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    import pgserver

    ensure_runtime_dir()
    server = pgserver.get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")
    yield str(server.get_uri())
    server.cleanup()


@pytest.fixture(scope="session")
def template_db(admin_url: str) -> str:
    return migrated_template(admin_url)


@pytest.fixture
def db_url(admin_url: str, template_db: str) -> Iterator[str]:
    """A fresh, fully migrated database for one test."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "w")
    name = f"t_{worker}_{os.getpid()}_{next(_clone_numbers)}"
    url = clone_database(admin_url, template_db, name)
    yield url
    reset_shared_connection()
    drop_database(admin_url, name)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with connect(db_url) as connection:
        yield connection


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch, db_url: str) -> Iterator[str]:
    """Settings pointing at the test database (and nothing else from the developer's environment)."""
    for name in list(os.environ):
        if name == "WORLDGEN_HOME":
            continue
        if name.startswith("WORLDGEN_") or name in (
            "DATABASE_URL",
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_BASE_URL",
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLDGEN_DATABASE_URL", db_url)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    get_settings.cache_clear()
    reset_shared_connection()
    yield db_url
    get_settings.cache_clear()
    reset_shared_connection()


@pytest.fixture
def one_call_phases(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every phase as one call (no outline, no parts) with a one-call budget, for tests of the
    single-call path (a phase the registry declares without parts)."""
    import dataclasses

    import worldgen.pipeline as pipeline
    from worldgen.phases import get_phase

    def whole(phase_id: str) -> Any:
        phase = get_phase(phase_id)
        return dataclasses.replace(phase, parts=(), outline=False, expected_output_tokens=10000)

    monkeypatch.setattr(pipeline, "get_phase", whole)
