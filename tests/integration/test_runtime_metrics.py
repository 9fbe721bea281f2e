"""The real worker and the real senders expose process metrics and forethought_build_info on /metrics.

Both run as their own processes (``forethought worker``, ``forethought senders run``) against the
real broker, and their ``/metrics`` is scraped over HTTP and read with prometheus_client's parser,
as Prometheus would: a memory panel or a version query on the dashboard needs exactly these series.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
import urllib.request
from importlib.metadata import version
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from worker_kit import Deployment

import forethought
from forethought.ops.process import free_port, running_worker, stop_process, wait_ready

EXPECTED_BUILD = {
    "version": forethought.__version__,
    "python": platform.python_version(),  # the subprocesses run this same interpreter
    "faust": version("faust-streaming"),
    "river": version("river"),
}


@pytest.fixture
async def deployment(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Deployment:
    return await Deployment.create(kafka_bootstrap, topic_prefix, tmp_path)


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """GET ``url``/metrics and parse it: sample name → [(labels, value)]."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def assert_runtime_metrics(samples: dict[str, list[tuple[dict[str, str], float]]], started: float) -> None:
    """Process metrics of the scraped process (not of pytest's), the platform, and build info = 1."""
    ((_, rss),) = samples["process_resident_memory_bytes"]
    assert rss > 10 * 1024 * 1024, "a Python process with Faust or aiokafka loaded holds more than 10 MiB"
    ((_, start),) = samples["process_start_time_seconds"]
    assert start >= started - 1, "the start time is the scraped process's, which began after the test did"
    assert samples["process_cpu_seconds_total"][0][1] > 0
    assert samples["process_open_fds"][0][1] > 0
    ((labels, _),) = samples["python_info"]
    assert labels["version"] == platform.python_version()
    assert samples["forethought_build_info"] == [(EXPECTED_BUILD, 1.0)]


def spawn_senders(deployment: Deployment, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {"FORETHOUGHT_KAFKA_BOOTSTRAP": deployment.bootstrap, "FORETHOUGHT_TOPIC_PREFIX": deployment.prefix,
           "FORETHOUGHT_APP_ID": deployment.app_id, "FORETHOUGHT_LOG_LEVEL": "INFO"}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "forethought.cli", "senders", "run", "--channel", "console", "--web-port", str(port)],
            env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, 60)
    except (RuntimeError, TimeoutError) as exc:
        stop_process(proc)
        raise AssertionError(f"{exc}\n{log_path.read_text(errors='replace')[-3000:]}") from exc
    return proc


async def test_the_worker_exposes_process_metrics_and_build_info(deployment: Deployment) -> None:
    started = time.time()
    with running_worker(deployment.env(), deployment.workdir / "worker.log", deployment.url):
        samples = scrape(deployment.url)
    assert_runtime_metrics(samples, started)
    assert "forethought_events_in_total" in samples or "forethought_customers" in samples, "the worker's own"


async def test_the_senders_expose_process_metrics_and_build_info(deployment: Deployment) -> None:
    started, port = time.time(), free_port()
    proc = spawn_senders(deployment, port, deployment.workdir / "senders.log")
    try:
        samples = scrape(f"http://127.0.0.1:{port}")
    finally:
        assert stop_process(proc) == 0, "SIGTERM: a clean exit"
    assert_runtime_metrics(samples, started)
    assert ({"channel": "console", "status": "delivered"}, 0.0) in samples["forethought_sender_sends_total"]
