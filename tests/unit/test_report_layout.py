"""The report's layout library: the vendored npm tarballs are the pinned ones, and the page inlines
their scripts with their licences (so an export needs neither Node nor the network)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from tests.unit.test_report_graph import small_world
from worldgen.tools.export import layout, world
from worldgen.tools.export.html import html_report


@pytest.mark.parametrize("package", layout.PACKAGES, ids=lambda p: p.name)
def test_each_vendored_tarball_is_the_pinned_version_by_npms_integrity(package: layout.NpmPackage) -> None:
    data = layout.read_tarball(package)
    script, licence = layout.package_files(package)

    assert layout.integrity(data) == package.integrity
    header = re.match(r"// https://d3js.org/([a-z0-9-]+)/ v([0-9.]+) ", script)
    assert header is not None and header.groups() == (package.name, package.version)
    assert "Permission to use, copy, modify, and/or distribute this software" in licence  # ISC


def test_a_tarball_that_is_not_the_pinned_one_is_refused() -> None:
    force = next(p for p in layout.PACKAGES if p.name == "d3-force")
    other = dataclasses.replace(force, integrity=force.integrity.replace("sha512-k", "sha512-X"))
    missing = dataclasses.replace(force, version="0.0.0")

    with pytest.raises(layout.VendoredPackageError, match=re.escape("is not the pinned d3-force@3.0.1")):
        layout.read_tarball(other)
    with pytest.raises(
        layout.VendoredPackageError, match=re.escape("d3-force-0.0.0.tgz is missing: run `make vendor-layout`")
    ):
        layout.read_tarball(missing)


def test_the_report_inlines_every_package_with_its_licence_in_load_order() -> None:
    page = html_report(small_world(), world.committed_schema())

    positions = []
    for package in layout.PACKAGES:
        script, licence = layout.package_files(package)
        assert f"/*! {package.name}@{package.version} (npm), its licence:\n{licence}" in page
        assert script.strip() in page
        positions.append(page.index(script.strip()))
    assert positions == sorted(positions)  # d3-force last: it reads the other three
    assert "<script src" not in page and "https://cdn" not in page


def test_vendoring_without_npm_fails_in_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    monkeypatch.setenv("PATH", "/nonexistent")

    assert layout.vendor() == 2

    assert capsys.readouterr().err == "cannot vendor the layout library: npm is not installed\n"
