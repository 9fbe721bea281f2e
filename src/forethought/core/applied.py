"""How far a customer's state has applied each input: exactly-once effects over at-least-once input.

Kafka delivers a record again after a crash when the state it changed was already on the
changelog but its offset was not committed yet. So each customer's state keeps, per input, the
next offset after the last record applied to it (:data:`Applied`); a record below that offset was
applied already and changes nothing (:func:`seen`).

The driver names each record's position as ``(lane, partition, offset)``: the lane is the input's
place in the driver's fixed list of input topics (the worker's: ``BEHAVIOUR_INPUTS``, append
only), so the state never holds a topic's name. A customer's records all come from one partition
number (records are co-partitioned by customer id), so the partition is kept once; a record from
another partition (the topic's partition count changed) starts afresh from it.

>>> applied = advanced(NOTHING, lane=1, partition=3, offset=41)
>>> applied, seen(applied, 1, 3, 41), seen(applied, 1, 3, 40), seen(applied, 1, 3, 42)
((3, 0, 42), True, True, False)
>>> seen(applied, 0, 3, 5), seen(applied, 1, 4, 5)  # another input; another partition
(False, False)
>>> applied = advanced(applied, 0, 3, 7)
>>> applied, decode(encode(applied)) == applied, len(encode(applied))
((3, 8, 42), True, 3)
"""

from __future__ import annotations

__all__ = ["MAX_LANES", "NOTHING", "Applied", "advanced", "decode", "encode", "seen"]

Applied = tuple[int, ...]
"""``(partition, next offset of lane 0, next offset of lane 1, ...)``; 0: nothing of that lane applied."""
NOTHING: Applied = ()
MAX_LANES = 64  # far beyond the inputs there are: a longer stored list is refused as malformed
_MAX_BITS = 63


def seen(applied: Applied, lane: int, partition: int, offset: int) -> bool:
    """Whether the record at ``offset`` of ``lane``'s ``partition`` was applied to this state already."""
    return len(applied) > lane + 1 and applied[0] == partition and offset < applied[lane + 1]


def advanced(applied: Applied, lane: int, partition: int, offset: int) -> Applied:
    """``applied`` once the record at ``offset`` of ``lane``'s ``partition`` has been applied too."""
    if not applied or applied[0] != partition:
        applied = (partition,)
    nexts = list(applied[1:])
    if len(nexts) <= lane:
        nexts.extend([0] * (lane + 1 - len(nexts)))
    nexts[lane] = max(nexts[lane], offset + 1)
    return (partition, *nexts)


def encode(applied: Applied) -> bytes:
    """Unsigned LEB128 varints, one per number (an offset below 2**21 takes 3 bytes at most).

    >>> encode((2, 0, 300)).hex()
    '0200ac02'
    """
    out = bytearray()
    for n in applied:
        while n >= 0x80:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        out.append(n)
    return bytes(out)


def decode(raw: bytes) -> Applied:
    """Inverse of :func:`encode`; ValueError on a truncated, oversized or too long list.

    >>> decode(bytes([0x80]))
    Traceback (most recent call last):
    ValueError: a stored applied offsets list is malformed
    """
    values: list[int] = []
    n = shift = 0
    for byte in raw:
        n |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            if shift >= _MAX_BITS:
                raise _malformed()
            continue
        values.append(n)
        n = shift = 0
    if shift or len(values) > MAX_LANES + 1:
        raise _malformed()
    return tuple(values)


def _malformed() -> ValueError:
    return ValueError("a stored applied offsets list is malformed")
