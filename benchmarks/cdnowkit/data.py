"""The CDNOW purchase file: where to find it, its rows, the replayed events and per-customer truth."""

from __future__ import annotations

import importlib.util
import io
import math
import sys
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import orjson

DAY = 86_400.0
WEEK = 7.0
CAL_FIRST = date(1997, 1, 1)
CAL_LAST = date(1997, 9, 30)         # last calibration day (lifetimes' observation_period_end)
HOLDOUT_LAST = date(1998, 6, 30)
# The engine rejects event times before 2000-01-01 as implausible, so every date is moved forward
# by 28 years (10,227 days): the Gregorian calendar repeats exactly (weekdays, leap years) and all
# gaps are unchanged. 1997-01-01 is replayed as 2025-01-01.
SHIFT = date(2025, 1, 1) - date(1997, 1, 1)
SNAPSHOT_AT = datetime(2025, 10, 1, tzinfo=timezone.utc).timestamp()     # end of calibration (1997-10-01)
HOLDOUT_END = datetime(2026, 7, 1, tzinfo=timezone.utc).timestamp()      # end of holdout (1998-07-01)
HOLDOUT_WEEKS = (HOLDOUT_LAST - CAL_LAST).days / WEEK                     # 273 days = 39 weeks
RULE_DAYS = 90.0
MEMBER = "lifetimes/datasets/CDNOW_master.txt"


def locate_cdnow(explicit: Path | None) -> tuple[str, str]:
    """The CDNOW master file's text and where it came from (a file, a wheel, or a package)."""
    if explicit is not None:
        if explicit.suffix in (".whl", ".zip"):
            with zipfile.ZipFile(explicit) as wheel:
                return wheel.read(MEMBER).decode(), f"{explicit}!{MEMBER}"
        return explicit.read_text(), str(explicit)
    for package in ("lifetimes", "btyd"):
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            path = Path(folder) / "datasets" / "CDNOW_master.txt"
            if path.exists():
                return path.read_text(), str(path)
    sys.exit("CDNOW_master.txt not found: .venv/bin/python -m pip install -e '.[eval]' "
             "(or pass --data path/to/CDNOW_master.txt or a lifetimes wheel)")


@dataclass(frozen=True, slots=True)
class Purchase:
    """One row of the master file."""

    customer: int
    day: date
    cds: int
    dollars: float


def parse_cdnow(text: str) -> list[Purchase]:
    """The purchase rows of the master file's text (customer, YYYYMMDD, CDs, dollars)."""
    rows = []
    for line in io.StringIO(text):
        parts = line.split()
        if not parts or not parts[0].isdigit():
            continue  # header / blank
        ymd = parts[1]
        rows.append(Purchase(int(parts[0]), date(int(ymd[:4]), int(ymd[4:6]), int(ymd[6:8])),
                             int(parts[2]), float(parts[3])))
    return rows


def noon(day: date) -> float:
    """12:00 UTC of ``day``, shifted by :data:`SHIFT` (the replayed event time)."""
    day = day + SHIFT
    return datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc).timestamp()


def write_events(purchases: list[Purchase], path: Path) -> None:
    """One ``usage`` event per purchase row, as JSON lines (in file order; the reader sorts)."""
    with open(path, "wb") as out:
        for n, p in enumerate(purchases):
            out.write(orjson.dumps({
                "event_id": f"cdnow-{p.customer}-{n}", "customer_id": f"cdnow-{p.customer}",
                "type": "usage", "occurred_at": f"{(p.day + SHIFT).isoformat()}T12:00:00Z",
                "metric": "purchase", "quantity": p.dollars, "unit": "USD",
                "properties": {"cds": p.cds},
            }) + b"\n")


@dataclass
class Customers:
    """Per-customer calibration summaries and holdout truth, in one order (by CDNOW id)."""

    ids: np.ndarray
    first: np.ndarray        # days since CAL_FIRST of the first purchase
    last: np.ndarray         # ... of the last calibration purchase
    days: np.ndarray         # distinct purchase days in calibration
    mean_gap: np.ndarray     # mean gap between purchase days (NaN for one-time buyers)
    dropped: np.ndarray      # truth: no purchase in the holdout (bool)
    visit_gaps: list[float]  # calibration gaps between engine visits (> visit gap), pooled, days


def summarize(purchases: list[Purchase], visit_gap_days: float) -> Customers:
    """Calibration summaries and holdout truth of every customer with a calibration purchase."""
    cal: dict[int, set[int]] = {}
    holdout: set[int] = set()
    for p in purchases:
        offset = (p.day - CAL_FIRST).days
        if p.day <= CAL_LAST:
            cal.setdefault(p.customer, set()).add(offset)
        elif p.day <= HOLDOUT_LAST:
            holdout.add(p.customer)
    ids = np.array(sorted(cal))
    first, last, count, mean_gap, visit_gaps = [], [], [], [], []
    for cid in ids:
        days = sorted(cal[cid])
        first.append(days[0]); last.append(days[-1]); count.append(len(days))
        mean_gap.append((days[-1] - days[0]) / (len(days) - 1) if len(days) > 1 else math.nan)
        seen = days[0]  # gaps between visits exactly as the engine forms them
        for d in days[1:]:
            if d - seen > visit_gap_days:
                visit_gaps.append(float(d - seen))
            seen = d
    return Customers(ids, np.array(first, float), np.array(last, float), np.array(count),
                     np.array(mean_gap), np.array([c not in holdout for c in ids]), visit_gaps)
