"""No import cycles among the modules of `translators/` and `resources/` (issue 11).

Every import a module can run counts: those at module level (also inside a module-level
`if`, `try`, `with` or class body) and the lazy ones inside functions. Only imports under
`if TYPE_CHECKING:` are left out, since they never run. A lazy import is still how a module
keeps a costly dependency (Dagster, a driver) out of `workflows check` and out of import
time, and that stays allowed; but a lazy import that closes a loop is a cycle all the
same (the ones issue 11 names were all lazy): the two modules cannot be understood, tested
or moved apart, and the import only works because of when it runs. Such a loop is broken by
moving what both need into a third module that both import.

`from pkg import name` is an edge to `pkg`, and also to `pkg.name` when that is a module.
A package's `__init__` is not an implicit edge of its submodules (Python puts the package in
`sys.modules` before its `__init__` runs); only written imports count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("translators", "resources")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _running_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import in `body`, at any depth, except those under `if TYPE_CHECKING:`."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _running_imports(node.orelse)
            continue
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                yield from _running_imports([child])
            elif isinstance(child, ast.excepthandler | ast.match_case):
                yield from _running_imports(child.body)


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            # A relative import: `.` is the module's own package.
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, *([base] if base else [])])
        yield base
        for alias in node.names:
            yield f"{base}.{alias.name}"


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in _running_imports(tree.body):
            edges.update(t for t in _targets(module, is_package, node) if t in modules)
        edges.discard(module)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component: list[str] = []
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
            visit(node)
    return sorted(found)


def _describe(component: list[str], graph: dict[str, set[str]]) -> str:
    members = set(component)
    edges = [
        f"    {source} -> {target}"
        for source in component
        for target in sorted(graph[source] & members)
    ]
    return "\n".join([", ".join(component), *edges])


def test_the_cycle_finder_sees_a_cycle_and_its_edges() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert "    c -> a" in _describe(["a", "b", "c"], graph)


def test_running_imports_count_lazy_ones_but_not_type_checking() -> None:
    tree = ast.parse(
        "import a\n"
        "if TYPE_CHECKING:\n    import b\nelse:\n    import h\n"
        "def f():\n    import c\n    if x:\n        import i\n"
        "try:\n    import d\nexcept ImportError:\n    import e\n"
        "class K:\n    def m(self):\n        from g import j\n"
    )
    names = {
        node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
        for node in _running_imports(tree.body)
    }
    assert names == {"a", "h", "c", "i", "d", "e", "g"}


def test_the_graph_knows_the_packages() -> None:
    graph = import_graph()
    assert "translators.cli" in graph and "resources.service" in graph
    assert "translators.steps.registry" in graph
    assert "translators.naming" in graph["translators.loader"] | graph["translators.checks"]


def test_no_import_cycles() -> None:
    graph = import_graph()
    found = cycles(graph)
    report = "\n".join(_describe(component, graph) for component in found)
    assert not found, f"import cycles (each with its edges):\n{report}"
