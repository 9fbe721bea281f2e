"""State sizes and codec speed: the binary changelog value against the JSON one it replaces.

    .venv/bin/python benchmarks/state_codec.py                      # make bench's states (100,000 events)
    .venv/bin/python benchmarks/state_codec.py --replay FILE.jsonl.gz  # the final states of a replay

Sizes are ``len(state.to_bytes())`` (binary) and ``len(orjson.dumps(state.to_dict()))`` (what the worker
wrote before); speed is CPU time (``time.process_time``, so other processes on the machine do not
count) per state, best of 15 interleaved rounds, encode and decode each, with the ratio binary / JSON.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from forethought.core.config import EngineConfig  # noqa: E402
from forethought.core.state import CustomerState  # noqa: E402


def bench_states() -> tuple[list[CustomerState], EngineConfig]:
    """The states ``make bench`` measures: 100,000 events of 2,000 customers through ``process()``, with
    the applied offsets the worker's states hold (unless ``--no-offsets``)."""
    from benchkit.common import engine_config
    from benchkit.core import core_process
    from benchkit.workload import build_workload

    config = engine_config()
    work = build_workload(100_000, 2_000, time.time())
    states = core_process(work.events, config)
    if OFFSET_BASE >= 0:
        with_offsets(states, work.records, OFFSET_BASE)
    return list(states.values()), config


OFFSET_BASE = 0  # --offset-base: where each input topic-partition's offsets start


def with_offsets(states: dict[str, CustomerState], records: list[tuple[str, bytes, bytes]], base: int) -> None:
    """Set each state's applied offsets (core.applied) as the worker's would be after reading
    ``records`` in order from fresh topics (offsets from ``base``) with the catalogue's partitions."""
    from forethought.core.applied import advanced
    from forethought.ops.topics import BEHAVIOUR_INPUTS, load_catalogue, partition_of

    partitions = load_catalogue().partitions
    offsets: dict[tuple[str, int], int] = {}
    for topic, key, _raw in records:
        partition = partition_of(key, partitions)
        offset = offsets[(topic, partition)] = offsets.get((topic, partition), base - 1) + 1
        state = states[key.decode()]
        state.applied = advanced(state.applied, BEHAVIOUR_INPUTS.index(topic), partition, offset)


def replay_states(path: Path) -> tuple[list[CustomerState], EngineConfig]:
    """The final states of ``forethought replay FILE`` (default engine settings, builtin playbooks)."""
    from forethought.replay.reader import sorted_lines
    from forethought.replay.runner import Replayer

    config = EngineConfig()
    replay = Replayer(config)
    for line in sorted_lines([path]):
        replay.feed(line)
    replay.finish()
    return list(replay.states.values()), config


def _best(runs: dict[str, Callable[[], Any]], n: int, rounds: int = 15) -> dict[str, float]:
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.process_time()
            run()
            best[name] = min(best[name], (time.process_time() - started) / n * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replay", type=Path, help="replay this file and measure its final states")
    parser.add_argument("--offset-base", type=int, default=0,
                        help="input offsets start here (a long-running topic's are large: 1e9 → 5 bytes each)")
    parser.add_argument("--no-offsets", action="store_true", help="states without applied offsets (before #12)")
    args = parser.parse_args()
    global OFFSET_BASE
    OFFSET_BASE = -1 if args.no_offsets else args.offset_base
    states, config = replay_states(args.replay) if args.replay else bench_states()
    binary = [s.to_bytes() for s in states]
    json_ = [orjson.dumps(s.to_dict()) for s in states]
    assert all(CustomerState.from_bytes(raw, config) == s for raw, s in zip(binary, states))
    for name, raws in (("json", json_), ("binary", binary)):
        sizes = sorted(map(len, raws))
        print(f"{name:6} bytes per customer: mean {statistics.fmean(sizes):6.0f}  p50 {sizes[len(sizes) // 2]:5}  "
              f"p99 {sizes[int(len(sizes) * 0.99)]:5}  max {sizes[-1]:5}  ({len(sizes):,} customers)")
    t = _best({
        "json encode": lambda: [orjson.dumps(s.to_dict()) for s in states],
        "json decode": lambda: [CustomerState.from_dict(orjson.loads(raw), config) for raw in json_],
        "binary encode": lambda: [s.to_bytes() for s in states],
        "binary decode": lambda: [CustomerState.from_bytes(raw, config) for raw in binary],
    }, len(states))
    print("CPU µs per state: " + "  ".join(f"{k} {v:.1f}" for k, v in t.items()))
    print(f"binary / json: encode {t['binary encode'] / t['json encode']:.2f}, "
          f"decode {t['binary decode'] / t['json decode']:.2f}, round trip "
          f"{(t['binary encode'] + t['binary decode']) / (t['json encode'] + t['json decode']):.2f}")


if __name__ == "__main__":
    main()
