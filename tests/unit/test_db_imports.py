"""worldgen.db imports nothing that imports it back (issue 21): validation sits below the saver,
and no module of db/ is on an import cycle, function-level imports included."""

from __future__ import annotations

import ast
from pathlib import Path

import worldgen

PACKAGE = Path(worldgen.__file__).parent


def import_graph() -> dict[str, set[str]]:
    """Module -> the worldgen modules it imports anywhere in its body (top-level or in a function)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("worldgen", *path.relative_to(PACKAGE).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                          for a in node.names}  # fmt: skip
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_no_module_of_db_is_on_an_import_cycle() -> None:
    graph = import_graph()
    cycles = {m: sorted(m2 for m2 in reachable(graph, m) if m in reachable(graph, m2))
              for m in graph if m.startswith("worldgen.db.") and m in reachable(graph, m)}  # fmt: skip
    assert not cycles, cycles


def test_validation_does_not_import_the_saver() -> None:
    assert "worldgen.db.save" not in reachable(import_graph(), "worldgen.db.validation")
