"""Architecture rule 1: the core imports the standard library, River, MessagePack (the state codec's
packer) and the contracts only, and never reads the wall clock."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "src" / "forethought" / "core"
WALL_CLOCK = {("time", "time"), ("time", "monotonic"), ("datetime", "now"), ("datetime", "utcnow"), ("date", "today")}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_the_core_imports_only_the_standard_library_river_and_the_contracts() -> None:
    for path in sorted(CORE.rglob("*.py")):
        for name in imports(path):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in ("river", "msgpack"):
                continue
            assert name.startswith(("forethought.core", "forethought.contracts")), f"{path.name} imports {name}"


def test_the_core_never_reads_the_wall_clock() -> None:
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
                assert (name, node.func.attr) not in WALL_CLOCK, f"{path.name}:{node.lineno} reads the clock"
