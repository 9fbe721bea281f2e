"""Part 1b: the runtime in process, against core ``process()`` with the partition models.

Target of issue #11: the runtime in process ≥ 0.7 × core ``process()`` with the models.

>>> runtime_ratio({"process_models_eps": 20_000.0}, 5_000.0)
0.25
>>> runtime_ratio({}, 5_000.0) is None
True
"""

from __future__ import annotations

from typing import Any

WHAT = "PartitionRuntime per partition over decoded events (core.core_runtime: models, due ticks, dirty hand-off)"


def bench_runtime(core: dict[str, Any]) -> dict[str, Any]:
    """Events/s of the runtime in process (timed by ``bench_core`` as ``runtime_eps``)."""
    eps = core.get("runtime_eps")
    return {"eps": eps, "us": core.get("runtime_us"), "what": WHAT,
            "ratio_to_process_models": runtime_ratio(core, eps)}


def runtime_ratio(core: dict[str, Any], eps: float | None) -> float | None:
    """Runtime events/s over core ``process()`` with the models (None when either is missing)."""
    base = core.get("process_models_eps")
    return eps / base if eps and base else None
