"""layers/dependencies/requirements.txt is the lock of pyproject.toml's runtime dependencies (offline)."""

from __future__ import annotations

import re
from pathlib import Path

from worldgen.tools.lock import LOCK_PATH, PYPROJECT, read_lock, stale_reasons


def test_the_layer_lock_is_fresh_for_pyproject() -> None:
    assert stale_reasons() == [], "run `make lock`"


def test_the_lock_pins_boto3_and_botocore_of_one_release_line() -> None:
    pins = read_lock().pins
    boto3, botocore = pins["boto3"], pins["botocore"]
    assert (boto3.major, boto3.minor) == (botocore.major, botocore.minor)
    assert "aws-xray-sdk" in pins  # the package that would otherwise pull in a foreign botocore
    assert "graphql-core" not in pins  # a build tool, not a runtime dependency


def test_a_new_requirement_makes_the_lock_stale(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    text = PYPROJECT.read_text().replace('"anthropic>=0.40",', '"anthropic>=0.40",\n  "httpx-sse>=0.4",', 1)
    pyproject.write_text(text)
    reasons = stale_reasons(pyproject, LOCK_PATH)
    assert any("httpx-sse" in reason for reason in reasons), reasons


def test_a_pin_outside_its_specifier_or_without_a_hash_is_stale(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.txt"
    # pydantic pinned below pyproject's >=2.7, and its hash lines dropped
    text = re.sub(r"\npydantic==[^\n]*\n(    --hash=[^\n]*\n)+", "\npydantic==2.0\n", LOCK_PATH.read_text())
    lock.write_text(text)
    reasons = stale_reasons(PYPROJECT, lock)
    assert any("pydantic==2.0 does not satisfy >=2.7" in reason for reason in reasons), reasons
    assert "pins without a hash: ['pydantic']" in reasons, reasons
