"""The package's layers (docs/runtime/layers.md): no import cycle, and no arrow against the layers.

Every import counts, wherever it is written: at the top of a module, inside a function (a lazy import
only hides a cycle until the function runs) and under ``if TYPE_CHECKING:`` (a type is an arrow too).
The sources are read, not imported, so a new module is checked without anyone listing it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from imports_kit import Import, cycles, imports_of, internal_edges, modules

CONTRACTS, CORE, OPS = "forethought.contracts", "forethought.core", "forethought.ops"
APPS = ("forethought.cli", "forethought.cli_send", "forethought.cli_kafka", "forethought.cli_explain", "forethought.demo", "forethought.testing",
        "forethought.testing_smtp", "forethought.closed_loop", "forethought.cli_simulate")

# Layer → the forethought packages or modules its modules may import (their own layer always).
# Reading down the table is reading up the stack: contracts <- core <- ops <- the adapters <- the apps.
ALLOWED: dict[str, tuple[str, ...]] = {
    "forethought": (),  # the package's __init__: a version string
    CONTRACTS: (),
    CORE: (CONTRACTS,),
    OPS: (CONTRACTS, CORE),
    "forethought.replay": (CONTRACTS, CORE),  # a backtest needs no broker: not even ops
    # the SDK: no worker settings, no CLI; what it imports of ops is packaged in forethought-client (clients/python)
    "forethought.client": (CONTRACTS, "forethought.ops.compression", "forethought.ops.kafka_security"),
    "forethought.stream": (CONTRACTS, CORE, OPS),
    "forethought.senders": (CONTRACTS, OPS),
    "forethought.simulate": (CONTRACTS, OPS),
    "forethought.devkafka": ("forethought.ops.process",),  # dev tooling; the runtime never imports it
    **{app: ("forethought",) for app in APPS},  # the entry points may use everything
}
# Inside the core, the policy decides on state, detections and facts: only the driver sits above it.
POLICY = "forethought.core.policy"
# the engine and its driver (the detectors reach the playbooks only through what the engine hands their hooks;
# the policy compiles playbooks against the registry's vocabulary, so the registry sits below it)
ABOVE_POLICY = ("forethought.core.engine", "forethought.core.runtime", POLICY)
# Third-party packages a layer never imports, directly or lazily.
KAFKA_CLIENTS = ("aiokafka", "faust", "mode", "kafka", "confluent_kafka")
DENIED: dict[str, tuple[str, ...]] = {
    CONTRACTS: (*KAFKA_CLIENTS, "prometheus_client", "structlog", "typer", "rich"),
    "forethought.replay": KAFKA_CLIENTS,
}


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer_of(module: str) -> str:
    """The longest declared layer that contains ``module``."""
    matches = [layer for layer in ALLOWED if within(module, layer)]
    return max(matches, key=len)


def arrows_against_the_layers() -> list[str]:
    wrong = []
    for module in modules():
        layer = layer_of(module)
        for imp in imports_of(module):
            if not within(imp.target, "forethought") or within(imp.target, layer):
                continue
            if not any(within(imp.target, allowed) for allowed in ALLOWED[layer]):
                wrong.append(f"{imp.where()}  [{layer} may import {ALLOWED[layer] or 'nothing else'}]")
    return wrong


def test_every_module_belongs_to_a_declared_layer() -> None:
    undeclared = [m for m in modules() if layer_of(m) == "forethought" and m != "forethought"]
    assert not undeclared, f"declare the layer of {undeclared} in ALLOWED (and docs/runtime/layers.md)"


def test_there_is_no_import_cycle_not_even_through_a_lazy_import() -> None:
    graph = internal_edges()
    found = cycles(graph)
    closing = [imp.where() for group in found for m in group for imp in imports_of(m)
               if imp.target in group and imp.target != m]
    assert not found, "import cycles:\n" + "\n".join(closing)


def test_no_module_imports_against_the_layers() -> None:
    assert not (wrong := arrows_against_the_layers()), "\n".join(wrong)


def test_only_the_engine_sits_above_the_policy_inside_the_core() -> None:
    wrong = [imp.where() for m in modules() if within(m, CORE) and not any(within(m, a) for a in ABOVE_POLICY)
             for imp in imports_of(m) if within(imp.target, POLICY)]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("layer", sorted(DENIED))
def test_a_layer_never_imports_what_it_must_run_without(layer: str) -> None:
    wrong = [imp.where() for m in modules() if within(m, layer) for imp in imports_of(m)
             if any(within(imp.target, denied) for denied in DENIED[layer])]
    assert not wrong, "\n".join(wrong)


def test_replay_runs_without_loading_a_kafka_client() -> None:
    """What a user notices: ``forethought replay``'s modules load (and so run) with no Kafka client
    imported, transitively, so a backtest needs neither a broker nor its client's start-up cost."""
    probe = ("import sys, forethought.replay.command, forethought.replay.runner, forethought.replay.evaluate;"
             f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(KAFKA_CLIENTS)!r}))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_the_rules_catch_what_they_are_meant_to() -> None:
    """The checks themselves: a two-module cycle, a lazy arrow down-up, a denied import."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert layer_of("forethought.core.policy.rules") == CORE and layer_of("forethought.cli_send") == "forethought.cli_send"
    lazy = Import("forethought.core.state", "forethought.ops.settings", 1, lazy=True)
    assert not any(within(lazy.target, allowed) for allowed in ALLOWED[layer_of(lazy.module)])
