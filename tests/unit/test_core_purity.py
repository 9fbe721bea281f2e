"""Architecture rule 1: the core imports the standard library, River and the contracts only, does no
I/O, and reads neither the wall clock nor any other source of chance. Time comes in as an argument.

Every import counts, lazy ones (inside a function) and ``TYPE_CHECKING`` ones included.

Allowed: the standard library, ``river``, ``msgpack`` and ``forethought.core``/``forethought.contracts``.
Anything else third-party fails (that covers ``faust``, ``mode``, ``aiokafka``, ``prometheus_client``,
``structlog``, ``pydantic_settings``, and ``orjson``: the core's encodings are the standard library's
``struct``/``json``/``base64``, so state and checkpoint bytes do not depend on a C extension's
version, and wire JSON is the adapters' business). The one exception is the customer state's
changelog value (``core/state_codec``): MessagePack, a standardised format whose bytes for the
codec's types (minimal ints, float64, str, bin, arrays, maps) do not change with the library's
version, packed in C; the pure-Python byte codec it replaced measured twice as slow as JSON.
:data:`DENIED` names them anyway, so that the failure says why.

Denied although they are standard library (the allow-list alone would let them through):

* concurrency and event loops (``asyncio``, ``threading``, ``concurrent``, ``multiprocessing``...):
  the core is driven one call at a time by its adapter, which owns the loop;
* I/O of any kind (``socket``, ``ssl``, ``http``, ``urllib``, ``subprocess``, ``os``, ``pathlib``,
  ``shutil``, ``tempfile``, ``sqlite3``, ``logging``): the core returns data and the adapters do the
  I/O, metrics and logs;
* ``time``: the core never reads a clock, not even a monotonic one (``datetime`` stays allowed for
  arithmetic on given times; its ``now``/``today`` calls are refused below);
* ``pickle``/``marshal``/``shelve`` and dynamic imports (``importlib``, ``__import__``): nothing read
  from a changelog or a checkpoint is ever executed;
* ``secrets``: randomness comes from seeded ``random.Random`` instances, so replay is repeatable.
"""

from __future__ import annotations

import ast
import sys

from imports_kit import modules

CORE = "forethought.core"
ALLOWED_INTERNAL = ("forethought.core", "forethought.contracts")
# river: the models; msgpack: the customer state's changelog value (core/state_codec; a standardised
# format, faster than the pure-Python byte codec it replaced, which measured 2x slower than JSON)
ALLOWED_THIRD_PARTY = ("river", "msgpack")
DENIED = {
    # third-party (already outside the allow-list; named for the message)
    "faust", "mode", "aiokafka", "kafka", "confluent_kafka", "prometheus_client", "structlog", "orjson",
    "pydantic_settings", "yaml", "aiohttp", "typer", "rich",
    # standard library: concurrency
    "asyncio", "threading", "_thread", "concurrent", "multiprocessing", "selectors", "signal", "sched",
    # standard library: I/O
    "socket", "ssl", "http", "urllib", "smtplib", "email", "subprocess", "os", "pathlib", "shutil", "tempfile",
    "glob", "io", "sqlite3", "logging",
    # standard library: clocks, chance, code execution
    "time", "secrets", "pickle", "marshal", "shelve", "importlib", "ctypes",
}
# (module or class, attribute) calls that read the clock or an unseeded source of chance
NONDETERMINISTIC = {
    ("time", "time"), ("time", "monotonic"), ("time", "perf_counter"), ("time", "time_ns"),
    ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today"),
    ("uuid", "uuid1"), ("uuid", "uuid4"), ("os", "urandom"),
    *(("random", name) for name in ("random", "randint", "randrange", "choice", "choices", "shuffle", "sample",
                                    "uniform", "gauss", "getrandbits", "seed")),
}


def core_modules() -> dict[str, ast.Module]:
    return {name: ast.parse(path.read_text()) for name, path in modules().items()
            if name == CORE or name.startswith(CORE + ".")}


def imported_names(tree: ast.Module) -> set[tuple[int, str, int]]:
    """(line, module, level) of every import statement, at any depth; plus ``__import__`` calls."""
    found: set[tuple[int, str, int]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {(node.lineno, alias.name, 0) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add((node.lineno, node.module or "", node.level))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "__import__":
            found.add((node.lineno, "importlib", 0))
    return found


def test_the_core_imports_only_the_standard_library_river_and_the_contracts() -> None:
    wrong = []
    for name, tree in core_modules().items():
        for line, module, level in imported_names(tree):
            top = module.split(".")[0]
            if level or top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY:
                continue
            if module.startswith(ALLOWED_INTERNAL):
                continue
            wrong.append(f"{name}:{line} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_the_core_imports_nothing_denied_not_even_lazily() -> None:
    wrong = [f"{name}:{line} imports {module}" for name, tree in core_modules().items()
             for line, module, level in imported_names(tree) if not level and module.split(".")[0] in DENIED]
    assert not wrong, "\n".join(wrong)


def test_the_core_never_reads_the_wall_clock_or_chance() -> None:
    wrong = []
    for name, tree in core_modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                owner_name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
                if (owner_name, node.func.attr) in NONDETERMINISTIC:
                    wrong.append(f"{name}:{node.lineno} calls {owner_name}.{node.func.attr}()")
    assert not wrong, "\n".join(wrong)


def test_the_checks_catch_what_they_are_meant_to() -> None:
    """A lazy ``import asyncio`` inside a function, ``from socket import ...`` and ``time.time()`` fail."""
    tree = ast.parse("def f():\n    import asyncio\n    from socket import socket\n    return time.time()\n")
    assert {m for _, m, _ in imported_names(tree)} & DENIED == {"asyncio", "socket"}
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call))
    assert isinstance(call.func, ast.Attribute) and ("time", call.func.attr) in NONDETERMINISTIC
