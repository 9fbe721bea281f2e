"""``make bench-scale`` at its smallest sizes (``benchmarks/scale.py --smoke``), so it cannot rot:
both groups consume the whole backlog, and the worker started on a prebuilt RocksDB data directory
becomes ready, serves the customers it finds there, and restarts from it without replaying anything.
No duration is asserted (the figures are the benchmark's to report)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_scale_benchmark_runs_at_its_smallest_size(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--smoke", "--bootstrap",
                           kafka_bootstrap, "--json", str(out)], capture_output=True, text=True, timeout=600,
                          cwd=ROOT, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    scale, many = results["scale"], results["many"]
    assert scale["one"]["complete"] and scale["two"]["complete"], "both groups read the whole backlog"
    assert many["store"]["customers"] == 3_000
    assert many["touched"] == 100, "every event for a customer held only on disk was processed"
    assert many["restored_records"] == 0, "a restart after a clean stop replays nothing from the changelog"
    for memory in (many["after_rebuild_kib"], many["after_touch_kib"], many["restart_kib"]):
        assert 0 < memory["VmRSS"] <= memory["VmHWM"]
    assert "3,000 customers on RocksDB" in done.stdout
