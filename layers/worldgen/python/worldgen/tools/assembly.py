"""Read a synthesized cloud assembly (``cdk.out``): what each Lambda function would run with.

Used by the deploy rehearsal and the tests that import the handlers from the packaged assets,
never from the repository checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Lambda's own size limit for a function's code and layers, unzipped.
LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024


@dataclass(frozen=True)
class PackagedFunction:
    logical_id: str
    handler: str
    code_dir: Path
    layer_dirs: tuple[Path, ...]
    environment: dict[str, Any] = field(default_factory=dict)
    timeout_seconds: int = 3
    memory_mb: int = 128

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def attribute(self) -> str:
        return self.handler.rsplit(".", 1)[1]

    def unzipped_bytes(self) -> int:
        return sum(_tree_size(path) for path in (self.code_dir, *self.layer_dirs))


def _tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def template_path(outdir: Path) -> Path:
    templates = sorted(outdir.glob("*.template.json"))
    if len(templates) != 1:
        raise FileNotFoundError(f"{outdir}: expected one stack template, found {[t.name for t in templates]}")
    return templates[0]


def load_template(outdir: Path) -> dict[str, Any]:
    template: dict[str, Any] = json.loads(template_path(outdir).read_text())
    return template


def asset_dir(outdir: Path, s3_location: dict[str, Any]) -> Path:
    """The asset folder of a ``{S3Bucket, S3Key: <hash>.zip}`` location (what cdk deploy zips and uploads)."""
    key = s3_location["S3Key"]
    if not isinstance(key, str) or not key.endswith(".zip"):
        raise ValueError(f"not a file asset location: {s3_location}")
    folder = outdir / f"asset.{key.removesuffix('.zip')}"
    if not folder.is_dir():
        raise FileNotFoundError(f"asset {folder} is missing from the cloud assembly")
    return folder


def packaged_functions(outdir: Path) -> dict[str, PackagedFunction]:
    """Every ``AWS::Lambda::Function`` of the template with its code and layer asset folders."""
    resources = load_template(outdir)["Resources"]
    layers = {
        logical_id: asset_dir(outdir, resource["Properties"]["Content"])
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Lambda::LayerVersion"
    }
    found = {}
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        props = resource["Properties"]
        layer_ids = [ref["Ref"] for ref in props.get("Layers", [])]
        found[logical_id] = PackagedFunction(
            logical_id=logical_id,
            handler=props["Handler"],
            code_dir=asset_dir(outdir, props["Code"]),
            layer_dirs=tuple(layers[layer_id] for layer_id in layer_ids),
            environment=dict(props.get("Environment", {}).get("Variables", {})),
            timeout_seconds=int(props.get("Timeout", 3)),
            memory_mb=int(props.get("MemorySize", 128)),
        )
    return found


def third_party_path() -> str:
    """This interpreter's site-packages: the third-party packages (the dependency layer is built for
    arm64, so its native wheels cannot load here). Loaded with ``-S``: no ``.pth`` file runs, so the
    editable install of the repository's ``worldgen`` stays invisible."""
    return sysconfig.get_paths()["purelib"]


@contextmanager
def lambda_layout(function: PackagedFunction) -> Iterator[tuple[Path, Path]]:
    """A temporary ``(task, opt)`` pair laid out as Lambda does: ``/var/task`` holds the code, ``/opt``
    the layers merged in their order (a later layer's file wins, as on Lambda)."""
    with tempfile.TemporaryDirectory(prefix=f"lambda-{function.logical_id}-") as root:
        task, opt = Path(root) / "task", Path(root) / "opt"
        shutil.copytree(function.code_dir, task)
        opt.mkdir()
        for layer in function.layer_dirs:
            shutil.copytree(layer, opt, dirs_exist_ok=True)
        yield task, opt


def can_mount_opt() -> bool:
    """Whether ``unshare -m`` can give a child process a private ``/opt`` (root on Linux)."""
    if not shutil.which("unshare") or not sys.platform.startswith("linux"):
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount --make-rprivate / && mount -t tmpfs none /opt"],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


def isolated_command(task: Path, opt: Path, code: str, *, mount_opt: bool) -> list[str]:
    """Run ``code`` with only the function's assets importable: ``python -I -S``, cwd outside the
    repository, ``sys.path`` = task, ``/opt/python``, third-party packages. With ``mount_opt`` the layers
    are bind-mounted on the real ``/opt`` in a private mount namespace."""
    opt_python = "/opt/python" if mount_opt else str(opt / "python")
    # With -I -S, sys.path holds only the standard library: no cwd, no PYTHONPATH, no site-packages.
    prelude = f"import sys; sys.path[:0] = [{str(task)!r}, {opt_python!r}]; sys.path.append({third_party_path()!r})\n"
    python = [sys.executable, "-I", "-S", "-c", prelude + code]
    if not mount_opt:
        return python
    script = f"mount --make-rprivate / && mount --bind {_quote(str(opt))} /opt && exec " + " ".join(
        _quote(part) for part in python
    )
    return ["unshare", "-m", "sh", "-c", script]


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def clean_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A process environment with nothing of the developer's: PATH, HOME, a temp dir, and ``extra``."""
    base = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TMPDIR") if name in os.environ}
    return {**base, **(extra or {})}
