"""What a playbook may still do for one customer, from the policy ledger: its cooldown and the frequency
caps (:mod:`forethought.core.policy.decide` applies them, in its order of checks).

The cooldown runs from the playbook's sends *and* from its held-out decisions
(:class:`~forethought.core.ledger.Held`): a held-out customer was decided, without a message, so they
wait like a treated one. Caps count sends only: they protect the customer from messages, and a held-out
decision sent none.

>>> from forethought.core.ledger import Held, Sent
>>> ledger = PolicyLedger(sent=[Sent(0.0, "nudge", "email", 50)], held=[Held(10.0, "welcome")])
>>> ledger.decided_times(20.0, "welcome"), ledger.send_times(20.0)  # what the cooldown reads, what caps read
([10.0], [0.0])
>>> span(86_400.0), span(5400.0), span(90.5)
('1d', '90m', '90.5s')
"""

from __future__ import annotations

from collections.abc import Iterator

from forethought.core.ledger import PolicyLedger, Sent
from forethought.core.policy.rules import Cap, Playbook, Rules
from forethought.core.policy.timing import cap_allows

__all__ = ["SENT_AT", "caps_allow", "caps_text", "cooling", "span", "without_failed_send"]


def cooling(book: Playbook, ledger: PolicyLedger, now: float, fresh: bool) -> bool:
    """Within ``book``'s cooldown: it sent to the customer or held them out less than a cooldown ago, or
    (``fresh``: a new candidate) a trigger of it waits for its release. That trigger will be sent, so a
    second one would be suppressed at its own release, after a treated decision the held-out arm, decided
    at once, never makes."""
    if any(now - t < book.cooldown for t in ledger.decided_times(now, book.name)):
        return True
    return fresh and any(p.trigger["playbook"] == book.name for p in ledger.pending)


SENT_AT = "sent_at"  # in a trigger kept for a fallback (PolicyLedger.recent): when its send was noted


def without_failed_send(ledger: PolicyLedger, failed: Sent | None) -> PolicyLedger:
    """The ledger a fallback is planned with: ``failed``, the send whose delivery failed, left out, so
    that the fallback, which continues that decision on another channel, is held back neither by its
    own playbook's cooldown nor by caps counting a message that never arrived; every other send and
    held-out decision still counts. ``failed`` is known exactly (the kept trigger notes its send's
    time, :data:`SENT_AT`); None, or a send already forgotten, leaves the ledger as it is.

    >>> before, failed = Sent(50.0, "nudge", "email", 1), Sent(99.0, "nudge", "email", 1)
    >>> rival = Sent(99.0, "tip", "email", 1)
    >>> ledger = PolicyLedger(sent=[before, failed, rival])
    >>> without_failed_send(ledger, Sent(99.0, "nudge", "email", 1)).sent == [before, rival]
    True
    >>> len(ledger.sent), without_failed_send(ledger, None) is ledger  # the customer's own ledger is left as it is
    (3, True)
    """
    if failed is None or failed not in ledger.sent:
        return ledger
    kept = ledger.copy()
    kept.sent.remove(failed)
    return kept


def _caps(book: Playbook, rules: Rules) -> Iterator[tuple[Cap, bool]]:
    """Every cap that applies to ``book``, with True for the playbook's own (per-playbook) caps."""
    yield from ((cap, False) for cap in rules.caps)
    yield from ((cap, True) for cap in book.caps)


def caps_allow(book: Playbook, channel: str, ledger: PolicyLedger, rules: Rules, now: float) -> bool:
    for cap, own in _caps(book, rules):
        if cap.channel is not None and cap.channel != channel:
            continue
        times = ledger.send_times(now, channel=cap.channel, playbook=book.name if own else None)
        if not cap_allows(times, now, cap.limit, cap.window):
            return False
    return True


def caps_text(book: Playbook, channel: str, ledger: PolicyLedger, rules: Rules, now: float) -> str:
    parts = []
    for cap, own in _caps(book, rules):
        if cap.channel is None or cap.channel == channel:
            used = len([t for t in ledger.send_times(now, channel=cap.channel, playbook=book.name if own else None)
                        if t > now - cap.window])
            scope = "this playbook" if own else (cap.channel or "all channels")
            parts.append(f"{scope} {used}/{cap.limit} per {span(cap.window)}")
    return "; ".join(parts) or "none apply"


def span(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
