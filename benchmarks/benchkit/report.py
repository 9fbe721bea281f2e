"""The results table (one section per part) and the machine context printed with it."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.table import Table

from .common import BATCH, E2E_TIMEOUT, ENGINE_ENV, REPEATS
from .load import BURST_RATE
from .targets import target_rows

AddRow = Callable[..., None]


def context(kafka: str) -> dict[str, Any]:
    """Command, CPU, Python, library versions and load: what the figures depend on."""
    model = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                  if line.startswith("model name")), platform.processor() or "?")
    versions = {name: _version(name) for name in ("faust-streaming", "aiokafka", "pydantic", "river", "orjson")}
    return {"command": shlex.join(sys.orig_argv), "cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
            "cpu_model": model, "python": platform.python_version(), "platform": platform.platform(),
            "kafka": kafka, "versions": versions, "loadavg_1m": os.getloadavg()[0], "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def _n(value: float | None, digits: int = 0, suffix: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{suffix}"


def render(results: dict[str, Any]) -> Table:
    """Every part's results as one table; parts that did not run are left out."""
    core, e2e, bare, lat = (results.get(k, {}) for k in ("core", "worker", "bare", "latency"))
    noop = results.get("noop", {})
    table = Table(title="Forethought benchmark", show_lines=False)
    for column, justify in (("section", "left"), ("measure", "left"), ("value", "right"), ("notes", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    _machine_rows(table.add_row, results)
    table.add_section()
    for rows, part in ((_core_rows, core), (_worker_rows, e2e), (_bare_rows, bare or noop), (_latency_rows, lat)):
        if part:
            rows(table.add_row, results)
            table.add_section()
    _state_rows(table.add_row, core, e2e)
    if results.get("changelog"):
        _changelog_rows(table.add_row, results["changelog"])
    if results.get("long"):
        table.add_section()
        _long_rows(table.add_row, results["long"])
    return table


def render_targets(results: dict[str, Any]) -> Table:
    """Issue #11's targets side by side: measured in this run, the target, met or not."""
    table = Table(title="Issue #11 targets (this run)", show_lines=False)
    for column, justify in (("target", "left"), ("measured", "right"), ("wanted", "right"), ("status", "left"),
                            ("how", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in target_rows(results):
        table.add_row(*row)
    return table


def _machine_rows(add: AddRow, results: dict[str, Any]) -> None:
    ctx = results.get("context", {})
    add("machine", "CPUs (usable)", f"{ctx.get('cpus')} ({ctx.get('cpus_usable')})", ctx.get("cpu_model", ""))
    add("", "load average (1 min)", f"{ctx.get('loadavg_1m', 0):.2f} → {results.get('loadavg_end', 0):.2f}",
        "at start → at end; other processes on the machine compete with every figure below")
    add("", "python / kafka", f"{ctx.get('python')} / {ctx.get('kafka')}", " ".join(f"{k} {v}" for k, v in ctx.get("versions", {}).items()))
    if results.get("overrides"):
        add("", "--set", "", " ".join(results["overrides"]))
    add("", "workload", f"{results.get('events', 0):,} ev", f"{results.get('customers', 0):,} customers requested,"
        f" {results.get('customers_seen', 0):,} seen; median of {REPEATS}")


def _core_rows(add: AddRow, results: dict[str, Any]) -> None:
    core = results["core"]
    add("1 core (1 CPU)", "process() on decoded events", _n(core["process_eps"], 0, " ev/s"), f"{core['process_us']:.1f} µs/event")
    add("", "process() with the partition models", _n(core["process_models_eps"], 0, " ev/s"),
        f"{core['process_models_us']:.1f} µs/event")
    add("", "PartitionRuntime (the one driver) in process", _n(core["runtime_eps"], 0, " ev/s"),
        f"{core['runtime_us']:.1f} µs/event; {core['runtime_eps'] / core['process_models_eps']:.2f} × process() with"
        " models (target ≥ 0.7)")
    add("", "behaviour trees, one customer-minute (warm)", f"{core['trees_observe_us']:.0f} µs", "score + learn")
    add("", "decode_event() on raw JSON", _n(core["decode_eps"], 0, " ev/s"), f"{core['decode_us']:.1f} µs/event")
    add("", "decode_event() + process()", _n(core["decode_process_eps"], 0, " ev/s"), f"{core['decode_process_us']:.1f} µs/event")
    add("", "BatchProcessor handle+commit", _n(core["batch_processor_eps"], 0, " ev/s"),
        f"{core['batch_processor_us']:.1f} µs/event; + state JSON per batch, metrics, batches of "
        f"{ENGINE_ENV.get('FORETHOUGHT_BATCH_SIZE', BATCH)}")
    runtime = results.get("runtime", {})
    if runtime.get("eps"):
        ratio = runtime.get("ratio_to_process_models")
        add("", "runtime in process", _n(runtime["eps"], 0, " ev/s"),
            f"{'-' if ratio is None else f'{ratio:.2f}'} × process() with models; {runtime['what']}")


def _worker_rows(add: AddRow, results: dict[str, Any]) -> None:
    e2e = results["worker"]
    status = "complete" if e2e["complete"] else f"PARTIAL: {e2e['counted']:,.0f}/{e2e['expected']:,} in {E2E_TIMEOUT:g}s"
    add("2 worker e2e", "events/s through the broker", _n(e2e.get("eps"), 0, " ev/s"),
        f"{status}; measured over {_n(e2e.get('elapsed_s'), 1, ' s')}; ready after {e2e['ready_after_s']:.1f} s")
    add("", "worker / broker CPU", f"{_n(_pct(e2e.get('worker_cpu_share')), 0, '%')} / {_n(_pct(e2e.get('broker_cpu_share')), 0, '%')}",
        "CPU seconds per wall second while draining (100% = one core)")
    add("", "time in core / in batch handler", f"{_pct_of(e2e['core_seconds'], e2e)} / {_pct_of(e2e['batch_seconds'], e2e)}",
        f"of wall time; {e2e['batches']:,.0f} batches, mean {_n(e2e.get('mean_batch_events'), 0)} events, "
        f"{_n(e2e.get('mean_batch_ms'), 1, ' ms')}")
    add("", "late / dup / invalid / rekeyed",
        f"{e2e['late']:,.0f} / {e2e['duplicates']:,.0f} / {e2e['invalid']:,.0f} / {e2e['rekeyed']:,.0f}", "")
    ref = results.get("core", {}).get("reference_triggers", {})
    for playbook in sorted(set(ref) | set(e2e["triggers_by_playbook"])):
        got, want = e2e["triggers_by_playbook"].get(playbook, 0), ref.get(playbook, 0)
        flag = " ← more than in order: inputs consumed out of event-time order" if got > 1.1 * want + 5 else ""
        add("", f"triggers: {playbook}", f"{got:,.0f}", f"in-order reference (core): {want:,}{flag}")


def _bare_rows(add: AddRow, results: dict[str, Any]) -> None:
    bare, noop, e2e = results.get("bare", {}), results.get("noop", {}), results.get("worker", {})
    if noop:
        add("3 ceilings", "no-op Faust agent (counts only)", _n(noop.get("eps"), 0, " ev/s"),
            f"{'complete' if noop['complete'] else 'PARTIAL'}: {noop['counted']:,} events, mean batch "
            f"{_n(noop.get('mean_batch_events'), 0)}; CPU {_n(_pct(noop.get('cpu_share')), 0, '%')}; same take_events")
    if bare:
        add("" if noop else "3 ceilings", "bare aiokafka consumer + decode_event", _n(bare.get("eps"), 0, " ev/s"),
            f"{'complete' if bare['complete'] else 'PARTIAL'}: {bare['counted']:,} records, {bare['valid']:,} valid")
    for name, ceiling in (("no-op agent", noop), ("bare", bare)):
        if e2e.get("eps") and ceiling.get("eps"):
            add("", f"ratio worker / {name}", f"{e2e['eps'] / ceiling['eps']:.2f}", "")
    if noop.get("eps") and bare.get("eps"):
        add("", "ratio no-op agent / bare", f"{noop['eps'] / bare['eps']:.2f}", "what Faust's own pipeline keeps")


def _latency_rows(add: AddRow, results: dict[str, Any]) -> None:
    lat = results["latency"]
    add("4 latency", "error → trigger p50 / p99", f"{_n(lat['p50_ms'], 1)} / {_n(lat['p99_ms'], 1)} ms",
        f"max {_n(lat['max_ms'], 1)} ms, mean {_n(lat['mean_ms'], 1)} ms")
    add("", "bursts fired", f"{lat['fired']} / {lat['bursts']}",
        f"worker's own event_to_trigger mean {_n(lat.get('worker_mean_ms'), 1)} ms (Kafka timestamp → sent)")
    if timeline := lat.get("by_start"):
        add("", "p50 / max by burst start", " · ".join(f"{b['from_s']}s {_n(b['p50_ms'], 0)}/{_n(b['max_ms'], 0)}"
                                                    for b in timeline),
            "ms, 2 s bins: flat = kept up; rising = the worker fell behind its input (overload)")
    load, fixed = lat.get("load"), results.get("latency_rate")
    source = f"--latency-rate {fixed:,.0f}" if fixed else "worker's measured rate × --latency-load"
    add("", "input rate: load + bursts", f"{(load or {}).get('sent_eps', 0):,.0f} + {BURST_RATE:,.0f} ev/s",
        "no background load (worker rate unknown or --latency-load 0)" if not load else
        f"load target {load['target_eps']:,.0f} ev/s = {source} − bursts; {load['sent']:,} load events")


def _state_rows(add: AddRow, core: dict[str, Any], e2e: dict[str, Any]) -> None:
    if core:
        sb = core["state_bytes"]
        add("5 state bytes", "to_bytes() per customer", f"mean {sb['mean']:,.0f}",
            f"p50 {sb['p50']:,} · p99 {sb['p99']:,} · max {sb['max']:,} over {sb['customers']:,} customers")
    if e2e:
        add("" if core else "5 state bytes", "worker forethought_state_bytes", _n(e2e.get("state_bytes_gauge"), 0),
            f"gauge: mean of ≤200 table values; forethought_customers = {_n(e2e.get('customers_gauge'), 0)}")


def _pct(share: float | None) -> float | None:
    return None if share is None else 100 * share


def _pct_of(seconds: float, e2e: dict[str, Any]) -> str:
    elapsed = e2e.get("elapsed_s")
    return f"{100 * seconds / elapsed:.0f}%" if elapsed else "-"


def _changelog_rows(add: AddRow, cl: dict[str, Any]) -> None:
    if cl.get("mean") is None:
        add("", "changelog bytes per customer", "-", cl.get("error", "no records"))
        return
    add("", "changelog bytes per customer", f"mean {cl['mean']:,.0f}",
        f"p50 {cl['p50']:,} · p99 {cl['p99']:,} · max {cl['max']:,}: last value of {cl['customers']:,} keys,"
        f" {cl['records']:,} records on the changelog")


def _long_rows(add: AddRow, long: dict[str, Any]) -> None:
    first = "6 replay (whole process)"
    for name, line in long.items():
        if "skipped" in line:
            add(first, name, "-", line["skipped"])
        elif line.get("code"):
            add(first, name, "-", f"exit {line['code']} after {line['wall_s']:,.0f} s wall, user {line['user_s']:,.1f} s"
                f" (unfinished); {line.get('stderr', '')[-200:]}")
        else:
            add(first, name, f"{line['wall_s']:,.1f} s", f"{line['records']:,} records → {line['eps']:,.0f} rec/s of wall,"
                f" {_n(line.get('eps_cpu'), 0)} per CPU second (replay's own {_n(line.get('own_eps'), 0)}/s);"
                f" user {line['user_s']:,.1f} s, sys {line['sys_s']:,.1f} s, peak {line['max_rss_mib']:,.0f} MiB")
        first = ""
