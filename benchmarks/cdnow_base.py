"""CDNOW through ``forethought replay`` with DEFAULT settings: is the whole base scored at the snapshot,
and how good is each score over it?

    .venv/bin/python benchmarks/cdnow_base.py [--data CDNOW_master.txt] [--json out.json]

(``make eval-real`` installs the data: ``pip install -r requirements/eval.lock``.) Writes every
purchase as an event (as ``eval_cdnow.py`` does, dates moved 28 years forward) and a truth file
(each customer's last purchase up to 1998-06-30), then runs ``forethought replay --truth
--snapshot-at`` at the end of the 39-week calibration (1997-10-01) with the engine's default
settings: the 180-day idle TTL evicts most one-time buyers before the snapshot, and their summaries
must keep them scored. The label is ``eval_cdnow.py``'s: no purchase in the 39-week holdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cdnowkit.data import SNAPSHOT_AT, locate_cdnow, noon, parse_cdnow, write_events  # noqa: E402

from forethought.core.config import EngineConfig  # noqa: E402
from forethought.replay.command import run_replay  # noqa: E402
from forethought.replay.runner import _iso  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="CDNOW_master.txt or a lifetimes wheel")
    parser.add_argument("--json", type=Path, default=None, help="write the replay report here")
    parser.add_argument("--idle-ttl-days", type=float, default=None,
                        help="another idle TTL (a long one keeps every state live: the comparison without summaries)")
    args = parser.parse_args()
    text, source = locate_cdnow(args.data)
    purchases = parse_cdnow(text)
    ttl = {} if args.idle_ttl_days is None else {"idle_ttl_seconds": args.idle_ttl_days * 86_400}
    config = EngineConfig(**ttl)  # type: ignore[arg-type]
    last: dict[int, float] = {}
    for p in purchases:
        last[p.customer] = max(last.get(p.customer, 0.0), noon(p.day))
    with tempfile.TemporaryDirectory(prefix="forethought-cdnow-base-") as folder:
        events, truth, scores = Path(folder) / "events.jsonl", Path(folder) / "truth.jsonl", Path(folder) / "s.jsonl"
        write_events(purchases, events)
        truth.write_bytes(b"".join(orjson.dumps({"customer_id": f"cdnow-{c}", "last_activity_at": _iso(t)}) + b"\n"
                                   for c, t in sorted(last.items())))
        started = time.process_time()
        report = run_replay([events], config, truth=truth, snapshot_at=_iso(SNAPSHOT_AT),
                            snapshot_out=scores, report_out=args.json, quiet=True)
        rows = sum(1 for _ in open(scores, "rb"))
    snapshot = report["prediction_quality"]["snapshot"]
    ttl_days = config.idle_ttl_seconds / 86_400
    which = "default settings" if args.idle_ttl_days is None else "default settings but the TTL"
    print(f"data: {source}; {len(last):,} customers, {len(purchases):,} purchases; {which} "
          f"(idle TTL {ttl_days:g} days); replay CPU {time.process_time() - started:.1f} s")
    print(f"snapshot at {_iso(SNAPSHOT_AT)}: {rows:,} rows, {snapshot['summarised']:,} of them evicted customers "
          f"scored from their summaries; {snapshot['missing_from_snapshot']:,} customers missing")
    for name, q in snapshot["scores"].items():
        print(f"  {name:16} AUC {q['auc']}  lift quality {q['lift_quality']} ({q['grade']})  "
              f"AP {q['average_precision']}  Brier {q['brier']}")
    print(json.dumps({"customers": len(last), "snapshot_rows": rows, **{k: v for k, v in snapshot.items()
                                                                         if k != "scores"}}))


if __name__ == "__main__":
    main()
