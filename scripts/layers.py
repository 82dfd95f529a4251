"""Whether Baton's imports keep to its layers (DESIGN.md §1): prints each problem, exits
1 if any.

Two rules, counting imports made inside functions as well as at the top of modules
(only `if TYPE_CHECKING:` blocks are left out, since they never run):
1. No module imports a layer above its own. Floors: core 1; define and telemetry 2;
   workflows and activities 3; runtime 4; cli and web 5. Where a lower layer must
   call up (a Baton object called inside a workflow runs the workflow layer's step),
   the upper layer installs itself below instead (baton/core/steps.py).
2. No import circles between modules, so no function-level import hides one.

`python scripts/layers.py` (run by `make lint`).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOORS = {"core": 1, "define": 2, "telemetry": 2, "workflows": 3, "activities": 3,
          "runtime": 4, "cli": 5, "web": 5}
FOLDERS = ("baton", "workflows", "activities")


def module_name(path: Path) -> str:
    """The import name of a file: workflows/ and activities/ are baton.workflows and
    baton.activities (pyproject's package-dir)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] != "baton":
        parts.insert(0, "baton")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def floor(module: str) -> int | None:
    parts = module.split(".")
    return FLOORS.get(parts[1]) if len(parts) > 2 else None


def _imports(tree: ast.AST) -> Iterator[ast.ImportFrom | ast.Import]:
    """Every import that can run: at the top, in functions, not under TYPE_CHECKING."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (i for child in node.orelse for i in _imports_in(child))
            continue
        yield from _imports_in(node)


def _imports_in(node: ast.AST) -> Iterator[ast.ImportFrom | ast.Import]:
    if isinstance(node, ast.ImportFrom | ast.Import):
        yield node
    else:
        yield from _imports(node)


def import_graph() -> dict[str, dict[str, int]]:
    """For each Baton module, the Baton modules it imports, with the line of the first."""
    files = {module_name(p): p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py")}

    def target(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {}
    for module, path in files.items():
        edges = graph.setdefault(module, {})
        for node in _imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif node.module and node.level == 0:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                found = target(name)
                # The package itself re-exports the public API; importing it is no edge.
                if found and found not in (module, "baton") and name.startswith("baton"):
                    edges.setdefault(found, node.lineno)
    return graph


def upward_imports(graph: dict[str, dict[str, int]]) -> list[str]:
    found = []
    for module, edges in sorted(graph.items()):
        own = floor(module)
        for imported, line in sorted(edges.items()):
            above = floor(imported)
            if own is not None and above is not None and above > own:
                found.append(f"{module}:{line} imports {imported}, a layer above")
    return found


def circles(graph: dict[str, dict[str, int]]) -> list[str]:
    """Each strongly connected group of modules, with the imports inside it (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in graph.get(module, {}):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while (member := stack.pop()) != module:
                group.append(member)
            groups.append([module, *group])

    sys.setrecursionlimit(10_000)
    for module in sorted(graph):
        if module not in index:
            visit(module)
    found = []
    for group in groups:
        if len(group) > 1:
            inside = [f"{a}:{line} -> {b}" for a in sorted(group)
                      for b, line in sorted(graph[a].items()) if b in group]
            found.append("import circle: " + "; ".join(inside))
    return found


if __name__ == "__main__":
    graph = import_graph()
    problems = [*upward_imports(graph), *circles(graph)]
    print("\n".join(problems) or
          f"{len(graph)} modules: every import goes down a layer or stays on its own, "
          "and none is part of a circle")
    sys.exit(1 if problems else 0)
