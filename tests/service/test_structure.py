"""The service package's shape: one concern per module, no import cycle, no module over 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[2] / "service"
MAX_LINES = 400


def _imports() -> dict[str, set[str]]:
    """{module: service modules it imports (at any depth in the file)}."""
    graph = {}
    for path in SERVICE.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    names.add(node.module.split(".")[0])
                else:
                    names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fusetrain.service."):
                names.add(node.module.split(".")[2])
        graph[path.stem] = {n for n in names if (SERVICE / f"{n}.py").exists()}
    return graph


def _cycle(graph: dict[str, set[str]]):
    """One import cycle as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle_in_service():
    graph = _imports()
    assert graph["specs"] and graph["dataprep"]            # the parser sees relative imports
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_service_module_over_400_lines():
    sizes = {p.name: len(p.read_text().splitlines()) for p in SERVICE.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_each_concern_has_its_module():
    for name in ("admission", "datasets", "watch", "predict", "recorder", "jobs"):
        text = (SERVICE / f"{name}.py").read_text()
        assert text.startswith('"""'), f"{name}.py opens with a docstring"


def test_job_logic_imports_no_grpc():
    for name in ("admission", "datasets", "watch", "predict", "recorder", "jobs", "specs", "grids"):
        tree = ast.parse((SERVICE / f"{name}.py").read_text())
        modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        modules |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not any(m == "grpc" or m.startswith("grpc.") for m in modules), name
