"""The README a newcomer reads in five minutes links every docs/ page, and no page names a file,
a module or a link target that is not there (a layout statement goes stale the day a file moves)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "worldgen" / "python"
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
MODULE = re.compile(r"`(worldgen(?:\.\w+)+)`")
SOURCE = re.compile(r"`(?:layers/worldgen/python/)?(worldgen/[\w/]+\.py)`")


def test_the_readme_stays_under_200_lines() -> None:
    assert len(README.read_text().splitlines()) < 200


def test_the_readme_links_every_docs_page() -> None:
    linked = {target for target in LINK.findall(README.read_text())}
    missing = [f"docs/{page.name}" for page in DOCS if f"docs/{page.name}" not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    targets = [t for t in LINK.findall(page.read_text()) if "://" not in t and not t.startswith("mailto:")]
    broken = [t for t in targets if not (page.parent / t).exists()]
    assert not broken, f"{page.name} links to missing files: {broken}"


def _source(parts: list[str]) -> Path | None:
    path = PACKAGE.joinpath(*parts)
    for source in (path.with_suffix(".py"), path / "__init__.py"):
        if source.is_file():
            return source
    return None


def _module_exists(name: str) -> bool:
    """``worldgen.a.b`` is a module or package, or a name defined in one (``worldgen.a.B``)."""
    *module, last = name.split(".")
    if _source([*module, last]):
        return True
    source = _source(module)
    defined = re.compile(rf"^(?:def |class |async def )?{re.escape(last)}\b", re.MULTILINE)
    return bool(source and defined.search(source.read_text()))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_module_and_source_file_a_page_names_exists(page: Path) -> None:
    text = page.read_text()
    missing = [m for m in MODULE.findall(text) if not _module_exists(m)]
    missing += [f for f in SOURCE.findall(text) if not (PACKAGE / f).is_file()]
    assert not missing, f"{page.name} names what is not there: {missing}"
