"""Forethought's drop-off score on real purchase data (CDNOW), against the classic baselines.

Run from the repository root::

    .venv/bin/python -m pip install -e '.[eval]'       # lifetimes: the data file and BG/NBD
    .venv/bin/python benchmarks/eval_cdnow.py
    .venv/bin/python benchmarks/eval_cdnow.py --json cdnow.json --bootstrap 500

Data
----
The CDNOW "master" file that ships inside the PyPI package ``lifetimes``
(``lifetimes/datasets/CDNOW_master.txt``): every purchase, Jan 1997 – Jun 1998, of the 23,570
people who made their *first-ever* purchase at CDNOW in Q1 1997 (one row per purchase: customer
id, date YYYYMMDD, number of CDs, dollar amount). Nobody on the team generated it. Nothing is
downloaded; ``--data`` may point at the text file or at a ``lifetimes`` wheel instead.

What is measured
----------------
* Each purchase row becomes a Forethought ``usage`` event (metric ``purchase``, quantity = dollars,
  unit ``USD``, ``occurred_at`` = the purchase date at 12:00 UTC, customer ``cdnow-<id>``).
  The engine refuses event times before 2000-01-01, so all dates are moved 28 years forward
  (1997-01-01 → 2025-01-01): the calendar repeats exactly and no gap changes. The
  events are written as JSON lines and replayed with :class:`forethought.replay.runner.Replayer`
  (the worker's core, driven by event time) with ``snapshot_at`` = 1997-10-01T00:00Z, the end of
  the standard 39-week calibration period (1997-01-01 … 1997-09-30). Holdout events are fed too,
  but the snapshot is taken before the first of them is processed, so the engine's scores cannot
  see the holdout.
* Engine settings for purchase data: ``visit_gap_seconds`` = 1 day (purchases on the same or the
  next day are one visit), ``prior_gap_seconds`` = median and ``prior_log_sd`` = standard deviation
  of the pooled log gaps between visits *in the calibration period*, ``silence_min_seconds`` =
  1 day, ``silence_max_seconds`` = 5 years. The idle TTL is the default 180 days: a customer idle
  that long is evicted to a summary and scored from it at the snapshot; a silence threshold longer
  than the TTL never fires (its trigger would come after the eviction).
  Everything else is the default (``silence_z`` 2.33, ``prior_weight`` 3, ``gap_alpha`` 0.2,
  ``min_visits_to_arm`` 2).
* Truth: a customer **dropped off** when they made **no purchase in the holdout period**
  1997-10-01 … 1998-06-30 (the next 39 weeks).
* Scores, all as of the end of calibration and from calibration data only (higher = more likely
  to drop off). "Purchase days" are distinct days with a purchase.

  - Forethought ``dropoff``: the snapshot's ``scores.dropoff`` = P(gap ≤ present silence) under the
    customer's log-normal gap model, shrunk toward the prior (rounded to 6 decimals by the engine).
  - Forethought z (diagnostic): the same model's z = (ln silence − μ)/σ, unrounded and unsaturated,
    read from the engine's state at the snapshot; same order as ``dropoff`` except for ties.
  - Recency: days since the last purchase.
  - Recency / own mean gap ("RFM-ish"): days since the last purchase divided by the customer's mean
    gap between purchase days; one-time buyers (no gap) use the calibration population's mean gap.
  - Frequency: minus the number of repeat purchase days (fewer repeats → higher risk).
  - BG/NBD 1 − P(alive): Fader, Hardie & Lee (2005), fitted by maximum likelihood on the
    calibration summaries (x = repeat purchase days, t_x, T in weeks). BG/NBD sets P(alive) = 1 for
    anyone without a repeat purchase, so all one-time buyers tie at 0.
  - BG/NBD P(no purchase in holdout): the model's own probability of the truth event,
    1 − P(alive) + P(alive)·((α+T)/(α+T+t))^(r+x) with t = 39 weeks (given alive, λ's posterior is
    Gamma(r+x, α+T) and nobody dies without purchasing). This is the fair BG/NBD baseline for this
    truth; 1 − P(alive) is reported because it is what tools usually show.
  - Silent > 90 days: the fixed-threshold rule of many SaaS tools (a 0/1 score).

* Metrics: ROC AUC (Mann–Whitney with mid-ranks, so ties count one half), its 95 % paired-bootstrap
  interval and the interval of its difference to Forethought's ``dropoff`` AUC; average precision
  (step-wise, ties grouped, as scikit-learn computes it); the base rate. Operating points:
  the customers the engine has *triggered on* for their present silence by the snapshot
  (the ``silence_dropoff`` trigger fired and no purchase since; it needs ≥ 2 visits);
  ``dropoff ≥ Φ(silence_z)`` (the same threshold, but also for one-time buyers, whom the engine
  does not arm); the 90-day rule; and every score's top-k at the engine's alert volume k (ties
  broken by a fixed random order), so precision is compared at equal alert budgets.
  AUC/AP are also given for repeat customers (≥ 2 visits, the engine's armed set) and one-time
  buyers separately.

Caveats
-------
* CDNOW is one cohort of *first-time* buyers of Q1 1997, followed from their first purchase; it is
  not a steady-state customer base. Most of them never buy again, so the base rate of "drop-off"
  is high (~70 %) and a large part of any score's AUC comes from separating one-time buyers (who
  have no gap history: Forethought can only use its prior, i.e. recency) from repeaters.
* Cadence is weeks to months and data are daily; the engine was designed for sessions that are
  minutes to days apart. The prior is estimated from this data set's calibration period (no holdout
  information), which a live deployment would also have to do per product.
* "Drop-off" here means *no purchase in the next 39 weeks*, a proxy for churn in a non-contractual
  setting: nobody tells us they left. A customer can be "alive" and still not buy in 39 weeks.
* The engine's ``dropoff`` is a probability rounded to 6 decimals: long silences of regular buyers
  saturate at 1.0 and tie; the z diagnostic shows what that costs in ranking.
* One data set, one split; the numbers are descriptive, not a claim about other businesses.

The steps live in ``cdnowkit/`` (``data``, ``engine``, ``baselines``, ``metrics``, ``report``, ``cli``);
this file is the entry point.
"""

from __future__ import annotations

import sys
from pathlib import Path

if str(Path(__file__).resolve().parent) not in sys.path:  # run as a script, benchmarks/ is already there
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from cdnowkit import cli  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation with the given command line (default ``sys.argv[1:]``)."""
    return cli.main(argv, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    raise SystemExit(main())
