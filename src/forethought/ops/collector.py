"""Python's cyclic garbage collector, set for a process that keeps many long-lived small objects.

The worker and ``forethought replay`` hold every live customer's state (rings, slices, ledger
entries, the partition's River models) for as long as the process runs, and allocate a few short-lived
objects per record. With CPython's default thresholds (700, 10, 10) the collector runs a young
collection every 700 net allocations and, every hundred of those, walks the whole heap of live
states, which never holds garbage worth finding: on CDNOW's replay (23,570 customers) that was
about a quarter of the CPU (``benchmarks/eval_cdnow.py``: replay 99.3 s with the defaults, 74.3 s tuned,
identical scores; docs/benchmarks.md).

:func:`tune_collector` therefore

* freezes what exists once start-up is done (modules, settings, compiled playbooks: never garbage),
  so no collection walks it again (``gc.freeze``), and
* collects the young generation every :data:`YOUNG` allocations instead of 700, the older ones a
  tenth as often as it.

Reference cycles are still collected (the collector is never turned off); they wait at most
:data:`YOUNG` allocations longer, a few megabytes at this process's object sizes.

>>> import gc
>>> before = gc.get_threshold()
>>> tune_collector()
>>> gc.get_threshold() == (YOUNG, 20, 100) and gc.get_freeze_count() > 0
True
>>> gc.unfreeze(); gc.set_threshold(*before)
"""

from __future__ import annotations

import gc

YOUNG = 50_000  # net allocations between young collections (CPython's default: 700)


def tune_collector(young: int = YOUNG) -> None:
    """Freeze the objects made so far and space out collections (see the module docstring)."""
    gc.collect()  # what start-up left as garbage goes now, not into the frozen generation
    gc.freeze()
    gc.set_threshold(young, 20, 100)
