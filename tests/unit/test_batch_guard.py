"""An undecodable record batch is skipped and reported by offset; the records around it still arrive.

These drive aiokafka's own fetch-side iterator (``PartitionRecords``) with real record batches built by
aiokafka; the end-to-end proof through the broker is tests/integration/test_compression.py.
"""

from __future__ import annotations

import doctest
import struct

import aiokafka.codec
import pytest
from aiokafka.consumer import fetcher
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition
from pydantic import ValidationError

from forethought.ops import batch_guard, compression
from forethought.ops.compression import CODECS, compression_type
from forethought.ops.settings import Settings
from forethought.senders.settings import SenderAppSettings

LZ4, NONE = 3, 0
TP = TopicPartition("events.errors", 3)


def batch(base: int, count: int, codec: int) -> bytes:
    """One v2 record batch holding offsets ``base .. base+count-1``, compressed with ``codec``."""
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=0, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for i in range(count):
        builder.append(i, timestamp=None, key=b"k", value=b"v%d" % (base + i), headers=[])
    raw = builder.build()
    struct.pack_into(">q", raw, 0, base)  # the broker assigns the base offset (outside the CRC)
    return bytes(raw)


def fetched(data: bytes, fetch_offset: int = 0) -> fetcher.PartitionRecords:
    return fetcher.PartitionRecords(TP, MemoryRecords(data), [], fetch_offset, None, None, True, 0)


@pytest.fixture
def inbox() -> batch_guard.Inbox:
    box = batch_guard.watch([TP.topic])
    yield box
    batch_guard.unwatch(box)


def test_the_seam_the_guard_needs_is_still_in_aiokafka() -> None:
    assert batch_guard.seam_available()
    batch_guard.install()
    assert getattr(fetcher.PartitionRecords, "forethought_guarded", False)


def test_an_lz4_batch_without_its_codec_is_skipped_and_the_plain_records_around_it_arrive(
    inbox: batch_guard.Inbox, monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = batch(0, 2, NONE) + batch(2, 3, LZ4) + batch(5, 1, NONE)
    monkeypatch.setattr(aiokafka.codec, "cramjam", None)  # as on a machine without the codec libraries
    records = fetched(data)
    assert [r.offset for r in records] == [0, 1, 5]
    assert records.next_fetch_offset == 6, "the position moves past the skipped batch"
    [skipped] = inbox.drain()
    assert (skipped.topic, skipped.partition, skipped.first_offset, skipped.last_offset) == (TP.topic, 3, 2, 4)
    assert skipped.codec == "lz4" and "UnsupportedCodecError" in skipped.error
    assert inbox.drain() == [], "reported once"
    assert list(fetched(data)) != [] and inbox.drain() == [], "fetched again: not queued twice"


def test_with_the_codec_installed_an_lz4_batch_is_read(inbox: batch_guard.Inbox) -> None:
    records = fetched(batch(0, 2, NONE) + batch(2, 3, LZ4))
    assert [(r.offset, r.value) for r in records][2:] == [(2, b"v2"), (3, b"v3"), (4, b"v4")]
    assert inbox.drain() == []


def test_a_batch_with_a_wrong_crc_is_skipped_not_raised(inbox: batch_guard.Inbox) -> None:
    bad = bytearray(batch(2, 2, NONE))
    bad[-1] ^= 0xFF  # a flipped bit in the last record
    records = fetched(batch(0, 2, NONE) + bytes(bad) + batch(4, 1, NONE))
    assert [r.offset for r in records] == [0, 1, 4]
    [skipped] = inbox.drain()
    assert (skipped.first_offset, skipped.last_offset) == (2, 3) and "CRC" in skipped.error


def test_garbage_inside_a_compressed_batch_is_skipped(inbox: batch_guard.Inbox) -> None:
    from aiokafka.record.util import calc_crc32c

    raw = bytearray(batch(0, 4, LZ4))
    raw[61:] = b"\x00" * (len(raw) - 61)  # the compressed payload (after the 61-byte header) zeroed
    struct.pack_into(">I", raw, 17, calc_crc32c(bytes(raw[21:])))  # ... under a valid CRC
    records = fetched(bytes(raw) + batch(4, 1, NONE))
    assert [r.offset for r in records] == [4]
    [skipped] = inbox.drain()
    assert (skipped.first_offset, skipped.last_offset, skipped.codec) == (0, 3, "lz4")


def test_a_skip_on_an_unwatched_topic_is_not_queued_for_others(inbox: batch_guard.Inbox,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    data = batch(0, 1, LZ4)
    monkeypatch.setattr(aiokafka.codec, "cramjam", None)
    other = fetcher.PartitionRecords(TopicPartition("elsewhere", 0), MemoryRecords(data),
                                     [], 0, None, None, True, 0)
    assert list(other) == []
    assert inbox.drain() == []


@pytest.mark.parametrize("codec", CODECS)
def test_every_codec_name_is_one_aiokafka_producers_accept(codec: str) -> None:
    from aiokafka.producer.producer import AIOKafkaProducer

    assert compression_type(codec) in (None, *AIOKafkaProducer._COMPRESSORS)


@pytest.mark.parametrize("module", [batch_guard, compression])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_the_compression_setting_reads_the_environment_and_rejects_unknown_codecs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().kafka_compression == "none"
    monkeypatch.setenv("FORETHOUGHT_KAFKA_COMPRESSION", "zstd")
    assert Settings().kafka_compression == "zstd"
    assert SenderAppSettings().kafka_compression == "zstd", "the senders read the same variable"
    monkeypatch.setenv("FORETHOUGHT_KAFKA_COMPRESSION", "brotli")
    with pytest.raises(ValidationError, match="kafka_compression"):
        Settings()
