"""The HTML report's layout library: d3-force and the three d3 modules it needs, pinned npm packages.

The packages' own tarballs (``npm pack``, byte for byte) are package data beside the report's page
(``report/<name>-<version>.tgz``), so an export needs neither Node nor the network: ``html_report``
reads each tarball, checks it against the integrity npm publishes for that version (the
``dist.integrity`` of the registry's package document, a Subresource Integrity string), and inlines
its minified UMD file with its licence text. ``make vendor-layout`` fetches them with ``npm pack``
(the only time npm is needed); the pins below change only with it. Why d3-force: docs/decisions.md.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path


@dataclass(frozen=True)
class NpmPackage:
    name: str
    version: str
    integrity: str  # npm's dist.integrity of the tarball: "sha512-<base64>"
    script: str  # the minified browser build inside the tarball (UMD: it fills the global `d3`)

    @property
    def tarball(self) -> str:
        return f"{self.name}-{self.version}.tgz"  # the name `npm pack` gives it


# In load order: d3-force's UMD build reads the other three from the global `d3`.
PACKAGES = (
    NpmPackage(
        "d3-dispatch",
        "3.0.2",
        "sha512-sAzH4Y4nsLo8eSqw5jKiZt+LU2wZmL/qS+OkxQGjhwazB/D7TY34R/QK1eshfGr7cZEKymKZ/Haem7m+lu98Sg==",
        "dist/d3-dispatch.min.js",
    ),
    NpmPackage(
        "d3-quadtree",
        "3.0.2",
        "sha512-9Lu9mqJKRbIk0d6mKDjpvPURaPdwHVK5CYbcdd0/4vBgz4ldz/7TIOse3kNERsByGNfld58KEco507AztJWyTQ==",
        "dist/d3-quadtree.min.js",
    ),
    NpmPackage(
        "d3-timer",
        "3.0.2",
        "sha512-1Il1aliroVSErrv5aulRBxAY+7+DnaoLIWGd1C6SsBTWDeobWiP/V69vwb8vT6abR1kKwaNe1196pmaQ1fK90A==",
        "dist/d3-timer.min.js",
    ),
    NpmPackage(
        "d3-force",
        "3.0.1",
        "sha512-kAaaHLFebBYwgi5cYBXAI8vKrQFMCD2MEswj2QuPKKbdU1wYLc8WXtS7O8F/b6POCIe3gJjY6hkDstHi1yMETQ==",
        "dist/d3-force.min.js",
    ),
)


class VendoredPackageError(Exception):
    """A vendored tarball that is missing or is not the pinned one."""


def integrity(data: bytes) -> str:
    """The Subresource Integrity string npm records for a tarball (sha512, base64)."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _report_dir() -> Path:
    return Path(str(resources.files("worldgen.tools.export").joinpath("report")))


def read_tarball(package: NpmPackage) -> bytes:
    path = _report_dir() / package.tarball
    if not path.is_file():
        raise VendoredPackageError(f"{package.tarball} is missing: run `make vendor-layout`")
    data = path.read_bytes()
    if integrity(data) != package.integrity:
        raise VendoredPackageError(f"{package.tarball} is not the pinned {package.name}@{package.version}")
    return data


def package_files(package: NpmPackage) -> tuple[str, str]:
    """(the minified script, the licence text) out of the checked tarball (npm puts both under package/)."""
    with tarfile.open(fileobj=io.BytesIO(read_tarball(package)), mode="r:gz") as archive:

        def text(name: str) -> str:
            member = archive.extractfile(f"package/{name}")
            if member is None:
                raise VendoredPackageError(f"{package.tarball} has no {name}")
            return member.read().decode()

        return text(package.script), text("LICENSE")


def inline_scripts() -> str:
    """The JavaScript to inline in the page: each package's licence as a comment, then its script."""
    parts = []
    for package in PACKAGES:
        script, licence = package_files(package)
        if "</script" in script.lower():  # would end the page's <script> element early
            raise VendoredPackageError(f"{package.tarball}'s script contains </script>")
        parts.append(f"/*! {package.name}@{package.version} (npm), its licence:\n{licence.replace('*/', '* /')}*/\n")
        parts.append(script.strip() + "\n")
    return "".join(parts)


def vendor() -> int:
    """``make vendor-layout``: `npm pack` each pinned package into the report's folder, checked."""
    target = _report_dir()
    with tempfile.TemporaryDirectory() as temporary:
        for package in PACKAGES:
            spec = f"{package.name}@{package.version}"
            try:
                subprocess.run(
                    ["npm", "pack", spec, "--json", "--pack-destination", temporary],
                    check=True,
                    capture_output=True,
                    text=True,
                )
            except FileNotFoundError:
                print("cannot vendor the layout library: npm is not installed", file=sys.stderr)
                return 2
            except subprocess.CalledProcessError as exc:
                last = (exc.stderr.strip().splitlines() or ["no message"])[-1]
                print(f"cannot vendor the layout library: npm pack {spec} failed: {last}", file=sys.stderr)
                return 2
            data = (Path(temporary) / package.tarball).read_bytes()
            if integrity(data) != package.integrity:
                print(f"{spec}: the registry's tarball is not the pinned one", file=sys.stderr)
                return 1
            for old in target.glob(f"{package.name}-*.tgz"):
                old.unlink()
            (target / package.tarball).write_bytes(data)
            print(f"vendored {spec} ({len(data)} bytes) into {target}")
    return 0


def sizes() -> dict[str, int]:
    """Bytes each package adds to the page (script and licence), for the decision record."""
    return {p.name: sum(len(t.encode()) for t in package_files(p)) for p in PACKAGES}


if __name__ == "__main__":
    if sys.argv[1:] == ["--sizes"]:
        print(json.dumps(sizes(), indent=2))
        sys.exit(0)
    sys.exit(vendor())
