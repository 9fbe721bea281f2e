"""Where Kafka's default partitioner puts a key: murmur2, as the Java client and aiokafka compute it.

Pure (no Kafka client imported), so replay and the core's callers can place a customer on the
partition whose models the worker keeps for it without pulling in aiokafka.

The hash is Kafka's ``Utils.murmur2`` (seed ``0x9747b28c``); these values are the Java client's own
test vectors, as signed 32-bit integers:

>>> [signed(murmur2(text.encode())) for text in ("21", "foobar", "abc", "a-little-bit-long-string")]
[-973932308, -790332482, 479470107, -985981536]
>>> partition_of(b"c1", 4)
3
"""

from __future__ import annotations

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 hash of ``data``, as an unsigned integer."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    tail = length - length % 4
    for i in range(0, tail, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length - tail
    if rest >= 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def signed(value: int) -> int:
    """An unsigned 32-bit value read as Java's signed ``int``.

    >>> signed(0xFFFFFFFF), signed(7)
    (-1, 7)
    """
    return value - (1 << 32) if value & 0x80000000 else value


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` among ``partitions``: where the worker
    keeps the customer's state and models, and which partition's models replay uses for them.

    >>> partition_of(b"c1", 4) == partition_of(b"c1", 4), partition_of(b"anything", 1)
    (True, 0)
    """
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, got {partitions}")
    return (murmur2(key) & 0x7FFFFFFF) % partitions
