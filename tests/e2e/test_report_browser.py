"""The HTML world report in a real headless browser (Debian's chromium driven by playwright)."""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.worlds import generate_sample_world
from worldgen.phases import PHASES
from worldgen.tools.export import world
from worldgen.tools.export.graph import RELATIONSHIP_TYPES, relationship_graph
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
    graph = page.evaluate("({nodes: worldgenGraph.nodes.length, edges: worldgenGraph.edges.length})")
    assert graph == {"nodes": nodes, "edges": edges}
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


def settled(page: Any) -> Any:
    page.wait_for_function("window.worldgenGraph && window.worldgenGraph.settled === true")
    return page


def picture(exported: dict[str, Any]) -> Any:
    return relationship_graph(exported, world.committed_schema())


def test_the_layout_settles_with_every_node_inside_the_frame(page):
    positions = settled(page).evaluate("worldgenGraph.positions()")

    frame = positions["frame"]
    assert frame["width"] > 400 and frame["height"] > 300
    too_close = {
        node: (p["x"], p["y"])
        for node, p in positions["nodes"].items()
        if min(p["x"] - frame["x"], frame["x"] + frame["width"] - p["x"]) <= 5
        or min(p["y"] - frame["y"], frame["y"] + frame["height"] - p["y"]) <= 5
    }
    assert too_close == {}, f"{len(too_close)} node centres within 5 px of the frame {frame}"
    assert page.console_problems == []


def test_every_edge_is_labelled_on_hover_and_in_the_side_panel_of_its_ends(page, exported):
    expected = Counter(
        (end, e.label) for e in picture(exported).edges for end in (e.source, e.target)
    )  # each edge is listed, with its label, on the page of either end
    edges = settled(page).evaluate("worldgenGraph.edges")
    hovers = page.eval_on_selector_all(
        "#graph line.edge", "lines => lines.map(l => l.querySelector('title').textContent)"
    )

    assert all(edge["label"] for edge in edges)
    assert all(f" · {edge['label']} · " in hover for edge, hover in zip(edges, hovers, strict=True))
    listed = page.evaluate(
        """async () => {
          const listed = [];
          for (const node of worldgenGraph.nodes) {
            const changed = new Promise((done) => window.addEventListener("hashchange", done, { once: true }));
            location.hash = "#row/" + node.id;
            await changed;
            for (const item of document.querySelectorAll("#links li"))
              listed.push([node.id, item.querySelector("a.tie, .ref-label").textContent]);
          }
          return listed;
        }"""
    )
    assert Counter(map(tuple, listed)) == expected
    assert page.console_problems == []


def test_a_ties_label_opens_the_relationship_row_with_its_description(page, exported):
    tie = exported["world"]["entity_relationships"][0]
    npc = next(e for e in exported["world"]["entities"] if e["key"] == tie["entity_key"])

    settled(page).click("#pcs a")  # away from home, then to the NPC's page
    page.evaluate(f"location.hash = '#row/entities/{npc['key']}'")
    page.click(f"#links a.tie[href='#row/entity_relationships/{tie['key']}']")

    assert page.locator("#tie-page").get_attribute("data-id") == f"entity_relationships/{tie['key']}"
    assert tie["relationship_type"] in page.locator("#tie-page").text_content()
    assert tie["description"] in page.locator("#view").text_content()
    assert page.console_problems == []


def dimmed_and_shown(page: Any) -> tuple[set[str], set[str]]:
    circles = page.eval_on_selector_all(
        "#graph circle.node",
        "cs => cs.map(c => [c.dataset.id, c.classList.contains('dim') || c.classList.contains('hidden')])",
    )
    return {i for i, faded in circles if faded}, {i for i, faded in circles if not faded}


def test_choosing_each_pc_shows_its_two_hop_neighbourhood_and_fades_the_rest(page, exported):
    graph = picture(exported)
    settled(page)

    for pc in exported["player_characters"]:
        pc_id = f"player_characters/{pc['key']}"
        web = {pc_id, *graph.connected(pc_id, 2)}

        page.select_option("#pc-filter", pc["key"])
        page.locator("#pc-page", has_text=pc["name"]).wait_for()  # routed: this PC is focused
        faded, shown = dimmed_and_shown(page)

        assert shown == web, pc["key"]
        assert faded == set(graph.nodes) - web
        assert page.evaluate(f"worldgenGraph.focusPlayerCharacter({pc['key']!r})") == len(web)
        assert set(page.evaluate("worldgenGraph.shown()")) == web
    assert page.console_problems == []


def test_clicking_a_node_focuses_it_and_the_legend_hides_a_kind(page, exported):
    graph = picture(exported)
    hub = max(graph.nodes, key=lambda n: sum(n in (e.source, e.target) for e in graph.edges))
    settled(page)

    page.locator(f"#graph circle[data-id='{hub}']").dispatch_event("click")
    page.locator(f"#row-page[data-id='{hub}']").wait_for()  # routed: the node is focused
    _, shown = dimmed_and_shown(page)
    assert shown == {hub, *graph.connected(hub, 2)}

    page.locator("#graph").dispatch_event("click")  # the background clears the focus
    page.uncheck("#legend input[data-kind='0']")  # the player characters
    hidden = set(page.eval_on_selector_all("#graph circle.node.hidden", "cs => cs.map(c => c.dataset.id)"))
    assert hidden == {n for n in graph.nodes if n.startswith("player_characters/")}
    assert page.locator("#graph circle.node.dim").count() == 0
    assert page.console_problems == []


def test_the_legend_hides_the_worlds_systems_a_phase_group_at_a_time(page, exported):
    systems = {t for phase in PHASES if phase.id in ("1A", "1B") for t in phase.tables}
    graph = picture(exported)
    settled(page)

    page.uncheck("#legend label.group-name:has-text('Core world systems') input")
    page.uncheck("#legend label.group-name:has-text('Character building systems') input")

    hidden = set(page.eval_on_selector_all("#graph circle.node.hidden", "cs => cs.map(c => c.dataset.id)"))
    assert hidden == {n.id for n in graph.nodes.values() if n.table in systems}
    assert hidden and page.locator("#legend input[data-kind]:not(:checked)").count() == len(
        {n.table for n in graph.nodes.values() if n.table in systems}
    )
    edges = page.evaluate("worldgenGraph.edges")
    lines_hidden = page.eval_on_selector_all("#graph line.edge", "ls => ls.map(l => l.classList.contains('hidden'))")
    assert lines_hidden == [edge["source"] in hidden or edge["target"] in hidden for edge in edges]
    assert page.console_problems == []


def test_searching_a_ties_words_finds_the_relationship(page, exported):
    tie = exported["world"]["entity_relationships"][0]
    words = tie["description"].split()[:4]

    page.fill("#search", " ".join(words))

    found = page.locator(f"#search-ties a.tie[href='#row/entity_relationships/{tie['key']}']")
    found.wait_for()
    assert found.count() == 1 and found.text_content() == tie["relationship_type"]
    assert page.console_problems == []


def test_the_wheel_zooms_in_where_the_pointer_is_and_a_double_click_fits_again(page):
    before = settled(page).evaluate("worldgenGraph.positions()")
    frame = before["frame"]
    width = page.evaluate("document.getElementById('graph').viewBox.baseVal.width")

    page.mouse.move(frame["x"] + frame["width"] / 2, frame["y"] + frame["height"] / 2)
    page.mouse.wheel(0, -600)
    page.wait_for_function("(w) => document.getElementById('graph').viewBox.baseVal.width < w", arg=width)
    zoomed = page.evaluate("worldgenGraph.positions()")
    page.dblclick("#graph", position={"x": 3, "y": 3})
    again = page.evaluate("worldgenGraph.positions()")

    def spread(positions: dict[str, Any]) -> float:
        xs = [p["x"] for p in positions["nodes"].values()]
        return max(xs) - min(xs)

    assert spread(zoomed) > 1.5 * spread(before)
    moved_back = {
        n: (again["nodes"][n]["x"] - p["x"], again["nodes"][n]["y"] - p["y"])
        for n, p in before["nodes"].items()
        if abs(again["nodes"][n]["x"] - p["x"]) > 0.5 or abs(again["nodes"][n]["y"] - p["y"]) > 0.5
    }
    assert moved_back == {}
    assert page.console_problems == []


def test_the_biggest_things_are_always_named_and_any_other_on_hover(page, exported):
    graph = picture(exported)
    degree = Counter(end for e in graph.edges for end in (e.source, e.target))
    settled(page)
    always = page.eval_on_selector_all("#graph text.name.always.shown", "ts => ts.map(t => t.textContent)")
    leaf = min(graph.nodes, key=lambda n: (degree[n], n))
    assert graph.nodes[leaf].label not in always

    page.locator(f"#graph circle[data-id='{leaf}']").dispatch_event("mouseenter")

    shown = page.eval_on_selector_all("#graph text.name.shown", "ts => ts.map(t => t.textContent)")
    assert graph.nodes[leaf].label in shown
    assert {n.label for n in graph.nodes.values() if n.table == "player_characters"} <= set(always)
    most = max(degree.values())
    assert {graph.nodes[n].label for n, d in degree.items() if d == most} <= set(always)
    assert page.console_problems == []
