"""``forethought demo``: broker, topics, a worker, live traffic and triggers, then a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from forethought.contracts.records import Trigger
from forethought.devkafka import BrokerError, LocalBroker, broker_prerequisites_missing
from forethought.ops.failures import BrokerUnavailable
from forethought.ops.process import running_worker
from forethought.ops.settings import Settings
from forethought.ops.topics import create_topics, load_catalogue
from forethought.simulate.live import produce_traffic, watch_triggers
from forethought.simulate.traffic import TrafficGenerator, plan_population

console = Console(highlight=False)

# Seconds-scale cadences so both detectors show within a short demo.
DEMO_ENGINE = {
    "FORETHOUGHT_ENGINE__BUCKET_SECONDS": "10",
    "FORETHOUGHT_ENGINE__VISIT_GAP_SECONDS": "0",
    "FORETHOUGHT_ENGINE__PRIOR_GAP_SECONDS": "2",
    "FORETHOUGHT_ENGINE__PRIOR_LOG_SD": "0.5",
    "FORETHOUGHT_ENGINE__SILENCE_MIN_SECONDS": "10",
    "FORETHOUGHT_ENGINE__BURST_MIN_ERRORS": "6",
    "FORETHOUGHT_ENGINE__ALLOWED_LATENESS_SECONDS": "30",
    "FORETHOUGHT_SWEEP_INTERVAL_SECONDS": "1",
}


def run_demo(seconds: float, customers: int, seed: int) -> int:
    """Run the whole demo; returns a process exit code."""
    given = os.environ.get("FORETHOUGHT_KAFKA_BOOTSTRAP")
    missing = None if given else broker_prerequisites_missing()
    if missing:
        raise BrokerUnavailable(f"cannot start a local Kafka broker: {missing} (or set FORETHOUGHT_KAFKA_BOOTSTRAP"
                                " to a running one)")
    run_id = uuid.uuid4().hex[:6]
    workdir = Path("var") / "demo" / run_id
    workdir.mkdir(parents=True, exist_ok=True)
    with _broker(given, workdir) as bootstrap:
        settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=f"demo{run_id}.",
                            app_id=f"forethought-demo-{run_id}")
        report = asyncio.run(create_topics(bootstrap, load_catalogue(settings.topics_file), settings.topic_prefix,
                                           security=settings))
        console.print(f"Kafka at [bold]{bootstrap}[/]; created {len(report.created)} topics "
                      f"(prefix {settings.topic_prefix})")
        with _worker(settings, workdir) as worker:
            console.print(f"Worker ready: metrics at [bold]{settings.web_url}/metrics[/], "
                          f"a customer at {settings.web_url}/customers/cust-000  (logs: {workdir}/worker.log)")
            try:
                return asyncio.run(_live(settings, seconds, customers, seed, worker, workdir / "worker.log"))
            except KeyboardInterrupt:
                return 130


@contextlib.contextmanager
def _broker(given: str | None, workdir: Path) -> Iterator[str]:
    if given:
        yield given
        return
    console.print("Starting a local Kafka broker (first run downloads the jars once)...")
    broker = LocalBroker(data_dir=workdir / "kafka")
    try:
        yield broker.start()
    except BrokerError as exc:
        raise BrokerUnavailable(str(exc)) from None
    finally:
        broker.stop()


@contextlib.contextmanager
def _worker(settings: Settings, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**DEMO_ENGINE, "FORETHOUGHT_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "FORETHOUGHT_TOPIC_PREFIX": settings.topic_prefix, "FORETHOUGHT_APP_ID": settings.app_id,
           "FORETHOUGHT_DATA_DIR": str(workdir / "worker"), "FORETHOUGHT_WEB_PORT": str(settings.web_port),
           "FORETHOUGHT_KAFKA_COMPRESSION": settings.kafka_compression}
    with running_worker(env, workdir / "worker.log", settings.web_url) as proc:
        yield proc


async def _live(settings: Settings, seconds: float, customers: int, seed: int, worker: subprocess.Popen[bytes],
                worker_log: Path) -> int:
    generator = TrafficGenerator(plan_population(customers, seed, seconds * 0.8), seed, start=time.time())
    truth = generator.truth()
    console.print(f"Traffic: {customers} customers; going silent: {', '.join(truth['silent'])}; "
                  f"error bursts: {', '.join(truth['burst'])}. Running {seconds:g}s (Ctrl-C stops).")
    seen: dict[str, Trigger] = {}
    printer = asyncio.create_task(_print_triggers(settings, seen))
    try:
        await produce_traffic(settings.kafka_bootstrap, generator, seconds, settings.topic, security=settings,
                              compression=settings.kafka_compression)
        await asyncio.sleep(2)
    except asyncio.CancelledError:  # Ctrl-C: still say what was seen, then stop everything
        console.print("[yellow]Stopped by Ctrl-C.[/]")
    finally:
        printer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await printer
        _summary(seen, truth, settings.web_url, worker_log)
        _metrics_summary(settings.web_url)
    return 0 if worker.poll() is None else 1


async def _print_triggers(settings: Settings, seen: dict[str, Trigger]) -> None:
    async for trigger in watch_triggers(settings.kafka_bootstrap, settings.topic("engagement.triggers"),
                                        security=settings):
        if trigger.trigger_id in seen:
            continue
        seen[trigger.trigger_id] = trigger
        colour = {"error_burst": "red", "silence": "yellow"}.get(trigger.detector, "cyan")
        console.print(f"[{colour}]TRIGGER[/] {trigger.fired_at:%H:%M:%S} [bold]{trigger.playbook:<17}[/] "
                      f"{trigger.customer_id}  via {trigger.channel:<11} {_scores(trigger)}  "
                      f"{trigger.reasons[0].text}")
        if trigger.detector != "feature_first_use" and trigger.why is not None:
            shown = [c for c in trigger.why.checks if c.startswith(("consent", "quiet hours", "holdout"))]
            console.print(f"        [dim]why: {trigger.why.rule}; " + "; ".join(shown) + "[/]")


def _scores(trigger: Trigger) -> str:
    return " ".join(f"{k}={v:.2f}" for k, v in trigger.scores.items() if k in ("dropoff", "anomaly"))


def _summary(seen: dict[str, Trigger], truth: dict[str, list[str]], url: str, worker_log: Path) -> None:
    """Per detector: customers caught (a trigger, or a decision the policy held back) and others flagged."""
    by_detector: dict[str, set[str]] = {"silence": set(), "error_burst": set()}
    for trigger in seen.values():
        by_detector.setdefault(trigger.detector, set()).add(trigger.customer_id)
    held = _held_back(worker_log)
    for detector, fate in (("silence", "silent"), ("error_burst", "burst")):
        books = _BOOKS[detector]
        notes = {c: _why_held(url, c, books, held) for c in set(truth[fate]) - by_detector[detector]
                 if any(p in books for p, _ in held.get(c, []))}
        caught = by_detector[detector] & set(truth[fate]) | set(notes)
        false = by_detector[detector] - set(truth[fate])
        console.print(f"{detector:<12} caught {len(caught)}/{len(truth[fate])} "
                      f"({', '.join(sorted(caught)) or '-'}{''.join(f'; {c} {w}' for c, w in sorted(notes.items()))});"
                      f" other customers flagged: {len(false)}{' (' + ', '.join(sorted(false)) + ')' if false else ''}")


_BOOKS = {"silence": ("long_inactivity", "dropoff_risk_high"), "error_burst": ("error_burst",)}


def _held_back(worker_log: Path) -> dict[str, list[tuple[str, str]]]:
    """From the worker's JSON log: per customer, (playbook, verdict or reason) of decisions that sent nothing."""
    held: dict[str, list[tuple[str, str]]] = {}
    with contextlib.suppress(OSError):
        for line in worker_log.read_text().splitlines():
            if '"decision"' not in line:
                continue
            with contextlib.suppress(ValueError, KeyError):
                entry = json.loads(line)
                why = entry["reason"] or entry["verdict"]
                held.setdefault(entry["customer_id"], []).append((entry["playbook"], why))
    return held


def _why_held(url: str, customer_id: str, books: tuple[str, ...], held: dict[str, list[tuple[str, str]]]) -> str:
    why = next(reason for playbook, reason in held[customer_id] if playbook in books)
    if why != "deferred":
        return {"holdout": "held out (control group)"}.get(why, f"suppressed ({why})")
    with contextlib.suppress(OSError, ValueError, KeyError, StopIteration):
        with urllib.request.urlopen(f"{url}/customers/{customer_id}", timeout=5) as response:
            deferred = json.loads(response.read())["policy"]["deferred"]
        release = next(d["release_at"] for d in deferred if d["playbook"] in books)  # ISO-8601 UTC
        return f"deferred by quiet hours until {datetime.fromisoformat(release).strftime('%H:%M')} UTC"
    return "deferred by quiet hours"


def _metrics_summary(url: str) -> None:
    """What the worker's own /metrics say: events in, dead letters by reason, triggers."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError as exc:
        console.print(f"[red]could not read {url}/metrics: {exc}[/]")
        return
    totals: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in _SHOWN:
                label = sample.labels.get(_SHOWN[sample.name], "all")
                totals.setdefault(sample.name, {}).setdefault(label, 0.0)
                totals[sample.name][label] += sample.value
    for name, label in _SHOWN.items():
        parts = ", ".join(f"{k}={v:g}" for k, v in sorted(totals.get(name, {}).items())) or "0"
        console.print(f"[dim]{url}/metrics[/] {name}{{{label}}}: {parts}")


_SHOWN = {"forethought_events_in_total": "type", "forethought_invalid_events_total": "reason",
          "forethought_triggers_total": "playbook", "forethought_decisions_total": "verdict",
          "forethought_control_records_in_total": "type"}
