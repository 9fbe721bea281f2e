"""Settings shared by every benchmark part: engine environment, sizes, topics, console."""

from __future__ import annotations

import math
import sys

from rich.console import Console

from forethought.contracts.events import CLICKSTREAM_KINDS
from forethought.core.config import EngineConfig
from forethought.ops.settings import engine_config as engine_settings
from forethought.testing import FAST_ENGINE_ENV

# The fast engine settings the integration tests use too (forethought.testing).
ENGINE_ENV = dict(FAST_ENGINE_ENV)  # --set FORETHOUGHT_X=VALUE adds to or overrides these (in place: every module sees the change)
EVENT_SPAN_SECONDS = 300.0  # event times of the pre-built events: the last 5 minutes (< allowed lateness)
REPEATS = 3
BATCH = 500  # Settings.batch_size default (FORETHOUGHT_BATCH_SIZE via --set changes it)
E2E_TIMEOUT = 300.0
BURSTS, BURST_SPREAD, BURST_ERRORS, BURST_STEP = 200, 10.0, 6, 0.1
TOPIC_OF = {**{k: "events.clickstream" for k in CLICKSTREAM_KINDS}, "error": "events.errors", "usage": "events.usage"}
console = Console(highlight=False, width=None if sys.stdout.isatty() else 132)


def engine_config() -> EngineConfig:
    """The EngineConfig the worker builds from ``ENGINE_ENV`` (validated the same way)."""
    prefix = "FORETHOUGHT_ENGINE__"
    raw = {k.removeprefix(prefix).lower(): v for k, v in ENGINE_ENV.items() if k.startswith(prefix)}
    return engine_settings(raw)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]
