"""The layout of the `worldgen` package: no import cycle and no oversized file (issue 21, item 4).

The import graph is read from the source with `ast`, every import statement counted wherever it
stands (module level or inside a function: a deferred import still ties the two modules), except
those under ``if TYPE_CHECKING:``, which never run. A cycle means two modules cannot be understood,
tested or moved one without the other; the usual mend is a third module below both.
"""

from __future__ import annotations

import ast
from pathlib import Path

import worldgen

PACKAGE = Path(worldgen.__file__).parent
MAX_LINES = 600


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of the package that ``name`` imports at run time."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in _runtime_imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            targets.add(submodule if submodule in known else base)
    return {target for target in targets if target in known and target != name}


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(found)


def test_the_graph_sees_function_level_imports():
    graph = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert cycles(graph) == [["a", "b"]]
    source = "import os\ndef f():\n    from worldgen import errors\nif TYPE_CHECKING:\n    import worldgen.phases\n"
    tree = ast.parse(source)
    assert [type(node).__name__ for node in _runtime_imports(tree)] == ["Import", "ImportFrom"]


def test_no_import_cycle_in_worldgen():
    graph = import_graph()
    assert "worldgen.phases" in graph and graph["worldgen.db.save"], "the graph reads the package"
    found = cycles(graph)
    described = [
        " <-> ".join(component)
        + "\n    "
        + "; ".join(f"{a} -> {b}" for a in component for b in sorted(graph[a]) if b in component)
        for component in found
    ]
    assert not found, "import cycles:\n" + "\n".join(described)


def folder_arrows(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(a, b) for every folder of the package (``db``, ``local``, ...) with a module importing one of b's."""

    def folder(name: str) -> str | None:
        parts = name.split(".")
        return parts[1] if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir() else None

    arrows = {(folder(a), folder(b)) for a, targets in graph.items() for b in targets}
    return {(a, b) for a, b in arrows if a and b and a != b}


def test_no_two_folders_of_worldgen_import_each_other():
    arrows = folder_arrows(import_graph())
    assert ("tools", "local") in arrows and ("local", "repository") in arrows, "the arrows are read"
    both_ways = sorted((a, b) for a, b in arrows if a < b and (b, a) in arrows)
    assert not both_ways, f"folders that import each other: {both_ways}"


def test_no_file_in_worldgen_over_600_lines():
    long = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"files over {MAX_LINES} lines (split them along their seams): {long}"
