"""Helpers for tests and benchmarks that run a real worker (shipped with the package).

>>> FAST_ENGINE_ENV["FORETHOUGHT_ENGINE__BUCKET_SECONDS"]
'60'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TypeVar

from forethought.ops.process import free_port
from forethought.ops.topics import create_topics, load_catalogue

# Small, fast settings: one-minute buckets, silence after >= 20 s, sweeps twice a second.
FAST_ENGINE_ENV: dict[str, str] = {
    "FORETHOUGHT_ENGINE__BUCKET_SECONDS": "60",
    "FORETHOUGHT_ENGINE__VISIT_GAP_SECONDS": "0",
    "FORETHOUGHT_ENGINE__PRIOR_GAP_SECONDS": "1",
    "FORETHOUGHT_ENGINE__PRIOR_LOG_SD": "0.3",
    "FORETHOUGHT_ENGINE__SILENCE_MIN_SECONDS": "20",
    "FORETHOUGHT_ENGINE__BURST_MIN_ERRORS": "5",
    "FORETHOUGHT_ENGINE__ALLOWED_LATENESS_SECONDS": "600",
    "FORETHOUGHT_SWEEP_INTERVAL_SECONDS": "0.5",
    "FORETHOUGHT_COMMIT_INTERVAL_SECONDS": "0.5",
}


@dataclass
class WorkerDeployment:
    """One isolated worker deployment on a broker: its own topic prefix, consumer group and web port.

    >>> d = WorkerDeployment("127.0.0.1:9092", "t1.", Path("/tmp/w"), 7001)
    >>> d.topic("events.errors"), d.url, d.env(FORETHOUGHT_LOG_LEVEL="DEBUG")["FORETHOUGHT_APP_ID"]
    ('t1.events.errors', 'http://127.0.0.1:7001', 'ft-t1')
    """

    bootstrap: str
    prefix: str
    workdir: Path
    web_port: int
    app_prefix: ClassVar[str] = "ft"

    @classmethod
    async def create(cls: type[D], bootstrap: str, prefix: str, workdir: Path) -> D:
        """Create the catalogue's topics under ``prefix``; pick a free web port."""
        await create_topics(bootstrap, load_catalogue(), prefix)
        return cls(bootstrap, prefix, workdir, free_port())

    @property
    def url(self) -> str:
        """The worker's web root."""
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def app_id(self) -> str:
        """The worker's application id (consumer group), unique per deployment."""
        return f"{self.app_prefix}-{self.prefix.strip('.')}"

    def topic(self, name: str) -> str:
        """The prefixed name of catalogue topic ``name``."""
        return f"{self.prefix}{name}"

    def env(self, engine: Mapping[str, str] = FAST_ENGINE_ENV, **extra: str) -> dict[str, str]:
        """The worker's environment: engine settings plus this deployment's broker, names and paths."""
        return {**engine, "FORETHOUGHT_KAFKA_BOOTSTRAP": self.bootstrap, "FORETHOUGHT_TOPIC_PREFIX": self.prefix,
                "FORETHOUGHT_APP_ID": self.app_id, "FORETHOUGHT_WEB_PORT": str(self.web_port),
                "FORETHOUGHT_DATA_DIR": str(self.workdir / "worker"), "FORETHOUGHT_LOG_LEVEL": "INFO", **extra}


D = TypeVar("D", bound=WorkerDeployment)
