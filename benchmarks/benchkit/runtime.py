"""Part 1b: the runtime in process, against core ``process()`` with the partition models.

Target of issue #11: the runtime in process ≥ 0.7 × core ``process()`` with the models.

>>> runtime_ratio({"process_models_eps": 20_000.0}, 5_000.0)
0.25
>>> runtime_ratio({}, 5_000.0) is None
True
"""

from __future__ import annotations

import importlib.util
from typing import Any

# ---------------------------------------------------------------------------------------------
# RUNTIME IN PROCESS: the place for ``forethought.core.runtime.PartitionRuntime``.
#
# Until that module exists, the stand-in is today's worker path in process, ``BatchProcessor``
# handle + commit (``core.core_batch_processor``, already timed by ``bench_core`` as
# ``batch_processor_eps``; it is not timed twice). When the runtime lands, replace the body of
# ``bench_runtime`` with: build the records as ``bench_core`` does, drive one ``PartitionRuntime`` per
# partition through its calls (feed records, advance time, collect outputs, take what must be
# persisted) under ``core._median_time``, and return ``{"eps": ..., "us": ..., "what": ...}``.
# ---------------------------------------------------------------------------------------------

RUNTIME_MODULE = "forethought.core.runtime"
STAND_IN = "stand-in: BatchProcessor handle+commit (no forethought.core.runtime yet)"


def runtime_available() -> bool:
    """Whether ``forethought.core.runtime`` exists in this checkout."""
    return importlib.util.find_spec(RUNTIME_MODULE) is not None


def bench_runtime(core: dict[str, Any]) -> dict[str, Any]:
    """Events/s of the runtime in process (today: the stand-in's figure from ``core``)."""
    eps = core.get("batch_processor_eps")
    what = STAND_IN
    if runtime_available():
        what = "stand-in: BatchProcessor handle+commit (forethought.core.runtime exists: drive it here)"
    return {"eps": eps, "us": core.get("batch_processor_us"), "what": what,
            "ratio_to_process_models": runtime_ratio(core, eps)}


def runtime_ratio(core: dict[str, Any], eps: float | None) -> float | None:
    """Runtime events/s over core ``process()`` with the models (None when either is missing)."""
    base = core.get("process_models_eps")
    return eps / base if eps and base else None
