"""Repository paths the CDK app packages (resolved from this file, so synth works from any cwd)."""

from __future__ import annotations

from pathlib import Path

from worldgen import statemachine

REPO_ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS_DIR = REPO_ROOT / "functions"
WORLDGEN_LAYER_DIR = REPO_ROOT / "layers" / "worldgen"
DEPENDENCIES_LAYER_DIR = REPO_ROOT / "layers" / "dependencies"
# The committed, generated ASL: wherever `make asl` writes it is where the stack reads it.
ASL_PATH = statemachine.ASL_PATH
