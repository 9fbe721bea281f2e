"""Smoke tests of the benchmark's pieces on tiny inputs (no broker; nothing here times anything)."""

from __future__ import annotations

import doctest
import gzip
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

PIECES = ["targets", "load", "changelog", "noop", "noop_agent", "runtime", "replaylines", "kafka", "latency"]


@pytest.mark.parametrize("name", PIECES)
def test_bench_piece_examples_hold(name: str) -> None:
    module = importlib.import_module(f"benchkit.{name}")
    result = doctest.testmod(module, verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_targets_say_met_and_not_met_side_by_side() -> None:
    from benchkit.targets import target_rows

    results = {
        "worker": {"eps": 7000.0, "triggers_by_playbook": {"long_inactivity": 1182.0, "feature_welcome": 1572.0}},
        "noop": {"eps": 9000.0},
        "core": {"process_models_eps": 60_000.0, "reference_triggers": {"long_inactivity": 666, "feature_welcome": 1572}},
        "runtime": {"eps": 30_000.0, "what": "stand-in"},
        "latency": {"p50_ms": 20.0, "p99_ms": 80.0, "load": {"sent_eps": 3380.0, "target_eps": 3380.0, "sent": 1}},
        "changelog": {"mean": 550.0, "topic": "t", "customers": 2000},
        "backlog": "by-topic",
    }
    status = {row[0]: row[3] for row in target_rows(results)}
    assert status["worker e2e / no-op Faust agent"] == "met"
    assert status["runtime in process / core process() with models"] == "NOT MET"
    assert status["error → trigger p99 at ½ worker rate"] == "met"
    assert status["mean state bytes per customer (changelog)"] == "met"
    triggers = next(row for row in target_rows(results) if row[0].startswith("worker triggers"))
    assert triggers[3] == "NOT MET" and "long_inactivity 1,182/666" in triggers[1]
    assert status["forethought replay of CDNOW (make eval-real file)"] == "not run"


def test_a_fixed_latency_load_is_not_judged_against_the_half_rate_target() -> None:
    """``--latency-rate`` sets the load by hand: a low p99 there says nothing of the target's load, and the
    report says where the rate came from; the timeline rows show how latency moved through the window."""
    from benchkit.report import _latency_rows
    from benchkit.targets import target_rows

    lat = {"p50_ms": 20.0, "p99_ms": 80.0, "max_ms": 90.0, "mean_ms": 30.0, "fired": 200, "bursts": 200,
           "load": {"sent_eps": 240.0, "target_eps": 240.0, "sent": 3000},
           "by_start": [{"from_s": 0, "bursts": 100, "p50_ms": 20.0, "max_ms": 40.0},
                        {"from_s": 2, "bursts": 100, "p50_ms": 900.0, "max_ms": 1500.0}]}
    fixed = {"worker": {"eps": 3000.0}, "latency": lat, "latency_rate": 300.0}
    row = next(r for r in target_rows(fixed) if r[0].startswith("error → trigger"))
    assert row[3] == "not run" and "--latency-rate" in row[4]
    assert next(r for r in target_rows({**fixed, "latency_rate": None}) if r[0].startswith("error → trigger"))[3] == "met"
    rows: list[tuple[str, ...]] = []
    _latency_rows(lambda *cells: rows.append(cells), fixed)
    assert any("0s 20/40 · 2s 900/1,500" in cells[2] for cells in rows)
    assert any("--latency-rate 300" in cells[3] for cells in rows)


def test_bench_without_kafka_prints_the_targets(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, str(BENCHMARKS / "bench.py"), "--events", "200", "--customers", "20",
                          "--skip-kafka", "--json", str(out)], check=False, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Issue #11 targets" in run.stdout and "runtime in process" in run.stdout
    results = json.loads(out.read_text())
    assert results["runtime"]["eps"] > 0 and results["core"]["process_models_eps"] > 0


def test_replay_line_replays_a_slice_as_a_whole_process(tmp_path: Path) -> None:
    from benchkit.replaylines import replay_eval_slice

    source = tmp_path / "events.jsonl.gz"
    with gzip.open(source, "wb") as f:
        for i in range(40):
            f.write(json.dumps({"event_id": f"e{i}", "customer_id": f"c{i % 4}", "type": "page_view",
                                "occurred_at": f"2026-01-01T00:{i:02d}:00+00:00"}).encode() + b"\n")
        f.write(b"not json at all\n")
    line = replay_eval_slice(tmp_path, 1, source)  # every customer: the whole file, bad line included
    assert line["code"] == 0, line["stderr"]  # one bad line does not stop the replay
    assert line["records"] == 41 and line["eps"] > 0 and line["user_s"] >= 0
