"""``forethought demo``: broker, topics, a worker, live traffic and triggers, then a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from forethought.contracts.records import Trigger
from forethought.ops.process import running_worker
from forethought.ops.kafka_local import BrokerError, LocalBroker, broker_prerequisites_missing
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
        console.print(f"[red]Cannot start a local Kafka broker:[/] {missing}")
        return 2
    run_id = uuid.uuid4().hex[:6]
    workdir = Path("var") / "demo" / run_id
    workdir.mkdir(parents=True, exist_ok=True)
    with _broker(given, workdir) as bootstrap:
        settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=f"demo{run_id}.", app_id=f"forethought-demo-{run_id}")
        report = asyncio.run(create_topics(bootstrap, load_catalogue(settings.topics_file), settings.topic_prefix))
        console.print(f"Kafka at [bold]{bootstrap}[/]; created {len(report.created)} topics (prefix {settings.topic_prefix})")
        with _worker(settings, workdir) as worker:
            console.print(f"Worker ready: metrics at [bold]{settings.web_url}/metrics[/], "
                          f"a customer at {settings.web_url}/customers/cust-000  (logs: {workdir}/worker.log)")
            try:
                return asyncio.run(_live(settings, seconds, customers, seed, worker))
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
        console.print(f"[red]{exc}[/]")
        raise SystemExit(2) from exc
    finally:
        broker.stop()


@contextlib.contextmanager
def _worker(settings: Settings, workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**DEMO_ENGINE, "FORETHOUGHT_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
           "FORETHOUGHT_TOPIC_PREFIX": settings.topic_prefix, "FORETHOUGHT_APP_ID": settings.app_id,
           "FORETHOUGHT_DATA_DIR": str(workdir / "worker"), "FORETHOUGHT_WEB_PORT": str(settings.web_port)}
    with running_worker(env, workdir / "worker.log", settings.web_url) as proc:
        yield proc


async def _live(settings: Settings, seconds: float, customers: int, seed: int, worker: subprocess.Popen[bytes]) -> int:
    generator = TrafficGenerator(plan_population(customers, seed, seconds * 0.8), seed, start=time.time())
    truth = generator.truth()
    console.print(f"Traffic: {customers} customers; going silent: {', '.join(truth['silent'])}; "
                  f"error bursts: {', '.join(truth['burst'])}. Running {seconds:g}s (Ctrl-C stops).")
    seen: dict[str, Trigger] = {}
    printer = asyncio.create_task(_print_triggers(settings, seen))
    try:
        await produce_traffic(settings.kafka_bootstrap, generator, seconds, settings.topic)
        await asyncio.sleep(2)
    except asyncio.CancelledError:  # Ctrl-C: still say what was seen, then stop everything
        console.print("[yellow]Stopped by Ctrl-C.[/]")
    finally:
        printer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await printer
        _summary(seen, truth)
        _metrics_summary(settings.web_url)
    return 0 if worker.poll() is None else 1


async def _print_triggers(settings: Settings, seen: dict[str, Trigger]) -> None:
    async for trigger in watch_triggers(settings.kafka_bootstrap, settings.topic("engagement.triggers")):
        if trigger.trigger_id in seen:
            continue
        seen[trigger.trigger_id] = trigger
        colour = "red" if trigger.detector == "error_burst" else "yellow"
        console.print(f"[{colour}]TRIGGER[/] {trigger.fired_at:%H:%M:%S} [bold]{trigger.playbook:<16}[/] "
                      f"{trigger.customer_id}  via {trigger.channel:<7} {_scores(trigger)}  "
                      f"{trigger.reasons[0].text}")


def _scores(trigger: Trigger) -> str:
    return " ".join(f"{k}={v:.2f}" for k, v in trigger.scores.items() if k in ("dropoff", "anomaly"))


def _summary(seen: dict[str, Trigger], truth: dict[str, list[str]]) -> None:
    by_detector: dict[str, set[str]] = {"silence": set(), "error_burst": set()}
    for trigger in seen.values():
        by_detector.setdefault(trigger.detector, set()).add(trigger.customer_id)
    for detector, fate in (("silence", "silent"), ("error_burst", "burst")):
        caught = by_detector[detector] & set(truth[fate])
        false = by_detector[detector] - set(truth[fate])
        console.print(f"{detector:<12} caught {len(caught)}/{len(truth[fate])} "
                      f"({', '.join(sorted(caught)) or '-'}); other customers flagged: {len(false)}"
                      f"{' (' + ', '.join(sorted(false)) + ')' if false else ''}")


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
          "forethought_triggers_total": "playbook"}
