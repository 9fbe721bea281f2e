"""Every import statement of every module under ``src/forethought``, read from the source: at the top
of a module, inside a function (a lazy import), under ``if TYPE_CHECKING:``. Nothing is imported."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "forethought"


@dataclass(frozen=True, slots=True)
class Import:
    """``module`` imports ``target`` (absolute; a forethought target is resolved to its module)."""

    module: str
    target: str
    line: int
    lazy: bool  # not a statement at the top of the module (in a function, a class or an if block)

    def where(self) -> str:
        return f"{self.module}:{self.line}{' (lazy)' if self.lazy else ''} imports {self.target}"


@cache
def modules() -> dict[str, Path]:
    """Dotted name → source file of every module of the package (``__init__`` named by its package)."""
    found: dict[str, Path] = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _base(module: str, level: int, is_package: bool) -> list[str]:
    parts = module.split(".") if is_package else module.split(".")[:-1]
    return parts[: len(parts) - (level - 1)]


def _targets(module: str, node: ast.Import | ast.ImportFrom, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    source = node.module or ""
    if node.level:
        source = ".".join([*_base(module, node.level, is_package), *([source] if source else [])])
    known = modules()
    return [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names]


@cache
def imports_of(module: str) -> tuple[Import, ...]:
    """Every import in ``module``'s source, in order."""
    path = modules()[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    top = {id(node) for node in tree.body}
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found += [Import(module, target, node.lineno, id(node) not in top)
                      for target in _targets(module, node, is_package)]
    return tuple(sorted(set(found), key=lambda i: (i.line, i.target)))


def internal_edges() -> dict[str, set[str]]:
    """Module → the forethought modules it imports (parents of a dotted target that is not a module
    are tried, so ``import forethought.ops.topics.X`` counts as ``forethought.ops.topics``)."""
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name in known:
        for imp in imports_of(name):
            target = imp.target
            while target and target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in known and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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
            visit(node)
    return found
