"""`make rehearse`: whole worlds run from the synthesized cloud assembly, for dev and staging.

The rehearsal runs as a user runs it (``python -m worldgen.tools.rehearse``) in its own process,
on the assembly the session synthesized and on a fresh migrated database.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.synthesized import Synthesized
from worldgen.tools.assembly import packaged_functions

pytestmark = pytest.mark.xdist_group("infra")


def rehearse(env: str, cdk_out: Path, database_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "worldgen.tools.rehearse", "--env", env, "--cdk-out", str(cdk_out)]
    return subprocess.run(
        [*command, "--database-url", database_url],
        capture_output=True,
        text=True,
        timeout=480,
        cwd=cwd,
    )


@pytest.mark.parametrize("synthesized", ["dev", "staging"], indirect=True)
def test_a_world_runs_from_the_synthesized_assembly_and_a_failing_one_is_recorded(
    synthesized: Synthesized, db_url: str, tmp_path: Path
) -> None:
    result = rehearse(synthesized.env, synthesized.outdir, db_url, tmp_path)
    print(result.stdout)  # the table: sizes, cold imports, worlds, unused permissions
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "world: generateWorld -> execution SUCCEEDED, generation succeeded" in out
    assert "injected InvalidModelOutput at 1B -> execution FAILED, rule matched" in out
    assert "recorder {'status': 'failed'}, generation failed" in out
    assert out.rstrip().endswith("rehearsal passed")
    rows = [line for line in out.splitlines() if line.split() and line.split()[0].endswith("Function")]
    assert "world: generateWorld(profile: quick) -> execution SUCCEEDED, generation succeeded" in out
    assert len(rows) == 16, out  # 12 phase functions (9 full, 3 quick) and 4 service functions
    for row in rows:
        _, handler, size_mb, limit_mb, *_ = row.split()
        assert handler == "app.handler"
        assert float(size_mb) < float(limit_mb)
    # Every phase streams from Claude: a Bedrock role that also allows InvokeModel says so.
    if synthesized.env == "staging":
        assert "bedrock:InvokeModel on" in out
        assert "its role does not allow bedrock" not in out


@pytest.mark.parametrize("synthesized", ["dev"], indirect=True)
def test_the_rehearsal_fails_when_a_handler_imports_the_repository(
    synthesized: Synthesized, db_url: str, tmp_path: Path
) -> None:
    broken = tmp_path / "cdk.out"
    shutil.copytree(synthesized.outdir, broken)
    function = packaged_functions(broken)["CompleteGenerationFunction"]
    (function.code_dir / "app.py").write_text("from worldgen.repository.paths import REPO_ROOT\nhandler = None\n")
    result = rehearse("dev", broken, db_url, tmp_path)
    assert result.returncode == 1
    assert "CompleteGenerationFunction: handler app.handler does not import from its assets" in result.stdout
    assert "No module named 'worldgen.repository'" in result.stdout


@pytest.mark.parametrize("synthesized", ["dev"], indirect=True)
def test_the_rehearsal_fails_on_an_unset_setting_and_on_a_call_the_role_does_not_allow(
    synthesized: Synthesized, db_url: str, tmp_path: Path
) -> None:
    broken = tmp_path / "cdk.out"
    shutil.copytree(synthesized.outdir, broken)
    (template_path,) = broken.glob("*.template.json")
    template = json.loads(template_path.read_text())
    resources = template["Resources"]
    # the failure recorder loses its database secret; no role may start an execution any more
    del resources["RecordGenerationFailureFunction"]["Properties"]["Environment"]["Variables"][
        "WORLDGEN_DATABASE_SECRET_ARN"
    ]
    for resource in resources.values():
        if resource["Type"] == "AWS::IAM::Policy":
            document = resource["Properties"]["PolicyDocument"]
            document["Statement"] = [s for s in document["Statement"] if s["Action"] != "states:StartExecution"]
    template_path.write_text(json.dumps(template))
    result = rehearse("dev", broken, db_url, tmp_path)
    assert result.returncode == 1
    out = result.stdout
    assert (
        "RecordGenerationFailureFunction reads the setting database_url (WORLDGEN_DATABASE_URL) "
        "that the template does not set"
    ) in out, out[-3000:]
    assert "StartGenerationFunction: its role does not allow states:StartExecution on arn:aws:states:" in out
