"""The Faust app: topics, the customer-state table, the behaviour agent and the timers.

A thin adapter: every decision is made by :class:`BatchProcessor` and the core.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import faust
from faust.exceptions import NotReady
from faust.types import TP

from forethought.ops import batch_guard
from forethought.ops.compression import compression_type
from forethought.ops.kafka_security import configure_changelogs, faust_options
from forethought.ops.logs import get_logger
from forethought.ops.metrics import Metrics
from forethought.ops.playbooks import PlaybookSource
from forethought.ops.settings import Settings
from forethought.ops.topics import BEHAVIOUR_INPUTS, Catalogue, load_catalogue, partition_of
from forethought.stream.acks import finish_batch, refuse_stale_acks, stop_unacknowledged, track_changelog
from forethought.stream.ordered import OrderedBatches
from forethought.stream.outputs import Outputs
from forethought.stream.processor import BatchProcessor, RawRecord
from forethought.stream.recovery import Recovery, broker_answers
from forethought.stream.rekey import headers_of
from forethought.stream.rewind import rewind_faust, seek_quietly
from forethought.stream.running import Worker, count_playbooks
from forethought.stream.table_store import DueHints, count_restored, rocksdb_options, store_url, stored_customers
from forethought.stream.web import readiness, register_views

log = get_logger("worker")
FAUST_PAGES_OFF = ("web_router_enabled", "web_tables_enabled", "web_graph_enabled", "web_stats_enabled",
                   "web_metrics_enabled")


def has_pending(app: faust.App, processor: BatchProcessor, topic: str, partition: int) -> bool:
    """Whether the broker holds records of ``topic``/``partition`` this worker has not processed."""
    try:
        highwater: int | None = app.consumer.highwater(TP(topic, partition))  # None before the first fetch
    except Exception:  # noqa: BLE001 - no consumer yet, or the partition is not assigned
        return False
    if highwater is None:
        return True  # its lag is unknown (assigned, no fetch answered yet): possibly pending, as in KIP-695
    return highwater > processor.processed.get((topic, partition), highwater)


def faust_broker_url(bootstrap: str) -> str:
    """``h1:9092,h2:9092`` → ``kafka://h1:9092;kafka://h2:9092``."""
    return ";".join(f"kafka://{server.strip()}" for server in bootstrap.split(","))


def build_worker(settings: Settings, catalogue: Catalogue | None = None) -> Worker:
    """Create the app and wire agents, timers and web views to a :class:`BatchProcessor`.

    An invalid playbook file raises :class:`~forethought.ops.playbooks.PlaybookFileError` here.
    """
    catalogue = catalogue or load_catalogue(settings.topics_file)
    playbooks = PlaybookSource.open(settings.playbooks_file)
    app = _create_app(settings, catalogue)
    metrics = Metrics()
    options = rocksdb_options(settings.rocksdb_cache_mb) if settings.state_store == "rocksdb" else None
    table = app.Table(
        "customer_state", default=None, partitions=catalogue.partitions, use_partitioner=True,
        key_type=bytes, value_type=bytes, help="CustomerState per customer_id (JSON).", options=options,
    )
    profiles = app.Table(
        "customer_profile", default=None, partitions=catalogue.partitions, use_partitioner=True,
        key_type=bytes, value_type=bytes, help="Latest profile and unsubscribes per customer_id (JSON).",
        options=options and dict(options),  # Faust's store takes keys out of the dict it is given
    )
    checkpoints = app.Table(  # keys hash to the partition they hold (BatchProcessor.checkpoint_key)
        "model_checkpoint", default=None, partitions=catalogue.partitions, use_partitioner=True,
        key_type=bytes, value_type=bytes, help="River models per input partition (versioned checkpoint).",
        options=options and dict(options),
    )
    for state_table in (table, profiles, checkpoints):  # RocksDB: how much of the changelog a start replays
        count_restored(state_table, metrics.state_restored.labels(table=state_table.name).inc)
    configure_changelogs((table, profiles, checkpoints), settings)  # replication factor, min.insync.replicas
    kinds = {settings.topic(t): frozenset(catalogue.by_name[t].kinds) for t in BEHAVIOUR_INPUTS}
    processor = BatchProcessor(
        settings.engine, table, kinds, metrics, settings.max_event_bytes,
        idle_grace=settings.idle_grace,
        partition_for=lambda key: partition_of(key, catalogue.partitions), profiles=profiles, rules=playbooks.rules,
        checkpoints=checkpoints, deadletter_max_bytes=settings.deadletter_max_bytes,
        cache_customers=settings.state_cache_customers,
    )
    if settings.state_store == "rocksdb":
        processor.table_on_disk = True
        processor.due_hints = DueHints(Path(settings.data_dir) / "due-hints.db")  # the index rebuild's shortcut
    processor.pending = lambda topic, partition: has_pending(app, processor, topic, partition)
    processor.strict_topics = frozenset(settings.topic(t) for t in catalogue.strict_topics)
    if settings.model_signing_key is not None:
        processor.signing_key = settings.model_signing_key.get_secret_value().encode()
    worker = Worker(settings, app, processor, metrics, catalogue.partitions, asyncio.Lock(), playbooks)
    worker.recovery = Recovery(metrics)
    worker.ordered = OrderedBatches(  # event-time order across the inputs of each partition number
        lambda: app.consumer, kinds, settings.max_task_idle_seconds, max_buffered=20 * settings.batch_size,
        max_event_bytes=settings.max_event_bytes, processed=processor.processed,
        generation=lambda: app.consumer_generation_id)
    refuse_stale_acks(app, kinds)  # and of input records no batch took in (Faust drains its stream at a stop)
    rewind_faust(app, kinds)  # records dropped around a rebalance are read again, committed or not
    seek_quietly(app.consumer)  # and no record is handed out while Faust seeks (no hole, no double)
    processor.checkpoint_every = settings.model_checkpoint_seconds  # models are checkpointed with the flushes
    for state_table in (table, profiles, checkpoints):
        track_changelog(state_table, worker.changelog_pending)
    count_playbooks(worker)
    worker.agent, worker.outputs = _wire(worker, kinds)
    register_views(worker)
    return worker


def _create_app(settings: Settings, catalogue: Catalogue) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=faust_broker_url(settings.kafka_bootstrap),
        store=store_url(settings.state_store),  # rocksdb: forethought.stream.table_store
        datadir=str(settings.data_dir),
        topic_partitions=catalogue.partitions,
        topic_replication_factor=max(settings.kafka_replication_factor, 1),  # changelogs: configure_changelogs
        topic_disable_leader=True,
        **web_settings(settings),
        broker_commit_interval=settings.commit_interval_seconds,
        **membership_settings(settings),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=settings.producer_linger_ms / 1000,  # many changelog/trigger records per produce request
        producer_compression_type=compression_type(settings.kafka_compression),
        stream_wait_empty=False,
        table_standby_replicas=0,
        **faust_options(settings),  # TLS/SASL broker_credentials
    )
    for flag in FAUST_PAGES_OFF:  # Faust's APP_WEB_*_ENABLED variables outrank keyword arguments
        setattr(app.conf, flag, False)
    return app


def membership_settings(settings: Settings) -> dict[str, Any]:
    """Faust's group membership options: a short session so a dead worker's partitions move within
    seconds, and static membership when ``kafka_group_instance_id`` is set (docs/durability.md).

    >>> membership_settings(Settings(kafka_group_instance_id="worker-0"))["consumer_group_instance_id"]
    'worker-0'
    """
    return {"broker_session_timeout": settings.kafka_session_timeout_seconds,
            "broker_heartbeat_interval": settings.kafka_heartbeat_seconds,
            "consumer_group_instance_id": settings.kafka_group_instance_id}


def web_settings(settings: Settings) -> dict[str, Any]:
    """Faust's web server with only our views (and its ``/`` status page): its ``/router`` (cluster
    topology), ``/table`` (table data, our profiles included), ``/graph``, ``/stats`` and
    ``/performance`` pages are off (:data:`FAUST_PAGES_OFF`; :func:`_create_app` enforces them again
    over Faust's own ``APP_WEB_*_ENABLED`` environment variables)."""
    return {"web_enabled": True, "web_bind": settings.web_host, "web_host": settings.web_host,
            "web_port": settings.web_port, "canonical_url": settings.web_canonical_url,  # advertised to the group
            **dict.fromkeys(FAUST_PAGES_OFF, False)}


def _wire(worker: Worker, kinds: dict[str, frozenset[str]]) -> tuple[faust.types.AgentT, Outputs]:
    app, settings, processor = worker.app, worker.settings, worker.processor
    source = app.topic(*kinds, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    outputs = Outputs(app, settings)
    skipped = batch_guard.watch(kinds)  # undecodable input batches: skipped by the fetcher, dead-lettered here

    ordered = worker.ordered
    assert ordered is not None

    async def process(events: list[faust.EventT]) -> None:
        """Run released events through the engine (the caller holds ``worker.lock``); they are
        acknowledged by :meth:`Worker.flush`, once their triggers and states are on the broker."""
        if worker.failure is not None:  # a flush failed meanwhile: process nothing more
            raise RuntimeError(f"the worker is stopping after a failure: {worker.failure}")
        records = [_raw(e) for e in events]
        # before these records can be acknowledged past a skipped batch, its dead letter is out
        await outputs.publish(worker.undecodable(skipped.drain()), worker.metrics)
        outbox = processor.handle(records, time.time())  # a failing record is dead-lettered
        worker.skip_past(skipped)
        await outputs.publish(outbox, worker.metrics, worker.in_flight)  # awaited at the flush
        worker.unflushed.extend(events)

    async def rebuild_index() -> None:
        """After an assignment, before any record or tick (the caller holds the lock): every stored
        state's deadline in its runtime (``Worker.rebuild_index``; ``/ready`` waits for it)."""
        if worker.index_stale:
            await worker.rebuild_index()

    async def release(fresh: list[faust.EventT], in_hand: list[faust.EventT]) -> None:
        """Buffer ``fresh`` events and process what the ordering releases (``in_hand`` collects it)."""
        async with worker.lock:
            if not app.flow_control.is_active():  # a rebalance: Faust reads all this again from the committed offsets
                return
            await rebuild_index()
            if not app.flow_control.is_active():  # one began while the rebuild awaited
                return
            ordered.add(fresh)
            in_hand += ordered.release()
            worker.metrics.ordering_buffered.set(len(ordered))
            worker.metrics.ordering_enforced.inc(ordered.groups.enforced - worker.enforced_seen)
            worker.enforced_seen = ordered.groups.enforced
            if in_hand:
                await process(in_hand)
            if worker.flush_due():
                worker.flush_behind()  # awaited in the background: batches go on meanwhile

    @app.agent(source, name="behaviour", concurrency=1)
    async def behaviour(stream: faust.StreamT) -> None:
        try:
            await _know_changelogs(app, processor)
            # Only take_events' own acknowledgements (of batches that finished) may reach the consumer:
            # it restores this flag when it ends, and with it True the stream would go on draining, and
            # acknowledging, records nobody processed (at a stop, or after a failed batch).
            stream.enable_acks = False
            async for events in stream.take_events(settings.batch_size, within=settings.batch_within_seconds):  # type: ignore[attr-defined]  # Stream has it, StreamT does not
                started, in_hand = time.perf_counter(), list[faust.EventT]()  # every event is held until flushed
                try:
                    await finish_batch(asyncio.ensure_future(release(list(events), in_hand)))
                except Exception as exc:  # noqa: BLE001 - outside one record: stop before acknowledging
                    await stop_unacknowledged(worker, [*in_hand, *events], exc)
                    return
                if in_hand:
                    worker.metrics.batch.observe(time.perf_counter() - started)
        except Exception as exc:  # /health and /ready report it: a dead agent must not look healthy
            worker.failure = f"{type(exc).__name__}: {exc}"
            log.exception("agent_failed", error=worker.failure)
            raise
        finally:  # a stop (Faust cancels the agent or ends its stream): what was handled goes out before the
            await asyncio.shield(worker.last_flush())  # last commit (last_flush does nothing after a failure)

    @app.timer(min(0.25, max(settings.max_task_idle_seconds / 4, 0.05)))
    async def release_waiting() -> None:  # a wait ran out and no new batch came to release what it held
        if worker.failure or not len(ordered) or app.rebalancing or app.in_recovery:
            return
        in_hand: list[faust.EventT] = []
        try:
            await release([], in_hand)
        except Exception as exc:  # noqa: BLE001 - a send or state write failed: stop, as for a batch
            await stop_unacknowledged(worker, in_hand, exc)

    @app.timer(settings.sweep_interval_seconds)
    async def sweep() -> None:
        if app.rebalancing or app.in_recovery or not app.assignor.assigned_actives() or worker.failure:
            return
        in_hand: list[faust.EventT] = []
        try:
            await release([], in_hand)  # what the ordering may release first: the sweep's stream time sees it
            async with worker.lock:
                owns = worker.owner()
                await rebuild_index()
                outbox = processor.sweep(time.time(), owns)  # a tick that raises is skipped and counted
                await outputs.publish(outbox, worker.metrics, worker.in_flight)  # awaited at the flush
        except Exception as exc:  # noqa: BLE001 - a send or state write failed: stop, as for a batch
            await stop_unacknowledged(worker, in_hand, exc)
            return
        _refresh_gauges(worker)

    @app.timer(min(worker.flush_seconds, 1.0))
    async def flush_states() -> None:  # write-behind: also when no batch comes to do it
        if worker.failure:
            return
        try:
            async with worker.lock:
                if worker.flush_due():
                    worker.flush_behind()
        except Exception as exc:  # noqa: BLE001 - a state write failed: stop before acknowledging
            await stop_unacknowledged(worker, [], exc)

    @app.timer(1.0)
    async def report_undecodable() -> None:  # a skipped batch with no record after it
        if letters := skipped.drain():
            async with worker.lock:
                await outputs.publish(worker.undecodable(letters), worker.metrics)
                worker.skip_past(skipped)

    recovery, probe = worker.recovery, next(iter(kinds))
    assert recovery is not None

    @app.timer(settings.broker_check_seconds)
    async def check_broker() -> None:  # /ready is false while the cluster does not answer
        recovery.broker_answered(await broker_answers(app, probe, timeout=max(settings.broker_check_seconds, 2.0)))

    @app.timer(0.5)
    async def follow_readiness() -> None:  # forethought_recovery_seconds{cause}
        recovery.observe(readiness(worker)["ready"])

    @app.timer(settings.playbook_reload_seconds)
    async def reload_playbooks() -> None:
        async with worker.lock:
            worker.reload_playbooks()

    @app.task
    async def reload_on_sighup() -> None:
        def hangup() -> None:
            log.info("sighup", action="reloading playbooks")
            worker.reload_playbooks(force=True)  # the event loop runs one callback at a time

        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, hangup)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # as below
    async def _stopping(sender: object, **_: object) -> None:
        # A clean stop: Faust has stopped fetching and not yet closed the tables' stores, stopped the
        # agent or made its last commit. The agent's own last flush (above) stays for what its stream
        # drains after this one; it depends on how Faust's actor ends, which is a race (a CI run lost
        # every state of a worker stopped within its first flush interval).
        await worker.last_flush()

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # Faust's signal type wants *args; it sends keywords
    async def _assigned(sender: object, assigned: object, **_: object) -> None:
        worker.index_stale = True
        ordered.forget()  # came in since the revocation: every partition is read again from its committed offset

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # as above
    async def _revoked(sender: object, revoked: set[TP], **_: object) -> None:
        async with worker.lock:
            if not worker.failure:
                try:  # the live states of leaving partitions reach their changelog first
                    await worker.flush()
                except Exception as exc:  # noqa: BLE001 - a send or state write failed: stop, as for a batch
                    await stop_unacknowledged(worker, [], exc)
                    return
            worker.release_models(revoked)
            dropped = ordered.forget()  # not acknowledged: read again from the committed offsets
            worker.metrics.ordering_buffered.set(len(ordered))
        if dropped:
            log.info("ordering_buffer_dropped", records=dropped, reason="rebalance")

    return behaviour, outputs


async def _know_changelogs(app: faust.App, processor: BatchProcessor) -> None:
    """Have the producer's metadata cover the tables' changelog topics before the first write.

    The tables pick changelog partitions with the producer's partitioner (``use_partitioner``),
    which reads the producer's cached metadata synchronously; a changelog topic created moments
    ago can be missing from it (aiokafka refreshes every 5 minutes), and the first write would
    crash the agent. ``partitions_for`` waits until the topic is known.
    """
    try:
        producer = app.producer._ensure_producer()  # type: ignore[attr-defined]  # faust-streaming 0.15's own accessor
    except NotReady:
        return  # no Kafka producer (agent test context): nothing to look up
    for table in (processor.table, processor.profiles, processor.checkpoints):
        topic = getattr(table, "changelog_topic", None)
        if topic is not None:
            await producer.partitions_for(topic.get_topic_name())


def _raw(event: faust.EventT) -> RawRecord:
    message = event.message
    return RawRecord(message.topic, message.partition, message.offset, message.key, message.value, message.timestamp,
                     headers_of(message.headers))


def _refresh_gauges(worker: Worker) -> None:
    table = worker.processor.table
    worker.metrics.customers.set(stored_customers(table))  # RocksDB: its estimate (len() reads every key)
    for partition, models in worker.processor.models.items():
        worker.metrics.model_labels_seen.labels(partition=str(partition)).set(models.labels)
    sample = [len(v) for _, v in zip(range(200), table.values())]
    if sample:
        worker.metrics.state_bytes.set(sum(sample) / len(sample))
    consumer = worker.app.consumer
    assigned = consumer.assignment()
    for (topic, partition), next_offset in worker.processor.processed.items():
        tp = TP(topic, partition)
        highwater = consumer.highwater(tp) if tp in assigned else None
        if highwater is not None:
            worker.metrics.consumer_lag.labels(topic=topic, partition=str(partition)).set(max(0, highwater - next_offset))

