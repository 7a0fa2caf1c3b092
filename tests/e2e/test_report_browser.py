"""The HTML world report in a real headless browser (Debian's chromium driven by playwright)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.worlds import generate_sample_world
from worldgen.tools.export import world
from worldgen.tools.export.graph import RELATIONSHIP_TYPES
from worldgen.tools.export.html import html_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on this machine (`make browser` installs Debian's as root)"
)


@pytest.fixture
def exported(settings_env: str, conn: Any) -> dict[str, Any]:
    campaign_id: uuid.UUID = generate_sample_world(conn)
    return world.export_world(conn, campaign_id)


@pytest.fixture
def page(exported: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    report = tmp_path / "report.html"
    report.write_text(html_report(exported, world.committed_schema()))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        tab = browser.new_page()
        tab.console_problems = []  # type: ignore[attr-defined]

        def on_console(message: Any) -> None:
            if message.type in ("error", "warning"):
                tab.console_problems.append(message.text)  # type: ignore[attr-defined]

        def on_page_error(error: Any) -> None:
            tab.console_problems.append(str(error))  # type: ignore[attr-defined]

        tab.on("console", on_console)
        tab.on("pageerror", on_page_error)
        tab.goto(report.as_uri())
        yield tab
        browser.close()


def expected_picture(exported: dict[str, Any]) -> tuple[int, int]:
    """(nodes, edges) counted from the file: the things (PCs and world rows that are no relationship)
    are nodes; each relationship row and each reference between things is an edge."""
    references = world.reference_fields(world.committed_schema())
    things = len(exported["player_characters"]) + sum(
        len(rows) for table, rows in exported["world"].items() if table not in RELATIONSHIP_TYPES
    )
    relationships = sum(len(exported["world"][table]) for table in RELATIONSHIP_TYPES)
    links = sum(
        1
        for table, rows in exported["world"].items()
        if table not in RELATIONSHIP_TYPES
        for row in rows
        for name, target in references[table].items()
        if target != "generations" and row.get(name) is not None
    )
    return things, relationships + links


def test_the_report_loads_without_console_errors_and_draws_things_as_nodes_and_ties_as_edges(page, exported):
    nodes, edges = expected_picture(exported)

    page.wait_for_selector("body[data-layout=done]")
    assert page.locator("#graph circle.node").count() == nodes
    assert page.locator("#graph line.edge").count() == edges
    assert page.locator("#graph line.edge.rel").count() == sum(len(exported["world"][t]) for t in RELATIONSHIP_TYPES)
    assert page.console_problems == []


def test_searching_an_npc_name_finds_it(page, exported):
    npc = exported["world"]["entities"][3]

    page.fill("#search", npc["name"])

    results = page.locator("#search-results a", has_text=npc["name"])
    assert results.count() >= 1
    assert results.first.get_attribute("href") == f"#row/entities/{npc['key']}"
    assert page.console_problems == []


def test_following_a_link_from_a_pc_page_reaches_the_npc(page, exported):
    npc = next(e for e in exported["world"]["entities"] if e["player_character_key"])

    page.click(f"#pcs a[href='#pc/{npc['player_character_key']}']")
    page.click(f"#view a[href='#row/entities/{npc['key']}']")

    assert page.locator("#row-page").text_content() == npc["name"]
    assert page.locator("#row-page").get_attribute("data-id") == f"entities/{npc['key']}"
    assert page.console_problems == []
