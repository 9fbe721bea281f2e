"""The SDK as a user installs it: a built wheel (not the editable checkout) in a fresh venv, offline.

Two distributions: ``forethought`` (the whole project) and ``forethought-client`` (clients/python: the SDK
alone). Each is built with ``pip wheel``, installed with ``--no-deps`` into a new venv that sees only the
closure of the wheel's declared dependencies (install_kit), and then, from a folder outside the
repository, constructs ``ForethoughtProducer()`` from the environment alone and sends to the real broker.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from install_kit import REPO, build_wheel, closure, fresh_venv, pip_check, run_in, wheel_metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from worker_kit import Deployment

from forethought.contracts.partitioning import partition_of
from forethought.ops.topics import create_topics, load_catalogue

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
WORKER_ONLY = ("faust", "mode", "river", "aiohttp", "jinja2", "typer", "rich", "prometheus_client", "structlog",
               "msgpack")
SEND = """
import asyncio, json, sys
import forethought
from forethought.client import ForethoughtProducer, events
from forethought.contracts import catalogue

async def main():
    async with ForethoughtProducer() as producer:   # everything from the environment
        delivery = await producer.send(
            events.click("wheel-7", target="buy", occurred_at="2026-01-02T03:04:05.678+01:00"),
            headers={"source": "wheel"}, traceparent=%(trace)r)
    print(json.dumps({
        "topic": delivery.topic, "partition": delivery.partition, "timestamp_ms": delivery.timestamp_ms,
        "worker_modules": sorted(m for m in %(worker)r if m in sys.modules),
        "catalogue": str(catalogue.DEFAULT_TOPICS_FILE), "package": forethought.__file__}))

asyncio.run(main())
"""
CAN_IMPORT = "import importlib.util, json; print(json.dumps({m: importlib.util.find_spec(m) is not None for m in %r}))"


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wheels")
    return {"forethought": build_wheel(REPO, out / "full"),
            "forethought-client": build_wheel(REPO / "clients" / "python", out / "client")}


def test_the_client_wheel_holds_the_sdk_contracts_and_catalogue_and_declares_no_worker_dependency(
    wheels: dict[str, Path],
) -> None:
    names, requires = wheel_metadata(wheels["forethought-client"])
    modules = {n for n in names if n.endswith(".py")}
    assert "forethought/contracts/topics.yaml" in names
    assert {"forethought/client/producer.py", "forethought/client/sync.py", "forethought/client/settings.py",
            "forethought/contracts/catalogue.py", "forethought/ops/compression.py"} <= modules
    allowed = ("forethought/client/", "forethought/contracts/", "forethought/__init__.py",
               "forethought/ops/__init__.py", "forethought/ops/compression.py", "forethought/ops/kafka_security.py")
    assert [n for n in modules if not n.startswith(allowed)] == []  # no worker, core, senders or CLI
    pulled = closure(requires)
    assert not pulled & {"faust-streaming", "river", "aiohttp", "jinja2", "typer", "rich", "mode-streaming"}, pulled
    # the same ranges as the full distribution, so either install behaves alike
    full = {canonicalize_name(r.name): r for r in map(Requirement, tomllib.loads(
        (REPO / "pyproject.toml").read_text())["project"]["dependencies"])}
    assert [r for r in requires if full.get(canonicalize_name(r.name)) != r] == []
    project = tomllib.loads((REPO / "clients" / "python" / "pyproject.toml").read_text())["project"]
    main = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert (project["version"], project["requires-python"]) == (main["version"], main["requires-python"])


def test_both_wheels_package_the_catalogue_byte_for_byte(wheels: dict[str, Path]) -> None:
    from zipfile import ZipFile

    for wheel in wheels.values():
        with ZipFile(wheel) as archive:
            assert archive.read("forethought/contracts/topics.yaml") == (REPO / "streams" / "topics.yaml").read_bytes()


@pytest.mark.parametrize("distribution", ["forethought-client", "forethought"])
def test_an_installed_wheel_sends_from_its_settings_alone(
    distribution: str, wheels: dict[str, Path], kafka_bootstrap: str, topic_prefix: str, tmp_path: Path,
) -> None:
    """What a user notices: after ``pip install`` (not editable), ``ForethoughtProducer()`` finds its topic
    catalogue, honours ``FORETHOUGHT_TOPIC_PREFIX``, shrugs off a bad worker-only variable, and sends with
    one await; the record is keyed, placed by murmur2, timestamped and labelled as sent."""
    import asyncio

    asyncio.run(create_topics(kafka_bootstrap, load_catalogue(), topic_prefix))
    python = fresh_venv(tmp_path / "venv", wheels[distribution])
    checked = pip_check(python)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    outside = tmp_path / "app"
    outside.mkdir()
    env = {"FORETHOUGHT_KAFKA_BOOTSTRAP": kafka_bootstrap, "FORETHOUGHT_TOPIC_PREFIX": topic_prefix,
           "FORETHOUGHT_WEB_PORT": "not-a-port", "FORETHOUGHT_LOG_LEVEL": "LOUD"}
    ran = run_in(python, SEND % {"trace": TRACE, "worker": WORKER_ONLY}, env, outside)
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["package"].startswith(str(tmp_path / "venv"))  # the installed copy, not the checkout
    assert result["catalogue"].startswith(str(tmp_path / "venv")) and result["catalogue"].endswith("topics.yaml")
    assert result["worker_modules"] == []
    assert result["topic"] == f"{topic_prefix}events.clickstream"
    deployment = Deployment(kafka_bootstrap, topic_prefix, tmp_path, 0)
    [record] = asyncio.run(deployment.consume("events.clickstream", until=1, match=lambda r: r.key == b"wheel-7"))
    partitions = load_catalogue().by_name["events.clickstream"].partitions
    assert (record.partition, result["partition"]) == (partition_of(b"wheel-7", partitions),) * 2
    assert record.timestamp == result["timestamp_ms"] == 1767319445678  # 2026-01-02T02:04:05.678Z
    assert dict(record.headers) == {"content-type": b"application/json", "traceparent": TRACE.encode(),
                                    "source": b"wheel"}
    if distribution == "forethought-client":  # installs light: the worker's packages are not even there
        found = json.loads(run_in(python, CAN_IMPORT % (WORKER_ONLY,), {}, outside).stdout)
        assert not any(found.values()), found
