"""The demo world's report: export time per format, report size, first paint, layout settling, a screenshot.

    make report-demo

1. Generates the sample campaign's world (offline procedural model) in the local database, and a
   generous one (procedural scale 2.2, about 470 rows) for the size (< 1 MB) and settling (< 2 s) targets.
2. Exports each in every format and prints the seconds (database read included) and the sizes
   (the HTML report for the game master and for the players; the Foundry module: module.json and its
   compiled pack).
3. Opens each report in headless chromium and prints its first paint, its nodes and edges, the time
   the layout took to settle (``worldgenGraph.settleMs``) and the nearest node centre to the frame;
   writes the demo's screenshot with its first PC's web focused, ``docs/report-screenshot.png``
   (the README shows it). Numbers are printed; nothing is asserted.
"""

from __future__ import annotations

import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from worldgen import state
from worldgen.db.connection import connect
from worldgen.local.campaigns import SAMPLE_CAMPAIGN, insert_campaign, read_campaign_file
from worldgen.local.database import migrated_local_database
from worldgen.phases import PHASES
from worldgen.pipeline import run_phase
from worldgen.repository.paths import REPO_ROOT
from worldgen.tools.export import world
from worldgen.tools.export.audience import for_audience
from worldgen.tools.export.commands import FOUNDRY_CLI_DIR
from worldgen.tools.export.foundry import FoundryExportError, write_module
from worldgen.tools.export.html import html_report
from worldgen.tools.export.markdown import markdown_vault

OUT = REPO_ROOT / ".worldgen" / "report-demo"
SCREENSHOT = REPO_ROOT / "docs" / "report-screenshot.png"


def generate(conn: Any, scale: float) -> uuid.UUID:
    campaign = insert_campaign(conn, read_campaign_file(SAMPLE_CAMPAIGN))
    generation = state.create_generation(conn, campaign, provider="procedural", options={"scale": scale})
    for phase in PHASES:
        run_phase(conn, generation, phase.id)
    conn.execute("UPDATE generations SET status = 'succeeded', finished_at = now() WHERE id = %s", (generation,))
    return campaign


def export_all(conn: Any, campaign_id: uuid.UUID, label: str) -> Path:
    schema = world.committed_schema()
    timings: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for name in ("json", "markdown", "html", "html-players", "foundry"):
        started = time.perf_counter()
        document = world.export_world(conn, campaign_id)
        if name == "json":
            text = world.dumps(document)
            sizes[name] = len(text.encode())
        elif name == "markdown":
            notes = markdown_vault(document, schema)
            sizes[name] = sum(len(t.encode()) for t in notes.values())
        elif name == "foundry":  # module.json and the LevelDB pack Foundry's CLI compiles (Node runs it)
            module = OUT / f"{label}-foundry"
            try:
                write_module(document, schema, module, FOUNDRY_CLI_DIR)
            except FoundryExportError as exc:
                print(f"  export --format foundry skipped: {exc}")
                continue
            sizes[name] = sum(p.stat().st_size for p in module.rglob("*") if p.is_file())
        elif name == "html":
            text = html_report(document, schema)
            sizes[name] = len(text.encode())
            path = OUT / f"{label}.html"
            path.write_text(text)
        else:
            players = for_audience(document, schema, "players")
            sizes[name] = len(html_report(players, schema, audience="players").encode())
        timings[name] = time.perf_counter() - started
    rows = len(document["player_characters"]) + sum(len(r) for r in document["world"].values())
    print(f"{label}: {rows} rows")
    for name in timings:
        print(f"  export --format {name:<12} {timings[name]:.3f} s  {sizes[name] / 1024:8.0f} KiB")
    return path


def browse(report: Path, screenshot: bool) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        print("no chromium: `make browser` installs it; no first paint, settling or screenshot measured")
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(report.as_uri())
        paint = page.evaluate(
            """() => new Promise(done => new PerformanceObserver((list, observer) => {
                 const entries = performance.getEntriesByType("paint");
                 if (entries.some(e => e.name === "first-contentful-paint")) {
                   observer.disconnect(); done(entries.map(e => [e.name, e.startTime]));
                 }
               }).observe({type: "paint", buffered: true}))"""
        )
        page.wait_for_function("window.worldgenGraph && worldgenGraph.settled", timeout=60_000)
        graph = page.evaluate(
            """() => {
              const p = worldgenGraph.positions(), f = p.frame;
              const margin = Math.min(...Object.values(p.nodes).map(n =>
                Math.min(n.x - f.x, f.x + f.width - n.x, n.y - f.y, f.y + f.height - n.y)));
              return {nodes: worldgenGraph.nodes.length, edges: worldgenGraph.edges.length,
                      settle: worldgenGraph.settleMs, margin};
            }"""
        )
        if screenshot:
            page.click("#pcs a")
            page.screenshot(path=str(SCREENSHOT))
        browser.close()
    print(f"{report.name}: {report.stat().st_size / 1024:.0f} KiB, {graph['nodes']} nodes, {graph['edges']} edges")
    for name, started in paint:
        print(f"  {name}: {started:.0f} ms")
    print(f"  layout settled in {graph['settle']} ms; nearest node centre to the frame: {graph['margin']:.0f} px")
    if screenshot:
        print(f"  wrote {SCREENSHOT.relative_to(REPO_ROOT)}")


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with connect(migrated_local_database()) as conn:
        demo = export_all(conn, generate(conn, 1.0), "demo")
        generous = export_all(conn, generate(conn, 2.2), "scale-2.2")
    browse(demo, screenshot=True)
    browse(generous, screenshot=False)
    print(f"reports under {OUT.relative_to(REPO_ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
