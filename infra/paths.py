"""Repository paths the CDK app packages (resolved from this file, so synth works from any cwd).

infra/ owns the paths it packages; the worldgen runtime package knows nothing of the repository.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS_DIR = REPO_ROOT / "functions"
WORLDGEN_LAYER_DIR = REPO_ROOT / "layers" / "worldgen"
DEPENDENCIES_LAYER_DIR = REPO_ROOT / "layers" / "dependencies"
# The committed, generated ASL (`make asl` writes it here, the stack reads it from here).
ASL_PATH = REPO_ROOT / "statemachine" / "generation.asl.json"
QUICK_ASL_PATH = REPO_ROOT / "statemachine" / "generation-quick.asl.json"
ASL_PATHS = {"full": ASL_PATH, "quick": QUICK_ASL_PATH}  # one state machine per profile
# Not shipped: they need the repository (see worldgen/repository/__init__.py and worldgen/tools/__init__.py).
LAYER_EXCLUDES = (
    "python/worldgen/local",
    "python/worldgen/repository",
    "python/worldgen/tools",
    "**/__pycache__",
    "*.pyc",
)
