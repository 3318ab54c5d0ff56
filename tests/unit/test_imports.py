"""No import cycles in src/: neither between modules (counting imports inside functions,
which only hide a cycle until the function runs) nor between packages (jobs, engine,
executors, catalog, ...), so each layer can be read, tested and replaced on its own."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "mediamill").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every mediamill module ``path`` imports, wherever the import stands (type-checking
    blocks aside: they never run)."""
    names: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            names.update(alias.name for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.module:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)

    Visitor().visit(ast.parse(path.read_text()))
    return names & known


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def _graph() -> dict[str, set[str]]:
    """Module -> the modules it imports. The root package is left out as a target: every
    import of a submodule runs it first anyway, and what it re-exports (``import mediamill``
    gives the operations) is for users, not for the modules below it."""
    modules = _modules()
    known = set(modules) - {"mediamill"}
    return {name: _imports(path, known) - {name} for name, path in modules.items()}


def test_no_module_imports_itself_through_others() -> None:
    assert _cycles(_graph()) == []


def test_no_two_packages_import_each_other() -> None:
    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    packages: dict[str, set[str]] = {}
    for module, deps in _graph().items():
        packages.setdefault(package(module), set()).update(
            package(d) for d in deps if package(d) != package(module)
        )
    assert _cycles(packages) == []


def test_the_checker_sees_a_cycle_hidden_in_a_function() -> None:
    """The check itself: a cycle made only by an import inside a function is found."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [{"a", "b", "c"}]
