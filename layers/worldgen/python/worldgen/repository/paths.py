"""Paths of the repository checkout, for the build and workstation tools only.

The runtime package never computes a path from its own location: the layer is laid out as
``/opt/python`` on Lambda, with no repository around it.
"""

from __future__ import annotations

from pathlib import Path


def _find_root() -> Path:
    for folder in Path(__file__).resolve().parents:
        if (folder / "pyproject.toml").is_file() and (folder / "functions").is_dir():
            return folder
    raise RuntimeError(
        "worldgen's build tools need the repository checkout (pyproject.toml, functions/, infra/); "
        "they are not part of the Lambda layer"
    )


REPO_ROOT = _find_root()
FUNCTIONS_DIR = REPO_ROOT / "functions"
MIGRATIONS_DIR = REPO_ROOT / "infra" / "hasura" / "migrations" / "default"
ASL_PATH = REPO_ROOT / "statemachine" / "generation.asl.json"
QUICK_ASL_PATH = REPO_ROOT / "statemachine" / "generation-quick.asl.json"
ASL_PATHS = {"full": ASL_PATH, "quick": QUICK_ASL_PATH}  # one state machine per profile
STATEMACHINE_README = REPO_ROOT / "statemachine" / "README.md"
PROJECT_README = REPO_ROOT / "README.md"
