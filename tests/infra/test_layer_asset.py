"""Every handler imports from what `cdk synth` packages, laid out as Lambda lays it out (/opt/python).

The repository checkout is invisible to these imports (``python -I -S``, cwd outside the repo,
only the function's code asset, its layer assets and the third-party packages on ``sys.path``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.infra.synthesized import Synthesized
from worldgen.tools.assembly import (
    LAMBDA_UNZIPPED_LIMIT_BYTES,
    can_mount_opt,
    clean_environment,
    isolated_command,
    lambda_layout,
    packaged_functions,
)

MOUNT_OPT = can_mount_opt()

IMPORT_HANDLER = """
import importlib, json, os, sys
module = importlib.import_module({module!r})
handler = getattr(module, {attribute!r})
import worldgen, worldgen.settings
print(json.dumps({{"worldgen": worldgen.__file__, "callable": callable(handler),
                  "anthropic_loaded": "anthropic" in sys.modules}}))
"""


def _import_from_asset(function, tmp_cwd: Path) -> subprocess.CompletedProcess[str]:
    with lambda_layout(function) as (task, opt):
        code = IMPORT_HANDLER.format(module=function.module, attribute=function.attribute)
        return subprocess.run(
            isolated_command(task, opt, code, mount_opt=MOUNT_OPT),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_cwd,
            env=clean_environment({"POWERTOOLS_TRACE_DISABLED": "true"}),
        )


# The packaged layout is the same in every environment: checked on dev.
dev_only = pytest.mark.parametrize("synthesized", ["dev"], indirect=True)


def _dev(synthesized: Synthesized) -> Synthesized:
    assert synthesized.env == "dev"
    return synthesized


@dev_only
def test_every_handler_imports_from_the_synthesized_assets_laid_out_as_opt_python(synthesized, tmp_path):
    functions = packaged_functions(_dev(synthesized).outdir)
    assert len(functions) == 16  # 12 phase functions (9 full, 3 quick) and 4 service functions
    for function in functions.values():
        result = _import_from_asset(function, tmp_path)
        assert result.returncode == 0, f"{function.logical_id} ({function.handler}): {result.stderr[-2000:]}"
        seen = json.loads(result.stdout.strip().splitlines()[-1])
        assert seen["callable"], function.logical_id
        where = seen["worldgen"]
        assert "/opt/python/worldgen/" in where, f"{function.logical_id} imported worldgen from {where}"
        assert not seen["anthropic_loaded"], f"{function.logical_id} imports the anthropic SDK at cold start"


@dev_only
def test_the_layer_asset_ships_no_build_tools_and_carries_the_package_data(synthesized):
    function = packaged_functions(_dev(synthesized).outdir)["Phase1AFunction"]
    (layer,) = function.layer_dirs
    package = layer / "python" / "worldgen"
    assert not (package / "tools").exists(), "build tools (worldgen.tools) must not ship in the layer"
    assert not (package / "local").exists(), "the local runtime (worldgen.local) must not ship in the layer"
    assert not (package / "repository").exists(), "the checkout's paths and migrator must not ship in the layer"
    assert sorted(p.name for p in (package / "schema" / "generated").glob("*.json"))[0] == "phase_1a.json"
    assert (package / "prompts" / "system.txt").is_file()
    assert function.unzipped_bytes() < LAMBDA_UNZIPPED_LIMIT_BYTES


@dev_only
def test_an_import_of_the_repository_layout_fails_from_the_asset(synthesized, tmp_path):
    """The check can fail: a handler that reaches for a build tool does not import from the asset."""
    function = packaged_functions(_dev(synthesized).outdir)["Phase1AFunction"]
    broken_code = tmp_path / "broken"
    shutil.copytree(function.code_dir, broken_code)
    (broken_code / "app.py").write_text("from worldgen.repository.paths import REPO_ROOT\nhandler = None\n")
    broken = type(function)(
        logical_id="Broken", handler="app.handler", code_dir=broken_code, layer_dirs=function.layer_dirs
    )
    result = _import_from_asset(broken, tmp_path)
    assert result.returncode != 0
    assert "No module named 'worldgen.repository'" in result.stderr
