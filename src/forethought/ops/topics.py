"""Applying the topic catalogue (:mod:`forethought.contracts.catalogue`) to a broker, idempotently.

The catalogue's names and Kafka's default partitioner are re-exported here for the runtime's callers.

>>> load_catalogue().by_name["customers.profile"].config()
{'cleanup.policy': 'compact'}
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from forethought.contracts.catalogue import (
    BEHAVIOUR_INPUTS,
    DEFAULT_TOPICS_FILE,
    INBOUND,
    Catalogue,
    CatalogueError,
    TopicSpec,
    load_catalogue,
)
from forethought.contracts.partitioning import partition_of
from forethought.ops.kafka_security import BROKER_DEFAULT, KafkaSecurity, aiokafka_options, topic_options

__all__ = [
    "BEHAVIOUR_INPUTS", "DEFAULT_TOPICS_FILE", "INBOUND", "Catalogue", "CatalogueError", "TopicReport", "TopicSpec",
    "create_topics", "load_catalogue", "new_topic", "partition_of",
]


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
