"""Helpers for tests and benchmarks that run a real worker (shipped with the package).

>>> FAST_ENGINE_ENV["FORETHOUGHT_ENGINE__BUCKET_SECONDS"]
'60'
"""

from __future__ import annotations

# Small, fast settings: one-minute buckets, silence after >= 20 s, sweeps twice a second.
FAST_ENGINE_ENV: dict[str, str] = {
    "FORETHOUGHT_ENGINE__BUCKET_SECONDS": "60",
    "FORETHOUGHT_ENGINE__VISIT_GAP_SECONDS": "0",
    "FORETHOUGHT_ENGINE__PRIOR_GAP_SECONDS": "1",
    "FORETHOUGHT_ENGINE__PRIOR_LOG_SD": "0.3",
    "FORETHOUGHT_ENGINE__SILENCE_MIN_SECONDS": "20",
    "FORETHOUGHT_ENGINE__BURST_MIN_ERRORS": "5",
    "FORETHOUGHT_ENGINE__ALLOWED_LATENESS_SECONDS": "600",
    "FORETHOUGHT_SWEEP_INTERVAL_SECONDS": "0.5",
    "FORETHOUGHT_COMMIT_INTERVAL_SECONDS": "0.5",
}
