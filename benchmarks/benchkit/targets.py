"""Issue #11's targets, each as one row: what was measured in this run, the target, met or not.

>>> rows = target_rows({"worker": {"eps": 1800.0}, "noop": {"eps": 9000.0}})
>>> rows[0][1:4]
('1,800 / 9,000 ev/s = 0.20', '≥ 0.6', 'NOT MET')
>>> rows[2][3]
'not run'
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .load import BURST_RATE

Row = tuple[str, str, str, str, str]  # target, measured, wanted, status, how
NOT_RUN = "not run"


def _status(ok: bool | None) -> str:
    return NOT_RUN if ok is None else ("met" if ok else "NOT MET")


def _ratio_row(name: str, num: float | None, den: float | None, floor: float, how: str) -> Row:
    if not num or not den:
        return name, "-", f"≥ {floor:g}", NOT_RUN, how
    ratio = num / den
    return name, f"{num:,.0f} / {den:,.0f} ev/s = {ratio:.2f}", f"≥ {floor:g}", _status(ratio >= floor), how


def _worker_vs_noop(r: dict[str, Any]) -> Row:
    return _ratio_row("worker e2e / no-op Faust agent", r.get("worker", {}).get("eps"), r.get("noop", {}).get("eps"),
                      0.6, "same backlog, same run; no-op: take_events(batch size, within), counts only")


def _runtime_vs_models(r: dict[str, Any]) -> Row:
    rt = r.get("runtime", {})
    return _ratio_row("runtime in process / core process() with models", rt.get("eps"),
                      r.get("core", {}).get("process_models_eps"), 0.7, rt.get("what", ""))


def _core_models(r: dict[str, Any]) -> Row:
    eps = r.get("core", {}).get("process_models_eps")
    return ("core process() with the models", "-" if eps is None else f"{eps:,.0f} ev/s", "≥ 50,000 ev/s",
            _status(None if eps is None else eps >= 50_000), "one core, decoded events, from empty state")


def _latency(r: dict[str, Any]) -> Row:
    lat = r.get("latency", {})
    p99, load = lat.get("p99_ms"), (lat.get("load") or {})
    if p99 is None or math.isnan(p99):  # NaN: nothing fired
        return "error → trigger p99 at ½ worker rate", "-", "≤ 100 ms", NOT_RUN, ""
    rate = (f"{load.get('sent_eps', 0) + BURST_RATE:,.0f} ev/s in (load + bursts)" if load
            else "no load (worker rate unknown)")
    if r.get("latency_rate"):  # a fixed load (--latency-rate): not the target's "half the worker's rate"
        rate += f", fixed by --latency-rate, not ½ of the worker's {r.get('worker', {}).get('eps') or 0:,.0f} ev/s"
    return ("error → trigger p99 at ½ worker rate", f"p50 {lat['p50_ms']:,.1f} / p99 {p99:,.1f} ms", "≤ 100 ms",
            _status(p99 <= 100 if load and not r.get("latency_rate") else None), rate)


def trigger_differences(got: dict[str, float], want: dict[str, int]) -> list[str]:
    """``playbook worker/reference`` for every playbook whose counts differ.

    >>> trigger_differences({"a": 3.0, "b": 2.0}, {"a": 3, "c": 1})
    ['b 2/0', 'c 0/1']
    """
    return [f"{p} {got.get(p, 0):,.0f}/{want.get(p, 0):,}" for p in sorted(set(got) | set(want))
            if round(got.get(p, 0)) != want.get(p, 0)]


def _triggers(r: dict[str, Any]) -> Row:
    got, want = r.get("worker", {}).get("triggers_by_playbook"), r.get("core", {}).get("reference_triggers")
    name = "worker triggers (topic-by-topic backlog) = in-order reference"
    if got is None or want is None:
        return name, "-", "equal", NOT_RUN, ""
    diff = trigger_differences(got, want)
    backlog = r.get("backlog", "by-topic")
    measured = "all equal" if not diff else f"{len(diff)} differ (worker/ref): " + ", ".join(diff)
    return (name, measured, "equal", _status(not diff) if backlog == "by-topic" else NOT_RUN,
            f"{sum(got.values()):,.0f} vs {sum(want.values()):,} triggers; backlog {backlog}")


def _replay(r: dict[str, Any], key: str, name: str) -> tuple[dict[str, Any] | None, str]:
    line = r.get("long", {}).get(key)
    if line is None:
        return None, "--long (or FORETHOUGHT_BENCH_LONG=1) runs it"
    if "skipped" in line:
        return None, line["skipped"]
    return line, f"whole process: user {line['user_s']:,.1f} s + sys {line['sys_s']:,.1f} s, peak {line['max_rss_mib']:,.0f} MiB"


def _cdnow(r: dict[str, Any]) -> Row:
    line, how = _replay(r, "cdnow", "CDNOW")
    if line is not None and line.get("code"):
        return ("forethought replay of CDNOW (make eval-real file)", f"> {line['wall_s']:,.0f} s (unfinished)",
                "≤ 60 s", "NOT MET" if line["wall_s"] > 60 else NOT_RUN, f"exit {line['code']}; {how}")
    if line is None:
        return "forethought replay of CDNOW (make eval-real file)", "-", "≤ 60 s", NOT_RUN, how
    return ("forethought replay of CDNOW (make eval-real file)",
            f"{line['wall_s']:,.1f} s ({line['eps']:,.0f} rec/s)", "≤ 60 s", _status(line["wall_s"] <= 60), how)


def _eval(r: dict[str, Any]) -> Row:
    line, how = _replay(r, "eval_slice", "eval")
    name = "forethought replay of the make eval file (slice)"
    if line is None or line.get("code"):
        return name, "-", "≥ 20,000 rec/s", NOT_RUN, how
    measured = (f"{line['eps']:,.0f} rec/s ({line['records']:,} in {line['wall_s']:,.1f} s);"
                f" {line.get('eps_cpu') or 0:,.0f} per CPU s")
    return name, measured, "≥ 20,000 rec/s", _status(line["eps"] >= 20_000), how


def _state(r: dict[str, Any]) -> Row:
    cl = r.get("changelog", {})
    mean = cl.get("mean")
    if mean is None:
        return "mean state bytes per customer (changelog)", "-", "≤ 600 B", NOT_RUN, cl.get("error", "")
    return ("mean state bytes per customer (changelog)", f"{mean:,.0f} B", "≤ 600 B", _status(mean <= 600),
            f"last value per key on the state changelog, {cl['customers']:,} customers, after the worker run")


TARGETS: list[Callable[[dict[str, Any]], Row]] = [
    _worker_vs_noop, _runtime_vs_models, _core_models, _latency, _triggers, _cdnow, _eval, _state]


def target_rows(results: dict[str, Any]) -> list[Row]:
    """One row per target of issue #11, in the issue's order."""
    return [target(results) for target in TARGETS]
