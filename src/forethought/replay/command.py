"""``forethought replay``: files in → the worker's core → triggers, dead letters and a report out.

    forethought replay events.jsonl.gz --triggers-out triggers.jsonl --deadletter-out dead.jsonl \\
        --report report.json --truth truth.jsonl --snapshot-at 2026-11-17T00:00:00Z --snapshot-out scores.jsonl
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from forethought.contracts.decode import DEFAULT_DEADLETTER_MAX_BYTES
from forethought.contracts.records import Trigger
from forethought.core.config import EngineConfig
from forethought.core.policy.rules import Rules
from forethought.replay.evaluate import evaluate
from forethought.replay.reader import open_input, sorted_lines
from forethought.replay.runner import Replayer

console = Console(stderr=True, highlight=False)


def run_replay(
    inputs: list[Path], config: EngineConfig, *, triggers_out: Path | None = None, deadletter_out: Path | None = None,
    report_out: Path | None = None, truth: Path | None = None, snapshot_at: str | None = None,
    snapshot_out: Path | None = None, quiet: bool = False, rules: Rules | None = None, partitions: int = 1,
    deadletter_max_bytes: int = DEFAULT_DEADLETTER_MAX_BYTES,
) -> dict[str, Any]:
    """Replay ``inputs`` and return the report (also written to ``report_out``)."""
    at = datetime.fromisoformat(snapshot_at.replace("Z", "+00:00")).timestamp() if snapshot_at else None
    if at is not None and snapshot_out is None:
        raise ValueError("--snapshot-at needs --snapshot-out")
    kept: list[Trigger] = []
    started = time.perf_counter()
    with ExitStack() as stack:
        out = {name: stack.enter_context(open(path, "wb")) for name, path in
               (("triggers", triggers_out), ("dead", deadletter_out), ("snapshot", snapshot_out)) if path}

        def keep(trigger: Trigger) -> None:
            kept.append(trigger)
            _write(out.get("triggers"), trigger.model_dump(mode="json"))

        replay = Replayer(
            config, on_trigger=keep,
            on_deadletter=lambda d: _write(out.get("dead"), d.model_dump(mode="json")),
            sources=[str(p) for p in inputs], snapshot_at=at,
            on_snapshot=lambda row: _write(out.get("snapshot"), row), rules=rules, partitions=partitions,
            deadletter_max_bytes=deadletter_max_bytes,
            on_tick_error=lambda customer, error: console.print(f"[yellow]tick failed[/] for {customer!r}: {error}"),
        )
        with _progress(inputs, quiet) as advance:
            for line in sorted_lines(inputs, on_bytes=advance):
                replay.feed(line)
        replay.finish()
    elapsed = time.perf_counter() - started
    report: dict[str, Any] = {**replay.counts.as_dict(), "seconds": round(elapsed, 2),
                              "records_per_second": round(replay.counts.read / elapsed) if elapsed else None,
                              "customers_in_state": len(replay.states), "models": replay.models_report()}
    if truth is not None:
        report["quality"] = _quality(kept, truth, replay)
    if report_out is not None:
        report_out.write_text(json.dumps(report, indent=2) + "\n")
    if not quiet:
        print_summary(report)
    return report


def _quality(kept: list[Trigger], truth: Path, replay: Replayer) -> dict[str, Any]:
    with open_input(truth) as handle:
        rows = [orjson.loads(line) for line in handle if line.strip()]
    start, end = replay.counts.first_event or 0.0, replay.counts.last_event or 0.0
    return evaluate(kept, rows, start=start, end=end)


def _write(handle: IO[bytes] | None, data: dict[str, Any]) -> None:
    if handle is not None:
        handle.write(orjson.dumps(data) + b"\n")


class _progress:
    """A rich progress bar over the input bytes (compressed inputs count uncompressed bytes)."""

    def __init__(self, inputs: list[Path], quiet: bool) -> None:
        total = sum(p.stat().st_size for p in inputs)
        self.bar = Progress(TextColumn("replay"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                            console=console, disable=quiet)
        self.task = self.bar.add_task("replay", total=None if any(p.suffix == ".gz" for p in inputs) else total)

    def __enter__(self) -> Any:
        self.bar.start()
        return lambda n: self.bar.advance(self.task, n)

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()


def print_summary(report: dict[str, Any]) -> None:
    """A readable summary of a replay report on stderr."""
    console.print(f"read {report['records_read']:,} records ({report['valid']:,} valid) in {report['seconds']} s "
                  f"= {report['records_per_second'] or 0:,}/s; "
                  f"events {report['first_event_at']} → {report['last_event_at']}")
    console.print(f"invalid by reason: {report['invalid_by_reason'] or '-'}")
    console.print(f"triggers by playbook: {report['triggers_by_playbook'] or '-'}; "
                  f"suppressed by reason: {report['suppressed_by_reason'] or '-'}")
    if report.get("shadow_by_playbook"):
        console.print(f"shadow triggers by playbook: {report['shadow_by_playbook']}")
    _print_lift(report.get("lift") or {})
    quality = report.get("quality")
    if not quality:
        return
    table = Table(title=f"Detection quality ({quality['customers']:,} customers, "
                        f"{quality['customer_days']:,} customer-days)")
    for column in ("detector", "triggers", "precision", "recall", "F1", "false alarms /1k cust-days", "timing"):
        table.add_column(column)
    d, b = quality["dropoff"], quality["error_burst"]
    table.add_row("drop-off", str(d["triggers"]), _f(d["precision"]), _f(d["recall"]), _f(d["f1"]),
                  _f(d["false_alarms_per_1000_customer_days"]), f"lead median {_f(d['lead_time_days']['median'])} d")
    for name, part in quality.get("dropoff_by_detector", {}).items():
        table.add_row(f"  by {name}", str(part["triggers"]), _f(part["precision"]), _f(part["recall"]), _f(part["f1"]),
                      _f(part["false_alarms_per_1000_customer_days"]),
                      f"lead median {_f(part['lead_time_days']['median'])} d")
    table.add_row("error burst", str(b["triggers"]), _f(b["precision"]), _f(b["recall"]), _f(b["f1"]),
                  _f(b["false_alarms_per_1000_customer_days"]),
                  f"delay median {_f(b['detection_delay_seconds']['median'])} s")
    u = quality.get("usage")
    if u:
        table.add_row("usage spike/drop", str(u["triggers"]), _f(u["precision"]), _f(u["recall"]), _f(u["f1"]),
                      _f(u["false_alarms_per_1000_customer_days"]),
                      f"delay median {_f(u['detection_delay_seconds']['median'])} s")
    h = quality.get("behaviour")
    if h:
        kinds = ", ".join(f"{kind} {_f(r)}" for kind, r in h["recall_by_kind"].items())
        table.add_row("multivariate (HST)", str(h["triggers"]), _f(h["precision"]), _f(h["recall"]), _f(h["f1"]),
                      _f(h["false_alarms_per_1000_customer_days"]),
                      f"delay median {_f(h['detection_delay_seconds']['median'])} s; recall {kinds or '-'}")
    console.print(table)


def _print_lift(lift: dict[str, dict[str, Any]]) -> None:
    if not lift:
        return
    table = Table(title="Re-engagement by playbook (active again within the window)")
    for column in ("playbook", "treated", "holdout", "lift"):
        table.add_column(column)
    for playbook, row in lift.items():
        cells = [f"{row[g]['reengaged']:,}/{row[g]['measured']:,} = {row[g]['rate']:.1%}" if g in row else "-"
                 for g in ("treated", "holdout")]
        table.add_row(playbook, *cells, "-" if row["lift"] is None else f"{row['lift']:+.1%}")
    console.print(table)


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
