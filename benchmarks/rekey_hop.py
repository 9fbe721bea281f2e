"""What the re-key hop costs: trigger latency of records that take it against records that don't, one run.

One worker, one librdkafka (confluent-kafka) producer with its default partitioner: customers whose
CRC32 partition happens to be their murmur2 one go direct, the others through ``forethought.rekeyed``.
Each customer sends one burst of 8 critical errors (one burst at a time); the latency of its
``error_burst`` trigger is the trigger record's timestamp (set when the worker sends it) minus the
burst's last record's timestamp. Run from the repository root::

    .venv/bin/python benchmarks/rekey_hop.py [--customers 80]

Broker: ``$FORETHOUGHT_KAFKA_BOOTSTRAP``, else a LocalBroker started and stopped here. The figures
depend on the machine; compare the two groups of one run (docs/producing-from-other-clients.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
from clients_kit import confluent_produce, confluent_read_all  # noqa: E402
from worker_kit import Deployment, event  # noqa: E402

from forethought.devkafka import LocalBroker  # noqa: E402
from forethought.ops.process import running_worker  # noqa: E402
from forethought.ops.topics import partition_of  # noqa: E402


async def measure(bootstrap: str, customers: int, workdir: Path) -> dict[str, list[int]]:
    deployment = await Deployment.create(bootstrap, f"hop{uuid.uuid4().hex[:6]}.", workdir)
    last_sent: dict[bytes, int] = {}
    with running_worker(deployment.env(), workdir / "worker.log", deployment.url):
        for n in range(customers):
            customer, now = f"hop-{n}", time.time()
            burst = [(*event(customer, i, "error", now - 1 + i * 0.01, code="E500", severity="critical"), [], None)
                     for i in range(8)]
            sent = await confluent_produce(bootstrap, deployment.topic("events.errors"), burst)
            last_sent[customer.encode()] = max(s.timestamp_ms for s in sent)
            await asyncio.sleep(0.25)  # bursts one at a time: none waits behind another
        await asyncio.sleep(5)
        triggers = await confluent_read_all(bootstrap, deployment.topic("engagement.triggers"))
    groups: dict[str, list[int]] = {"direct": [], "re-keyed": []}
    for trigger in triggers:
        if trigger.key is None or json.loads(trigger.value)["playbook"] != "error_burst":
            continue
        hop = zlib.crc32(trigger.key) % 4 != partition_of(trigger.key, 4)  # librdkafka's default: CRC32
        groups["re-keyed" if hop else "direct"].append(trigger.timestamp_ms - last_sent[trigger.key])
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=80)
    args = parser.parse_args()
    broker = None if os.environ.get("FORETHOUGHT_KAFKA_BOOTSTRAP") else LocalBroker()
    try:
        bootstrap = os.environ.get("FORETHOUGHT_KAFKA_BOOTSTRAP") or broker.start()  # type: ignore[union-attr]
        with tempfile.TemporaryDirectory() as tmp:
            groups = asyncio.run(measure(bootstrap, args.customers, Path(tmp)))
    finally:
        if broker is not None:
            broker.stop()
    for name, values in groups.items():
        values.sort()
        if values:
            print(f"{name:>9}: {len(values)} triggers, median {statistics.median(values):.0f} ms, "
                  f"p90 {values[int(0.9 * (len(values) - 1))]:.0f} ms")


if __name__ == "__main__":
    main()
