"""Kafka compression codecs: the one setting every producer of the project reads.

Consumers need no setting: every codec Kafka has (gzip, snappy, lz4, zstd) is decoded, because
aiokafka's codec extras (``cramjam``) are a dependency. Producers compress with
``Settings.kafka_compression`` (``FORETHOUGHT_KAFKA_COMPRESSION``)::

    >>> compression_type("none") is None
    True
    >>> compression_type("zstd")
    'zstd'
    >>> producer_options("lz4")
    {'compression_type': 'lz4'}
    >>> compression_type("brotli")
    Traceback (most recent call last):
    ...
    ValueError: unknown Kafka compression 'brotli'; expected one of none, gzip, snappy, lz4, zstd
"""

from __future__ import annotations

from typing import Any, Literal, get_args

Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]
CODECS: tuple[str, ...] = get_args(Compression)


def compression_type(codec: str) -> str | None:
    """The ``compression_type`` aiokafka (and Faust's ``producer_compression_type``) expect."""
    if codec not in CODECS:
        raise ValueError(f"unknown Kafka compression {codec!r}; expected one of {', '.join(CODECS)}")
    return None if codec == "none" else codec


def producer_options(codec: str) -> dict[str, Any]:
    """Keyword arguments for ``AIOKafkaProducer`` that apply ``codec``."""
    return {"compression_type": compression_type(codec)}
