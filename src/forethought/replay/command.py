"""``forethought replay``: files in → the worker's core → triggers, dead letters and a report out.

    forethought replay events.jsonl.gz --triggers-out triggers.jsonl --deadletter-out dead.jsonl \\
        --report report.json --truth truth.jsonl --snapshot-at 2026-11-17T00:00:00Z --snapshot-out scores.jsonl \\
        --html report.html
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
from rich.filesize import decimal
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.table import Table

from forethought.contracts.decode import DEFAULT_DEADLETTER_MAX_BYTES
from forethought.contracts.records import Trigger
from forethought.core.config import EngineConfig
from forethought.core.engine import Observation
from forethought.core.policy.rules import Rules
from forethought.replay import report_data
from forethought.replay.evaluate import evaluate
from forethought.replay.reader import open_input, sorted_lines
from forethought.replay.runner import Replayer
from forethought.replay.score_quality import DailyScores, daily_quality, print_quality, snapshot_quality

console = Console(stderr=True, highlight=False)


def run_replay(
    inputs: list[Path], config: EngineConfig, *, triggers_out: Path | None = None, deadletter_out: Path | None = None,
    report_out: Path | None = None, truth: Path | None = None, snapshot_at: str | None = None,
    snapshot_out: Path | None = None, quiet: bool = False, rules: Rules | None = None, partitions: int = 1,
    deadletter_max_bytes: int = DEFAULT_DEADLETTER_MAX_BYTES, html_out: Path | None = None,
) -> dict[str, Any]:
    """Replay ``inputs`` and return the report (also written to ``report_out``, and drawn as a page
    into ``html_out``)."""
    at = datetime.fromisoformat(snapshot_at.replace("Z", "+00:00")).timestamp() if snapshot_at else None
    if truth is not None:  # the truth grades every look's scores
        config = config.replace(look_scores=True)
    if at is not None and snapshot_out is None:
        raise ValueError("--snapshot-at needs --snapshot-out")
    kept: list[Trigger] = []
    scores: list[report_data.ScoreRow] = []  # the engine's daily scores, for the page's truth sections
    daily: list[DailyScores] = []  # every score of every daily look, for the prediction quality
    snapshot: list[dict[str, Any]] = []  # the snapshot's rows, likewise

    def seen(customer: str, observation: Observation) -> None:
        if observation.kind == "daily_scores":
            d = observation.detail
            daily.append(DailyScores(customer, d))
            if html_out is not None:
                scores.append(report_data.ScoreRow(customer, d["at"], d["dropoff"], d["dropoff_learned"]))

    def snapshot_row(row: dict[str, Any]) -> None:
        _write(out.get("snapshot"), row)
        if truth is not None:
            snapshot.append({k: row[k] for k in ("customer_id", "scores", "summarised") if k in row})

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
            on_snapshot=snapshot_row, rules=rules, partitions=partitions,
            deadletter_max_bytes=deadletter_max_bytes,
            on_observation=seen if truth is not None else lambda _c, _o: None,
            on_tick_error=lambda customer, error: console.print(f"[yellow]tick failed[/] for {customer!r}: {error}"),
        )
        with _Progress(inputs, quiet) as bar:
            done = 0
            for done, line in enumerate(sorted_lines(inputs, on_bytes=bar.read, on_scanned=bar.scanned), start=1):
                replay.feed(line)
                if not done % 1024:
                    bar.processed(done)
            replay.finish()
            bar.processed(done)
    elapsed = time.perf_counter() - started
    report: dict[str, Any] = {**replay.counts.as_dict(), "seconds": round(elapsed, 2),
                              "records_per_second": round(replay.counts.read / elapsed) if elapsed else None,
                              "customers_in_state": len(replay.states),
                              "customers_summarised": len(replay.summaries), "models": replay.models_report()}
    report["lift"] = report_data.lift_intervals(report["lift"])
    truth_rows = _truth(truth) if truth is not None else None
    if truth_rows is not None:
        end = replay.counts.last_event or 0.0
        report["quality"] = evaluate(kept, truth_rows, start=replay.counts.first_event or 0.0, end=end)
        by_id = {row["customer_id"]: row for row in truth_rows}
        report["prediction_quality"] = {"daily": daily_quality(daily, by_id, end=end)}
        if at is not None:
            report["prediction_quality"]["snapshot"] = snapshot_quality(snapshot, by_id, at=at, end=end)
    if report_out is not None:
        report_out.write_text(json.dumps(report, indent=2) + "\n")
    if html_out is not None:
        from forethought.replay.report_html import write_page

        details = _details(report, kept, scores, truth_rows, end=replay.counts.last_event or 0.0)
        write_page(html_out, report, sources=[str(p) for p in inputs], details=details)
    if not quiet:
        print_summary(report)
    return report


def _truth(path: Path) -> list[dict[str, Any]]:
    with open_input(path) as handle:
        return [orjson.loads(line) for line in handle if line.strip()]


def _details(report: dict[str, Any], kept: list[Trigger], scores: list[report_data.ScoreRow],
             truth: list[dict[str, Any]] | None, *, end: float) -> dict[str, Any]:
    """What the page draws besides the report (``report_html.render_page``'s ``details``)."""
    details: dict[str, Any] = {"per_day": report_data.triggers_per_day(kept), "lift": report["lift"],
                               "suppressions": report_data.suppressions(report["decisions_by_playbook"])}
    if truth is None:
        return details
    by_id = {row["customer_id"]: row for row in truth}
    labelled = report_data.labelled_scores(scores, by_id, end=end)
    return details | {
        "scores": report_data.score_distributions(labelled), "horizon_days": 14,
        "pr": {name: report_data.pr_curve([(v, y) for r, y in labelled if (v := pick(r)) is not None])
               for name, pick in (("dropoff", lambda r: r.dropoff), ("dropoff_learned", lambda r: r.learned))},
        "lead": report_data.lead_times(kept, by_id, end=end),
    }


def _write(handle: IO[bytes] | None, data: dict[str, Any]) -> None:
    if handle is not None:
        handle.write(orjson.dumps(data) + b"\n")


class _Amount(ProgressColumn):
    """How much of a task is done in its own unit (bytes as stored, or records), and how fast."""

    def render(self, task: Task) -> str:
        unit = task.fields.get("unit", "")
        if unit == "bytes":
            done, total = decimal(int(task.completed)), decimal(int(task.total)) if task.total else "?"
            speed = f"{decimal(int(task.speed))}/s" if task.speed else ""
        else:
            done, total = f"{int(task.completed):,}", f"{int(task.total):,}" if task.total else "?"
            speed = f"{task.speed:,.0f} {unit}/s" if task.speed else ""
        return f"{done}/{total} {speed}"


class _Progress:
    """Two rich progress bars with an ETA each: reading the inputs (bytes as stored, so compressed bytes
    of a ``.gz``) and processing the records (their count is known once every input has been read: the
    records are sorted by event time before the first one is processed)."""

    def __init__(self, inputs: list[Path], quiet: bool) -> None:
        self.bar = Progress(TextColumn("{task.description:<10}"), BarColumn(), _Amount(), TimeRemainingColumn(),
                            console=console, disable=quiet)
        self.size = sum(p.stat().st_size for p in inputs)
        self.reading = self.bar.add_task("reading", total=self.size or None, unit="bytes")
        self.processing = self.bar.add_task("processing", total=None, unit="records")

    def __enter__(self) -> _Progress:
        self.bar.start()
        return self

    def read(self, n: int) -> None:
        """``n`` more bytes of the inputs were read."""
        self.bar.advance(self.reading, n)

    def scanned(self, lines: int) -> None:
        """Every input was read: ``lines`` records to process in all."""
        self.bar.update(self.reading, completed=self.size)
        self.bar.update(self.processing, total=lines)

    def processed(self, done: int) -> None:
        """``done`` records processed so far."""
        self.bar.update(self.processing, completed=done)

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()


def print_summary(report: dict[str, Any]) -> None:
    """A readable summary of a replay report on stderr."""
    console.print(f"read {report['records_read']:,} records ({report['valid']:,} valid) in {report['seconds']} s "
                  f"= {report['records_per_second'] or 0:,}/s; "
                  f"events {report['first_event_at']} → {report['last_event_at']}")
    console.print(f"invalid by reason: {_counts(report['invalid_by_reason'])}")
    console.print(f"triggers by playbook: {_counts(report['triggers_by_playbook'])}")
    console.print(f"suppressed by reason: {_counts(report['suppressed_by_reason'])}")
    if report.get("shadow_by_playbook"):
        console.print(f"shadow triggers by playbook: {_counts(report['shadow_by_playbook'])}")
    _print_lift(report.get("lift") or {})
    print_quality(console, report.get("prediction_quality") or {})
    quality = report.get("quality")
    if not quality:
        return
    table = Table(title=f"Detection quality ({quality['customers']:,} customers, "
                        f"{quality['customer_days']:,} customer-days)")
    for column in ("detector", "triggers", "precision", "recall", "F1", "false alarms /1k cust-days", "timing"):
        table.add_column(column)
    d, b = quality["dropoff"], quality["error_burst"]
    table.add_row("drop-off (silence + decline)", str(d["triggers"]), _f(d["precision"]), _f(d["recall"]), _f(d["f1"]),
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
    for column in ("playbook", "treated", "holdout", "lift", "95 % interval"):
        table.add_column(column)
    for playbook, row in lift.items():
        cells = [f"{row[g]['reengaged']:,}/{row[g]['measured']:,} = {row[g]['rate']:.1%}" if g in row else "-"
                 for g in ("treated", "holdout")]
        interval = row.get("lift_ci95")
        table.add_row(playbook, *cells, "-" if row["lift"] is None else f"{row['lift']:+.1%}",
                      "-" if interval is None else f"{interval[0]:+.1%} to {interval[1]:+.1%}")
    console.print(table)


def _counts(counts: dict[str, int]) -> str:
    """``{"a": 1, "b": 3}`` as ``b 3, a 1`` (the largest first), ``-`` when empty.

    >>> _counts({"cooldown": 2, "quiet_hours": 5})
    'quiet_hours 5, cooldown 2'
    """
    return ", ".join(f"{k} {n:,}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) or "-"


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
