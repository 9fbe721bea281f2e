"""The topic catalogue (``streams/topics.yaml``) and applying it to a broker idempotently.

>>> catalogue = load_catalogue()
>>> catalogue.by_name["customers.profile"].config()
{'cleanup.policy': 'compact'}
>>> catalogue.by_name["events.errors"].config()["retention.ms"]
'604800000'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from forethought.ops.kafka_security import BROKER_DEFAULT, KafkaSecurity, aiokafka_options, topic_options
from forethought.ops.settings import DEFAULT_TOPICS_FILE

INBOUND = ("events.clickstream", "events.errors", "events.usage")
BEHAVIOUR_INPUTS = (*INBOUND, "customers.profile", "engagement.outcomes", "forethought.rekeyed")
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PARTITIONER = DefaultPartitioner()


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives ``key``: where the worker keeps
    the customer's state and models, and which partition's models replay uses for them.

    >>> partition_of(b"c1", 4), partition_of(b"c1", 4) == partition_of(b"c1", 4)
    (3, True)
    """
    return _PARTITIONER(key, range(partitions), range(partitions))  # type: ignore[arg-type]


class TopicSpec(BaseModel):
    """One topic of the catalogue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    partitions: int = Field(ge=1, le=1024)
    retention: str
    key: str
    value_schema: str
    kinds: list[str] = Field(min_length=1)
    description: str

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        if value != "compact" and not re.fullmatch(r"\d+(ms|s|m|h|d)", value):
            raise ValueError(f"expected 'compact' or a duration like 7d, 12h, 30m; got {value!r}")
        return value

    def config(self) -> dict[str, str]:
        """Kafka topic-level configuration for this spec."""
        if self.retention == "compact":
            return {"cleanup.policy": "compact"}
        number, unit = re.fullmatch(r"(\d+)(ms|s|m|h|d)", self.retention).groups()  # type: ignore[union-attr]
        return {"retention.ms": str(int(number) * _UNITS[unit])}


class Catalogue(BaseModel):
    """All topics; the behaviour agent's inputs must share one partition count."""

    model_config = ConfigDict(frozen=True)

    topics: list[TopicSpec]

    @model_validator(mode="after")
    def _co_partitioned(self) -> Catalogue:
        names = {t.name for t in self.topics}
        missing = [n for n in BEHAVIOUR_INPUTS if n not in names]
        if missing:
            raise ValueError(f"catalogue lacks required topics {missing}")
        counts = {t.name: t.partitions for t in self.topics if t.name in BEHAVIOUR_INPUTS}
        if len(set(counts.values())) != 1:
            raise ValueError(f"behaviour inputs must share one partition count, got {counts}")
        return self

    @property
    def by_name(self) -> dict[str, TopicSpec]:
        return {t.name: t for t in self.topics}

    @property
    def partitions(self) -> int:
        """The partition count shared by the behaviour agent's inputs (and its table)."""
        return self.by_name[INBOUND[0]].partitions


class CatalogueError(ValueError):
    """The catalogue file is unreadable or invalid; the message names file and field."""


def load_catalogue(path: Path = DEFAULT_TOPICS_FILE) -> Catalogue:
    """Read and validate the catalogue, failing with the file and field in the message."""
    try:
        return Catalogue.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueError(f"{path}: {exc}") from exc
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise CatalogueError(f"{path}: {fields}") from exc


@dataclass(frozen=True, slots=True)
class TopicReport:
    """What ``create_topics`` did with each topic."""

    created: list[str]
    existing: list[str]
    mismatched: dict[str, str]


async def create_topics(bootstrap: str, catalogue: Catalogue, prefix: str = "",
                        security: KafkaSecurity | None = None) -> TopicReport:
    """Create every missing topic; report existing ones whose partition count differs.

    ``security`` (the settings) gives TLS/SASL, the replication factor and ``min.insync.replicas``.
    """
    security = security or KafkaSecurity()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000, **aiokafka_options(security))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = {f"{prefix}{t.name}": t for t in catalogue.topics}
        new = [
            new_topic(name, t.partitions, security.kafka_replication_factor, {**t.config(), **topic_options(security)})
            for name, t in wanted.items() if name not in existing
        ]
        created = await _create(admin, new)
        present = [name for name in wanted if name in existing]
        mismatched = await _partition_mismatches(admin, {n: wanted[n] for n in present})
        return TopicReport(created=created, existing=present, mismatched=mismatched)
    finally:
        await admin.close()


def new_topic(name: str, partitions: int, replication: int, config: dict[str, str]) -> NewTopic:
    """A ``NewTopic``; ``replication`` -1 asks for the broker's ``default.replication.factor``.

    aiokafka's ``NewTopic`` only takes -1 with an explicit replica assignment, while brokers since
    Kafka 2.4 (KIP-464) read -1 as "my default" in CreateTopics requests; so it is set afterwards.

    >>> new_topic("t", 3, -1, {}).replication_factor, new_topic("t", 3, 3, {}).replication_factor
    (-1, 3)
    """
    topic = NewTopic(name, partitions, 1 if replication == BROKER_DEFAULT else replication, topic_configs=config)
    topic.replication_factor = replication
    return topic


async def _create(admin: AIOKafkaAdminClient, new: list[NewTopic]) -> list[str]:
    created: list[str] = []
    for topic in new:  # one at a time: a concurrent creator must not fail the whole batch
        try:
            await admin.create_topics([topic])
            created.append(topic.name)
        except TopicAlreadyExistsError:
            pass
    return created


async def _partition_mismatches(admin: AIOKafkaAdminClient, specs: dict[str, TopicSpec]) -> dict[str, str]:
    if not specs:
        return {}
    described = await admin.describe_topics(list(specs))
    mismatched: dict[str, str] = {}
    for topic in described:
        name, actual = topic["topic"], len(topic["partitions"])
        if actual != specs[name].partitions:
            mismatched[name] = f"has {actual} partitions, catalogue says {specs[name].partitions}"
    return mismatched
