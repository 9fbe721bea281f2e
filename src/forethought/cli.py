"""One CLI: ``forethought worker | topics | schemas | simulate-traffic | demo | kafka | explain``."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import typer
from rich.console import Console

from forethought.cli_explain import explain_command
from forethought.cli_kafka import TOOL_CONTEXT, kafka_start, kafka_status, kafka_stop, kafka_tool
from forethought.cli_send import send_command
from forethought.ops.cli_failures import FailureGroup, root_options
from forethought.ops.failures import BadSetting, Failure, require_directory_writable, require_readable, require_writable
from forethought.ops.settings import REPO_ROOT
from forethought.ops.startup import load_settings, require_kafka_access
from forethought.senders.cli import senders_app

__all__ = ["app", "load_settings", "require_kafka_access"]

app = typer.Typer(help="Forethought: real-time behaviour scoring for proactive engagement.", no_args_is_help=True,
                  cls=FailureGroup, pretty_exceptions_enable=False)  # failures: one line (ops/cli_failures.py)
app.callback()(root_options)  # --version, --debug, --config FILE
topics_app = typer.Typer(help="The topic catalogue (streams/topics.yaml).", no_args_is_help=True)
schemas_app = typer.Typer(help="JSON Schemas of the wire contracts.", no_args_is_help=True)
kafka_app = typer.Typer(help="A local Kafka broker from Maven Central jars (no Docker).", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")
app.add_typer(kafka_app, name="kafka")
app.add_typer(senders_app, name="senders")  # a light module; heavy imports are lazy
console = Console(highlight=False)


def playbook_path(path: Path) -> Path | None:
    """The playbooks file to check before work, None for the built-in playbooks (no file).

    >>> playbook_path(Path("builtin")), playbook_path(Path("streams/playbooks.yaml"))
    (None, PosixPath('streams/playbooks.yaml'))
    """
    from forethought.ops.playbooks import BUILTIN

    return None if str(path) == BUILTIN else path


@app.command()
def worker() -> None:
    """Run the stream worker (Faust) until SIGTERM/SIGINT."""
    from faust.worker import Worker as FaustWorker

    from forethought.ops.collector import tune_collector
    from forethought.ops.logs import configure_logging
    from forethought.ops.playbooks import PlaybookFileError
    from forethought.ops.topics import CatalogueError
    from forethought.stream.worker import build_worker

    settings = load_settings()
    require_readable({"FORETHOUGHT_TOPICS_FILE": settings.topics_file,
                      "FORETHOUGHT_PLAYBOOKS_FILE": playbook_path(settings.playbooks_file)})
    require_directory_writable("FORETHOUGHT_DATA_DIR", settings.data_dir)
    require_kafka_access(settings)
    try:
        built = build_worker(settings)
    except CatalogueError as exc:
        raise BadSetting(f"invalid topic catalogue: {exc}") from None
    except PlaybookFileError as exc:
        raise BadSetting(f"invalid playbooks: {exc}") from None
    faust_worker = FaustWorker(built.app, loglevel=settings.log_level.lower(), quiet=True, redirect_stdouts=False)
    configure_logging(settings.log_level, settings.log_format)
    tune_collector()  # the live states are long-lived: see forethought.ops.collector
    faust_worker.execute_from_commandline()


@topics_app.command("create")
def topics_create(bootstrap: str = typer.Option(None, help="Overrides FORETHOUGHT_KAFKA_BOOTSTRAP."),
                  prefix: str = typer.Option(None, help="Overrides FORETHOUGHT_TOPIC_PREFIX.")) -> None:
    """Create every catalogue topic that is missing (idempotent)."""
    from forethought.ops.topics import create_topics, load_catalogue

    settings = load_settings(kafka_bootstrap=bootstrap, topic_prefix=prefix)
    require_readable({"FORETHOUGHT_TOPICS_FILE": settings.topics_file})
    require_kafka_access(settings)
    report = asyncio.run(create_topics(settings.kafka_bootstrap, load_catalogue(settings.topics_file),
                                       settings.topic_prefix, security=settings))
    console.print(f"created: {', '.join(report.created) or '-'}")
    console.print(f"already present: {', '.join(report.existing) or '-'}")
    for name, problem in report.mismatched.items():
        console.print(f"[red]mismatch[/] {name}: {problem}")
    if report.mismatched:
        raise typer.Exit(1)


@topics_app.command("list")
def topics_list() -> None:
    """Print the catalogue."""
    from forethought.ops.topics import load_catalogue

    settings = load_settings()
    require_readable({"FORETHOUGHT_TOPICS_FILE": settings.topics_file})
    for t in load_catalogue(settings.topics_file).topics:
        console.print(f"{t.name:<22} partitions={t.partitions:<3} retention={t.retention:<8} key={t.key:<12} "
                      f"{t.description}")


@schemas_app.command("export")
def schemas_export(out: Path = typer.Option(REPO_ROOT / "schemas", help="Target folder.")) -> None:
    """Write JSON Schemas and one valid example per record kind."""
    from forethought.contracts.schemas import export

    require_directory_writable("--out", out)
    for path in export(out):
        console.print(f"wrote {path}")


@schemas_app.command("check")
def schemas_check(directory: Path = typer.Option(REPO_ROOT / "schemas")) -> None:
    """Exit 1 when the files in ``schemas/`` drift from the models."""
    from forethought.contracts.schemas import drift

    require_readable({"--directory": directory}, directory=True)
    stale = drift(directory)
    for name in stale:
        console.print(f"[red]out of date[/] {directory / name}  (run: forethought schemas export)")
    raise typer.Exit(1 if stale else 0)


@app.command("simulate-traffic")
def simulate_traffic(rate: float = typer.Option(20.0, help="Approximate events per second."),
                     seconds: float = typer.Option(3600.0, help="How long to run."),
                     seed: int = typer.Option(7)) -> None:
    """Produce live demo traffic (steady, going-silent and error-bursting customers)."""
    from forethought.simulate.live import produce_traffic
    from forethought.simulate.traffic import TrafficGenerator, plan_population

    settings = load_settings()
    require_kafka_access(settings)
    customers = max(6, int(rate * 1.6))
    generator = TrafficGenerator(plan_population(customers, seed, seconds), seed, start=time.time())
    sent = asyncio.run(produce_traffic(settings.kafka_bootstrap, generator, seconds, settings.topic, security=settings,
                                       compression=settings.kafka_compression))
    console.print(f"sent {sent} records")


@app.command()
def simulate(customers: int = typer.Option(1000, help="How many customers."),
             days: float = typer.Option(30.0, help="Horizon in days."),
             seed: int = typer.Option(7, help="Same seed and options: byte-identical output."),
             output: Path = typer.Option(None, help="Records as JSON lines (gzip when it ends with .gz)."),
             truth: Path = typer.Option(None, help="Ground truth, one JSON line per customer."),
             start: str = typer.Option(None, help="Horizon start, ISO 8601 (default 2026-09-07T00:00:00Z)."),
             churn_rate: float = typer.Option(0.2, help="Share of customers who drop off."),
             anomaly_rate: float = typer.Option(0.08, help="Share of customers with an injected anomaly."),
             new_signup_rate: float = typer.Option(0.1, help="Share of customers who sign up mid-horizon."),
             to_kafka: bool = typer.Option(False, help="Also produce to the catalogue topics (FORETHOUGHT_*)."),
             quiet: bool = typer.Option(False, help="No progress bar or summary."),
             closed_loop: bool = typer.Option(False, help="Run the engine in-process; the customers answer its"
                                              " triggers (docs/simulator-response.md)."),
             respond: bool = typer.Option(False, help="Answer a live worker's triggers from Kafka: outcomes and"
                                          " the customers' reactions back (docs/simulator-response.md)."),
             report: Path = typer.Option(None, help="--closed-loop: the report as JSON."),
             playbooks: str = typer.Option(None, help="--closed-loop: playbook file (default: the worker's)."),
             respond_seconds: float = typer.Option(None, help="--respond: stop after this long (default: on"
                                                   " SIGINT/SIGTERM).")) -> None:
    """Synthetic customers (profiles, then events sorted by time) with ground truth, for backtests."""
    from forethought.simulate.sinks import run_cli

    require_writable({"--output": output, "--truth": truth, "--report": report})
    if closed_loop or respond:
        from forethought.cli_simulate import conflicting, run_loop_cli

        if problem := conflicting(closed_loop=closed_loop, respond=respond, to_kafka=to_kafka, output=output,
                                  report=report):
            console.print(f"[red]Invalid option[/] {problem}")
            raise typer.Exit(2)

        loop_settings = load_settings()
        playbook_file = Path(playbooks) if playbooks else loop_settings.playbooks_file
        require_readable({"--playbooks" if playbooks else "FORETHOUGHT_PLAYBOOKS_FILE": playbook_path(playbook_file),
                          "FORETHOUGHT_TOPICS_FILE": loop_settings.topics_file})
        if respond:
            require_kafka_access(loop_settings)
        raise typer.Exit(run_loop_cli(console, loop_settings, respond=respond, report=report, output=output,
                                      truth_path=truth, playbooks=playbook_file, respond_seconds=respond_seconds,
                                      quiet=quiet, customers=customers, days=days, seed=seed, start=start,
                                      churn_rate=churn_rate, anomaly_rate=anomaly_rate,
                                      new_signup_rate=new_signup_rate))
    settings = load_settings() if to_kafka else None
    if settings is not None:
        require_kafka_access(settings)
    raise typer.Exit(run_cli(console, settings, output=output, truth_path=truth,
                             quiet=quiet, customers=customers, days=days, seed=seed, start=start,
                             churn_rate=churn_rate, anomaly_rate=anomaly_rate, new_signup_rate=new_signup_rate))


@app.command()
def demo(seconds: float = typer.Option(float(os.environ.get("DEMO_SECONDS", 90)), help="Run time (DEMO_SECONDS)."),
         customers: int = typer.Option(30), seed: int = typer.Option(7)) -> None:
    """Broker, topics, worker and live traffic; prints each trigger with its reasons."""
    from forethought.demo import run_demo

    settings = load_settings()  # an unknown or invalid setting fails here, not after the broker started
    if os.environ.get("FORETHOUGHT_KAFKA_BOOTSTRAP"):  # a broker of the user's: it must answer
        require_kafka_access(settings)
    raise typer.Exit(run_demo(seconds, customers, seed))


@app.command()
def replay(
    inputs: list[Path] = typer.Argument(..., help="JSON lines (.gz ok), any order."),
    triggers_out: Path = typer.Option(None, help="Triggers as JSON lines."),
    deadletter_out: Path = typer.Option(None, help="Invalid lines with line number and reason."),
    report: Path = typer.Option(None, help="The report as JSON (a summary is printed too)."),
    truth: Path = typer.Option(None, help="Ground truth (forethought simulate --truth)."),
    snapshot_at: str = typer.Option(None, help="Event time (RFC 3339) to snapshot every customer's scores at."),
    snapshot_out: Path = typer.Option(None, help="Where the snapshot goes (JSON lines)."),
    playbooks: str = typer.Option(None, help="Playbook file (default: the worker's); 'builtin': one pass-through"
                                  " playbook per detector, no suppression (for detection quality)."),
    quiet: bool = typer.Option(False, help="No progress bar or summary."),
    html: Path = typer.Option(None, help="A self-contained page of charts (docs/backtest-report.md)."),
) -> None:
    """Backtest: run files through the worker's core and policy; triggers, dead letters and a report out."""
    from forethought.ops.collector import tune_collector
    from forethought.ops.playbooks import load_rules
    from forethought.ops.topics import load_catalogue
    from forethought.replay.command import run_replay

    settings = load_settings()
    playbook_file = Path(playbooks) if playbooks else settings.playbooks_file
    for path in inputs:
        require_readable({"input": path})
    require_readable({"--truth": truth, "FORETHOUGHT_TOPICS_FILE": settings.topics_file,
                      "--playbooks" if playbooks else "FORETHOUGHT_PLAYBOOKS_FILE":
                          playbook_path(playbook_file)})
    require_writable({"--triggers-out": triggers_out, "--deadletter-out": deadletter_out, "--report": report,
                      "--snapshot-out": snapshot_out, "--html": html})
    try:
        rules = load_rules(playbook_file)
        partitions = load_catalogue(settings.topics_file).partitions  # models per partition, as in the worker
        tune_collector()  # many long-lived states: see forethought.ops.collector
        run_replay(inputs, settings.engine, triggers_out=triggers_out, deadletter_out=deadletter_out,
                   report_out=report, truth=truth, snapshot_at=snapshot_at, snapshot_out=snapshot_out, quiet=quiet,
                   rules=rules, partitions=partitions, deadletter_max_bytes=settings.deadletter_max_bytes,
                   html_out=html)
    except ValueError as exc:  # the playbooks, the catalogue, --snapshot-at
        raise BadSetting(str(exc)) from None


@kafka_app.command("fetch")
def kafka_fetch() -> None:
    """Download the broker's and Kafka's tools' jars into the cache (once per version)."""
    from forethought.devkafka import BrokerError, ensure_jars
    from forethought.devkafka.jars import ensure_tool_jars

    version = load_settings().kafka_version
    try:
        console.print(f"jars in {ensure_jars(version)}", soft_wrap=True)  # a long path stays on one line
        console.print(f"tools' jars in {ensure_tool_jars(version)}", soft_wrap=True)
    except BrokerError as exc:  # no java/mvn, no network: the message says what to install or check
        raise Failure(str(exc)) from None


@kafka_app.command("check")
def kafka_check() -> None:
    """Exit 1 with install advice when a local broker cannot be run here."""
    from forethought.devkafka import broker_prerequisites_missing

    missing = broker_prerequisites_missing(load_settings().kafka_version)
    console.print(missing or "java and mvn found: a local broker can run")
    raise typer.Exit(1 if missing else 0)


kafka_app.command("start")(kafka_start)  # a light module: the broker and the JDK are touched when it runs
kafka_app.command("stop")(kafka_stop)
kafka_app.command("status")(kafka_status)
kafka_app.command("tool", context_settings=TOOL_CONTEXT)(kafka_tool)
app.command("send")(send_command)  # a light module; Kafka is imported when it runs
app.command("explain")(explain_command)  # a light module: the replay or the HTTP client load when it runs

if __name__ == "__main__":
    sys.exit(app())
