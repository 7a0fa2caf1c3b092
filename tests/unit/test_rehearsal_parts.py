"""Parts of the deploy rehearsal that need no assembly: the worker program (tools/rehearsal/worker.py),
run by path as the rehearsal runs it (its line protocol, Lambda's context and error report, the
settings read), and the settings rule's names. tests/infra/test_rehearsal.py runs the whole of it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from worldgen.settings import Settings
from worldgen.tools.rehearsal.checks import SETTINGS_ALTERNATIVES, SETTINGS_WITH_PRODUCTION_DEFAULTS
from worldgen.tools.rehearsal.functions import worker_code

APP = """
import os
from worldgen.settings import get_settings

def handler(event, context):
    print("a print goes to the log, not into the protocol")
    get_settings().seed
    time_left = context.get_remaining_time_in_millis() > 0
    return {"echo": event, "request_id": context.aws_request_id, "time_left": time_left}
"""
ENV = {"AWS_LAMBDA_FUNCTION_NAME": "fn", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512", "AWS_LAMBDA_LOG_GROUP_NAME": "/g"}


def run_worker(tmp_path: Path, module: str, requests: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    (tmp_path / "app.py").write_text(APP)
    # As the rehearsal does: a program on the command line whose sys.path it sets, then the worker by path.
    prelude = f"import sys; sys.path[:0] = [{str(tmp_path)!r}]\n"
    result = subprocess.run(
        [sys.executable, "-c", prelude + worker_code(module, "handler")],
        input="".join(json.dumps(r) + "\n" for r in requests),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**ENV, "PATH": "/usr/bin:/bin", "WORLDGEN_DATABASE_URL": "postgresql://localhost/x"},
    )
    return [json.loads(line) for line in result.stdout.splitlines()], result.stderr


def request(event: dict[str, Any], inject: str | None = None) -> dict[str, Any]:
    return {"event": event, "request_id": "r-1", "function_arn": "arn:fn", "timeout": 30, "inject": inject}


def test_the_worker_answers_each_invocation_on_its_own_line_with_the_settings_read(tmp_path: Path) -> None:
    replies, log = run_worker(tmp_path, "app", [request({"n": 1}), request({"n": 2}, inject="InvalidModelOutput")])

    hello, first, second = replies
    assert hello["ready"] is True and hello["import_ms"] > 0
    assert first["result"] == {"echo": {"n": 1}, "request_id": "r-1", "time_left": True}
    assert "seed" in first["settings_read"] and first["calls"] == []
    assert second["error"] == {"errorType": "InvalidModelOutput", "errorMessage": "injected by the deploy rehearsal"}
    assert "a print goes to the log" in log


def test_a_handler_that_does_not_import_is_reported_not_ready(tmp_path: Path) -> None:
    replies, _ = run_worker(tmp_path, "no_such_app", [])

    (hello,) = replies
    assert hello == {"ready": False, "error": "ModuleNotFoundError: No module named 'no_such_app'"}


def test_the_settings_rule_names_only_real_settings() -> None:
    """A renamed setting must not leave its old name exempted while the new one goes unchecked."""
    named = SETTINGS_WITH_PRODUCTION_DEFAULTS.union(*SETTINGS_ALTERNATIVES)
    assert named - set(Settings.model_fields) == set()
