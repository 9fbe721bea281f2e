"""A running worker takes a changed playbook file on SIGHUP, and keeps the old one when the new is bad."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from worker_kit import Deployment, event, metric

from forethought.contracts.records import Trigger
from forethought.ops.process import running_worker

BOOK = """playbooks:
  - name: {name}
    on: [error_burst]
    channels: [in_app]
    priority: 70
"""


def burst(customer: str, at: float) -> list[tuple[bytes, bytes]]:
    return [event(customer, i, "error", at + i * 0.1, code="E500") for i in range(8)]


async def test_sighup_reloads_playbooks_and_a_bad_file_keeps_the_running_ones(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    deployment = await Deployment.create(kafka_bootstrap, topic_prefix, tmp_path)
    book = tmp_path / "playbooks.yaml"
    book.write_text(BOOK.format(name="first"))
    env = deployment.env(FORETHOUGHT_PLAYBOOKS_FILE=str(book), FORETHOUGHT_PLAYBOOK_RELOAD_SECONDS="3600")
    with running_worker(env, deployment.workdir / "worker.log", deployment.url) as proc:
        book.write_text(BOOK.format(name="second"))
        proc.send_signal(signal.SIGHUP)
        await deployment.wait_for("/metrics", lambda text: metric(text, "forethought_playbook_reloads_total",
                                                                   result="loaded") == 1)
        book.write_text(BOOK.format(name="Not A Name"))
        proc.send_signal(signal.SIGHUP)
        await deployment.wait_for("/metrics", lambda text: metric(text, "forethought_playbook_reloads_total",
                                                                   result="rejected") == 1)
        await deployment.produce("events.errors", burst("reload-1", time.time() - 5))
        records = await deployment.consume("engagement.triggers", until=1, match=lambda r: r.key == b"reload-1")
        assert proc.poll() is None, "a bad playbook file must not stop a running worker"
    assert [Trigger.model_validate_json(r.value).playbook for r in records] == ["second"]
    log = (deployment.workdir / "worker.log").read_text()
    assert "playbooks_rejected" in log and "playbooks.0.name" in log
