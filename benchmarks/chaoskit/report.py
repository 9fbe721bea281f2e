"""The chaos table: per scenario and in total, triggers expected / received / lost / duplicated (same id,
new id) / extra, customers whose state differs from the undisturbed run, and recovery times.

>>> from .compare import Tally
>>> from .faults import FaultResult
>>> from .scenarios import ScenarioResult
>>> faults = [FaultResult("kill", 10, 61.5), FaultResult("kill", 90, None)]
>>> r = ScenarioResult("sigkill", faults, Tally(4, 4, customers=9))
>>> print(table([r]).splitlines()[2])
sigkill               2         4         4     0       0           0      0  0/9            61.5 (1 not recovered)
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from .compare import Tally
from .scenarios import ScenarioResult

HEADER = (f"{'scenario':<16}{'faults':>7}{'expected':>10}{'received':>10}{'lost':>6}{'dup id':>8}"
          f"{'dup new id':>12}{'extra':>7}  {'states differ':<15}{'recovery s (min ... max)'}")


def recovery_text(values: list[float | None]) -> str:
    """``min ... max`` of the recoveries (with the median for three or more), and how many never came.

    >>> recovery_text([3.0, 61.0, 5.0]), recovery_text([None]), recovery_text([])
    ('3.0 ... 5.0 ... 61.0', '- (1 not recovered)', '-')
    """
    done = sorted(v for v in values if v is not None)
    parts = [f"{done[0]:.1f}"] if done else ["-"] if values else []
    if len(done) >= 3:
        parts.append(f"{statistics.median(done):.1f}")
    if len(done) > 1:
        parts.append(f"{done[-1]:.1f}")
    text = " ... ".join(parts) or "-"
    if missing := sum(v is None for v in values):
        text += f" ({missing} not recovered)"
    return text


def _row(name: str, faults: int, tally: Tally, recoveries: list[float | None]) -> str:
    e, rcv, lost, dup, new, extra, differ = tally.as_row()
    return (f"{name:<16}{faults:>7}{e:>10}{rcv:>10}{lost:>6}{dup:>8}{new:>12}{extra:>7}  "
            f"{f'{differ}/{tally.customers}':<15}{recovery_text(recoveries)}")


def table(results: list[ScenarioResult]) -> str:
    """The printed table, a total line and, per scenario, each fault's recovery and the state fields
    that differ."""
    lines = [HEADER, "-" * len(HEADER)]
    total, every = Tally(), list[float | None]()
    for r in results:
        recoveries = [f.recovery for f in r.faults]
        lines.append(_row(r.name, len(r.faults), r.tally, recoveries))
        total, every = total + r.tally, every + recoveries
    if len(results) > 1:
        lines += ["-" * len(HEADER), _row("total", len(every), total, every)]
    for r in results:
        each = ", ".join(f"{f.kind}@{f.at_record}: {'-' if f.recovery is None else f'{f.recovery:.1f}'}"
                         + (f" ({f.restarts} restarts)" if f.restarts else "") for f in r.faults)
        lines.append(f"\n{r.name}: {each}; {r.worker_starts} worker starts, {r.seconds:.0f} s"
                     + ("" if r.settled else "; NOT SETTLED (the group never committed every input record;"
                                           f" uncommitted: {r.behind})"))
        if r.tally.differing_fields:
            fields = ", ".join(f"{name} x{n}" for name, n in r.tally.differing_fields.most_common())
            lines.append(f"  state fields that differ: {fields}")
        lines += [f"  e.g. {example}" for example in r.tally.examples[:4]]
    return "\n".join(lines)


def as_json(results: list[ScenarioResult]) -> dict[str, Any]:
    """The results as JSON data (``--json``)."""
    return {"scenarios": [{"name": r.name, "seconds": round(r.seconds, 1), "settled": r.settled,
                           "worker_starts": r.worker_starts, **r.tally.as_dict(),
                           "faults": [{"kind": f.kind, "at_record": f.at_record, "recovery_s": f.recovery,
                                       "restarts": f.restarts} for f in r.faults]} for r in results]}


def write_json(results: list[ScenarioResult], path: Path) -> None:
    """Write :func:`as_json` to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(as_json(results), indent=2) + "\n")
