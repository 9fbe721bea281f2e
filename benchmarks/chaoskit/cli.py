"""``make chaos`` (``python benchmarks/chaos.py``): run the chaos scenarios and print the table.

Exit status 0 when every scenario settled with no trigger lost, no duplicate with a new id and no state
that differs from the undisturbed run; 1 otherwise (the table says where).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from pathlib import Path

from .expected import undisturbed
from .report import table, write_json
from .scenarios import FULL, SHORT, WORKER_ENV, ScenarioResult, run_profile
from .workload import build_workload


def passed(results: list[ScenarioResult]) -> bool:
    """The targets of issue #12: nothing lost, no new-id duplicate, no differing state, all settled."""
    return all(r.settled and not (r.tally.lost or r.tally.dup_new_id or r.tally.states_differ) for r in results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the integration test's small run")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", action="append", default=[], help="a scenario to run (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--workdir", type=Path, help="keep broker data and worker logs here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # its retries while the broker is away are expected
    profile = SHORT if args.short else FULL
    workload = build_workload(profile.customers, profile.days, args.seed)
    expected = undisturbed(workload, WORKER_ENV)
    print(f"workload: {len(workload.records)} records, {len(workload.customers)} customers, "
          f"{len(expected.triggers)} expected triggers; {profile.rate:g} records/s", flush=True)
    with tempfile.TemporaryDirectory(prefix="forethought-chaos-") as tmp:
        workdir = args.workdir or Path(tmp)
        results = asyncio.run(run_profile(profile, workdir, args.seed, workload, expected, tuple(args.only),
                                          on_result=lambda r: print(table([r]) + "\n", flush=True)))
    print(table(results))
    if args.json:
        write_json(results, args.json)
    return 0 if passed(results) else 1


if __name__ == "__main__":
    sys.exit(main())
