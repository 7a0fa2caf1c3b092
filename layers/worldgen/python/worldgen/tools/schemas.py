"""Writes the committed tool schemas (``make schemas``) from the catalog of a migrated database."""

from __future__ import annotations

from pathlib import Path

from worldgen.phases import ALL_PHASES
from worldgen.repository.paths import REPO_ROOT
from worldgen.schema.spec import TableSpec
from worldgen.schema.tools import generated_name, phase_tool, render

GENERATED_DIR = REPO_ROOT / "layers" / "worldgen" / "python" / "worldgen" / "schema" / "generated"


def write_generated(specs: dict[str, TableSpec], directory: Path = GENERATED_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for phase in ALL_PHASES:  # every profile's phases
        path = directory / generated_name(phase)
        path.write_text(render(phase_tool(phase, specs)))
        written.append(path)
    return written
