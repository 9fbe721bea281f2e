"""Part 6 (optional, ``--long`` or ``FORETHOUGHT_BENCH_LONG=1``): ``forethought replay`` as a whole process.

Two lines of issue #11's targets, each a child process ``forethought replay … --quiet`` timed from
the outside as a whole process (wall clock from spawn to exit; user and system CPU and peak memory
from the kernel's accounting of the finished child, ``os.wait4``, the figures ``/usr/bin/time -v``
prints), so interpreter start-up and imports are included:

* **CDNOW**: the file ``make eval-real`` replays (69,659 purchases of 23,570 customers, built as
  ``cdnowkit`` builds it, with its purchase-data engine settings and its snapshot at the end of
  calibration). Target ≤ 60 s. Needs ``pip install -e '.[eval]'`` (lifetimes ships the data).
* **make eval slice**: every line of one customer in ``--eval-every`` (default 10, by CRC-32 of the
  customer id) of ``var/eval/events.jsonl.gz`` (the ``make eval`` file, built with the Makefile's
  own ``forethought simulate`` command when missing), replayed with ``--playbooks builtin`` as
  ``make eval`` does. A slice by customer keeps each customer's whole 60 days, so the mix of events
  and due times per customer is the full file's (the file is in time order: its first lines would be
  profiles and three days of events). Target ≥ 20,000 records/s.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import re
import subprocess
import sys
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from forethought.core.config import EngineConfig

from .common import console

EVAL_FILE = Path("var/eval/events.jsonl.gz")
SIMULATE = ["simulate", "--customers", "10000", "--days", "60", "--seed", "42"]  # the Makefile's
FORETHOUGHT = [sys.executable, "-m", "forethought.cli"]


def long_enabled(flag: bool) -> bool:
    """``--long`` or ``FORETHOUGHT_BENCH_LONG`` set to 1/true/yes."""
    return flag or os.environ.get("FORETHOUGHT_BENCH_LONG", "").lower() in ("1", "true", "yes")


def whole_process(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``argv`` to its end; wall seconds, user and system CPU seconds, peak RSS (MiB), exit code.

    >>> r = whole_process([sys.executable, "-c", "pass"])
    >>> r["code"], r["wall_s"] > 0, r["user_s"] >= 0
    (0, True, True)
    """
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stderr is not None
    stderr = proc.stderr.read()  # until the child closes it (at exit); small: --quiet
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": wall, "user_s": usage.ru_utime, "sys_s": usage.ru_stime, "max_rss_mib": usage.ru_maxrss / 1024,
            "code": proc.returncode, "stderr": stderr.decode(errors="replace")[-2000:]}


def engine_env(config: EngineConfig) -> dict[str, str]:
    """``FORETHOUGHT_ENGINE__*`` for every field of ``config`` that differs from the default.

    >>> engine_env(EngineConfig(silence_min_seconds=86400.0))
    {'FORETHOUGHT_ENGINE__SILENCE_MIN_SECONDS': '86400.0'}
    """
    return {f"FORETHOUGHT_ENGINE__{name.upper()}": str(value) for name, value in config.changed().items()}


def replay_cdnow(folder: Path) -> dict[str, Any]:
    """The CDNOW line: build the ``make eval-real`` events and engine settings, replay as a whole process."""
    from cdnowkit.data import SNAPSHOT_AT, locate_cdnow, parse_cdnow, summarize, write_events
    from cdnowkit.engine import engine_config

    purchases = parse_cdnow(locate_cdnow(None)[0])
    events = folder / "cdnow.jsonl"
    write_events(purchases, events)
    config = engine_config(summarize(purchases, 1.0), 1.0, None, None)
    snapshot = datetime.fromtimestamp(SNAPSHOT_AT, tz=timezone.utc).isoformat()
    argv = [*FORETHOUGHT, "replay", str(events), "--quiet", "--report", str(folder / "cdnow-report.json"),
            "--snapshot-at", snapshot, "--snapshot-out", str(folder / "cdnow-snapshot.jsonl")]
    return _with_report(whole_process(argv, engine_env(config)), folder / "cdnow-report.json", len(purchases))


CUSTOMER = re.compile(rb'"customer_id"\s*:\s*"([^"]*)"')


def in_slice(line: bytes, every: int) -> bool:
    """Whether ``line`` belongs to the slice: its customer's CRC-32 is a multiple of ``every``
    (a line without a customer id is kept: the replay dead-letters what it cannot read).

    >>> [in_slice(b'{"customer_id": "cust-%06d"}' % i, 10) for i in range(1, 6)], in_slice(b"junk", 10)
    ([False, False, True, False, False], True)
    """
    found = CUSTOMER.search(line)
    return found is None or zlib.crc32(found.group(1)) % every == 0


def replay_eval_slice(folder: Path, every: int, source: Path = EVAL_FILE) -> dict[str, Any]:
    """The make-eval line: one customer in ``every`` of the ``make eval`` file, replayed as ``make eval`` does."""
    if not source.exists():
        console.print(f"6/6 {source} missing: building it as the Makefile does (forethought simulate) …")
        source.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([*FORETHOUGHT, *SIMULATE, "--output", str(source), "--truth", str(source.parent / "truth.jsonl"),
                        "--quiet"], check=True)
    part = folder / "eval-slice.jsonl"
    with gzip.open(source, "rb") as src, open(part, "wb") as out:
        taken = sum(out.write(line) > 0 for line in src if in_slice(line, every))
    argv = [*FORETHOUGHT, "replay", str(part), "--quiet", "--playbooks", "builtin", "--report",
            str(folder / "eval-report.json"), "--triggers-out", str(folder / "eval-triggers.jsonl")]
    return _with_report(whole_process(argv), folder / "eval-report.json", taken) | {"source": str(source)}


def _with_report(run: dict[str, Any], report: Path, records: int) -> dict[str, Any]:
    """Records/s over the whole process (per wall second, and per CPU second: the figure that holds on a
    shared machine, where the wall clock also counts other processes' turns), beside the replay's own
    in-process figure from its report."""
    own = json.loads(report.read_text()) if report.exists() else {}
    cpu = run["user_s"] + run["sys_s"]
    return run | {"records": records, "eps": records / run["wall_s"] if run["code"] == 0 else None,
                  "eps_cpu": records / cpu if run["code"] == 0 and cpu > 0 else None,
                  "own_seconds": own.get("seconds"), "own_eps": own.get("records_per_second")}


def bench_long(folder: Path, eval_every: int) -> dict[str, Any]:
    """Both long lines (each skipped with its reason when it cannot run)."""
    out: dict[str, Any] = {}
    for name, run in (("cdnow", lambda: replay_cdnow(folder)), ("eval_slice", lambda: replay_eval_slice(folder, eval_every))):
        console.print(f"6/6 long line: replay {name} (whole process) …")
        try:
            out[name] = run()
        except (SystemExit, ImportError, OSError, subprocess.CalledProcessError) as exc:
            out[name] = {"skipped": f"{type(exc).__name__}: {exc}"}
    return out
