"""The worker and replay space out the garbage collector (forethought.ops.collector); what must hold
for whoever runs them: garbage in reference cycles is still freed without anyone calling
``gc.collect()``, so memory stays bounded over a long run. Checked in a fresh interpreter, so this test
process's own collector settings are left alone."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc, weakref
from forethought.ops.collector import YOUNG, tune_collector
tune_collector()

class Node:
    def __init__(self):
        self.other = self          # a reference cycle: only the cyclic collector frees it

alive = []
for i in range(40 * YOUNG):
    node = Node()
    if i % 1000 == 0:
        alive.append(weakref.ref(node))
    del node
print(sum(ref() is not None for ref in alive), len(alive), gc.get_threshold()[0])
"""


def test_cycles_are_still_collected_automatically_after_tuning() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    still_alive, tracked, young = map(int, done.stdout.split())
    assert tracked == 2000 and young > 700  # tuned: the young threshold is no longer CPython's default
    # At most the last young generation's worth (YOUNG allocations, 1 in 1000 tracked) can be waiting.
    assert still_alive <= young // 1000 + 1, (still_alive, tracked)
