"""Docstring examples are the spec: run those of every module under ``src/forethought``.

The modules are found from the source files, not by walking imported packages, so a new module is
run without being listed, and a module that cannot be imported fails here instead of being skipped.
"""

from __future__ import annotations

import doctest
import importlib
from types import ModuleType

import pytest
from imports_kit import modules

# Modules whose doctests the architecture names as the spec; losing them must fail here.
MUST_HAVE_EXAMPLES = {
    "forethought.core.config", "forethought.core.windows", "forethought.core.baselines",
    "forethought.core.state", "forethought.core.signals", "forethought.core.plugin", "forethought.core.registry",
    "forethought.core.detectors.silence", "forethought.core.detectors.error_burst",
    "forethought.core.detectors.usage", "forethought.core.detectors.decline", "forethought.core.detectors.behaviour",
    "forethought.core.detectors.lifecycle", "forethought.core.detectors.learned_dropoff",
    "forethought.core.engine", "forethought.core.clock", "forethought.contracts.events",
    "forethought.contracts.records", "forethought.contracts.decode",
    "forethought.contracts.playbooks", "forethought.core.policy.rules", "forethought.core.policy.profiles",
    "forethought.core.ledger", "forethought.core.policy.expr", "forethought.core.policy.timing",
    "forethought.core.models", "forethought.core.snapshots",
    "forethought.core.churn_learned", "forethought.core.detectors.churn_learned",
}


def module_names() -> list[str]:
    return sorted(modules())


def examples_in(module: ModuleType) -> int:
    return sum(len(test.examples) for test in doctest.DocTestFinder().find(module))


def test_every_spec_module_is_found() -> None:
    assert MUST_HAVE_EXAMPLES <= set(module_names())


@pytest.mark.parametrize("name", module_names())
def test_doctests_pass(name: str) -> None:
    module = importlib.import_module(name)
    expected = examples_in(module)
    if name in MUST_HAVE_EXAMPLES:
        assert expected > 0, f"{name} lost its docstring examples"
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=True)
    assert result.failed == 0, f"{result.failed} doctest example(s) failed in {name} (see output)"
    assert result.attempted == expected  # every example found was run (> 0 for spec modules)
