"""House rules of the package's layout: no module over 400 lines, and no import cycle among ganlstm modules.

The import graph is read from the source (nothing is imported): every ``import`` and ``from ... import``
statement counts, wherever it stands (module level, inside a function, under ``TYPE_CHECKING``).
``from package import name`` points at ``package.name`` when that is a module, else at the package.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ganlstm"
MAX_LINES = 400


def module_files() -> dict[str, Path]:
    """``{"ganlstm.data.frames": path, ...}``; a package is named by its ``__init__.py``."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the ganlstm modules it imports."""
    modules = module_files()
    graph = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                targets.add(source)
                targets.update(f"{source}.{a.name}" for a in node.names)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_is_over_the_line_limit():
    long = {name: n for name, path in module_files().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by concept): {long}"


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, f"import cycles among ganlstm modules: {found}"


def test_the_graph_sees_function_level_and_relative_imports():
    graph = import_graph()
    assert "ganlstm.rollout" in graph["ganlstm.models.base"]  # a relative, module-level import
    assert "ganlstm.data.frames" in graph["ganlstm.resolution"]  # a function-level import
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_house_map_lists_every_module():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, str(PACKAGE.parent / "benchmarks" / "house_map.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
