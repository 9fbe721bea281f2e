"""The policy's memory of one customer, kept in its state: what was sent, which episodes fired, what waits,
whom a playbook held out (:class:`Held`: its cooldown runs from that decision as from a send).

It lives inside the changelogged customer state, so caps, cooldowns, deferred triggers and
lift measurement survive restarts. A plain data type below :mod:`forethought.core.state` (which holds
one) and :mod:`forethought.core.policy` (which reads and writes it). It also keeps the customer's
recent decisions (:class:`Noted`: sent, deferred, held out, suppressed with its reason...), so
"why (not)?" has an answer later (docs/why-not.md). Everything is bounded:

>>> ledger = PolicyLedger()
>>> ledger.mark_episode("error_burst", "burst-60")
False
>>> ledger.mark_episode("error_burst", "burst-60")
True
>>> PolicyLedger.from_dict(ledger.to_dict()) == ledger
True
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

EPISODE_DIGEST_BYTES = 6
MAX_EPISODES = 16
MAX_SENT = 32
MAX_RECENT = 2
MAX_WATCH = 8
MAX_DECISIONS = 16
MAX_PULLS = 4
MAX_HELD = 16  # one per playbook: a global-control customer is held out of every live playbook
PULL_DIGEST_BYTES = 6
REPEATS = frozenset({"suppressed", "held_out", "shadow"})  # verdicts counted when they repeat (Noted.count)


@dataclass(frozen=True, slots=True)
class Sent:
    """A trigger that went out: when, from which playbook, on which channel, at what priority."""

    at: float
    playbook: str
    channel: str
    priority: int


@dataclass(frozen=True, slots=True)
class Held:
    """A decision that held the customer out of ``playbook`` (its holdout or the global control group) at
    ``at``. Nothing was sent, but the playbook's cooldown runs from it as from a send
    (:mod:`forethought.core.policy.decide`), so each episode is decided once in either arm; frequency caps
    and arbitration, which protect the customer from messages, do not count it."""

    at: float
    playbook: str


@dataclass(frozen=True, slots=True)
class Watch:
    """A decision whose effect is being measured: did the customer come back before ``until``?"""

    playbook: str
    group: str  # "treated", "holdout" or "global_control"
    since: float
    until: float
    x: bytes = b""  # the features at decision time, for the uplift estimator (core.uplift.snapshot)


@dataclass(frozen=True, slots=True)
class Pending:
    """A trigger held until ``release_at`` (quiet hours), as the trigger's JSON form."""

    release_at: float
    signal: str
    trigger: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Pull:
    """A sent trigger with a variant whose reward is awaited until ``until`` (:mod:`forethought.core.bandit`);
    ``trigger`` is a digest of its trigger id (:func:`pull_digest`)."""

    trigger: bytes
    playbook: str
    variant: str
    until: float


def pull_digest(trigger_id: str) -> bytes:
    """The few bytes of a trigger id a :class:`Pull` keeps: its first 48 bits when it is a UUID (a
    trigger's id is a name-based UUID: hash bits), else a hash of it.

    >>> pull_digest("016012ec-957a-56f9-b0b5-664f443d011e").hex(), len(pull_digest("not a uuid"))
    ('016012ec957a', 6)
    """
    if len(trigger_id) == 36 and trigger_id[8] == "-":
        try:
            return bytes.fromhex(trigger_id[:8] + trigger_id[9:13])
        except ValueError:
            pass
    return hashlib.blake2b(trigger_id.encode(), digest_size=PULL_DIGEST_BYTES).digest()


class Decided(Protocol):
    """What :meth:`PolicyLedger.note` reads of a decision (:class:`forethought.core.policy.decide.Decision`)."""

    @property
    def playbook(self) -> str: ...
    @property
    def verdict(self) -> str: ...
    @property
    def at(self) -> float: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def channel(self) -> str | None: ...
    @property
    def mode(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Noted:
    """A decision kept for "why (not)?": what ``playbook`` decided (``verdict``: sent, shadow,
    deferred, released, fallback, held_out or suppressed), why (``reason``) and on which
    ``channel``, at ``at`` (whole seconds); ``count`` identical decisions in a row since ``since``."""

    at: float
    playbook: str
    verdict: str
    reason: str | None = None
    channel: str | None = None
    count: int = 1
    since: float | None = None  # the first of ``count`` (None: ``at``)

    @property
    def first(self) -> float:
        return self.at if self.since is None else self.since


@dataclass(slots=True)
class PolicyLedger:
    """Per-customer policy memory; see the module docstring."""

    sent: list[Sent] = field(default_factory=list)
    episodes: bytes = b""
    pending: list[Pending] = field(default_factory=list)
    watch: list[Watch] = field(default_factory=list)
    recent: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    decisions: list[Noted] = field(default_factory=list)  # newest last, at most MAX_DECISIONS
    pulls: list[Pull] = field(default_factory=list)  # variants awaiting their reward, at most MAX_PULLS
    held: list[Held] = field(default_factory=list)  # the newest held-out decision per playbook, at most MAX_HELD

    def copy(self) -> PolicyLedger:
        """An independent copy: its lists are copied; their entries are shared, as nothing changes
        an entry in place (:class:`Sent`, :class:`Watch`, :class:`Pending` and :class:`Noted` are frozen, and a held
        trigger body is only read: a new one replaces it). The runtime copies a customer's ledger
        before every record, so this stays a few list copies.

        >>> ledger = PolicyLedger(sent=[Sent(1.0, "welcome", "email", 1)])
        >>> twin = ledger.copy(); twin.record_send(Sent(2.0, "welcome", "email", 1), horizon=10.0)
        >>> len(ledger.sent), len(twin.sent), twin.sent[0] is ledger.sent[0]
        (1, 2, True)
        """
        return PolicyLedger(list(self.sent), self.episodes, list(self.pending), list(self.watch), list(self.recent),
                            list(self.decisions), list(self.pulls) if self.pulls else [],
                            list(self.held) if self.held else [])

    def mark_episode(self, playbook: str, episode: str) -> bool:
        """Remember that ``playbook`` acted on ``episode``; True when it already had."""
        if self.has_episode(playbook, episode):
            return True
        self.episodes = (self.episodes + _digest(playbook, episode))[-EPISODE_DIGEST_BYTES * MAX_EPISODES:]
        return False

    def has_episode(self, playbook: str, episode: str) -> bool:
        digest, episodes = _digest(playbook, episode), self.episodes
        at = episodes.find(digest)
        while at >= 0:  # a match must start on a digest boundary
            if at % EPISODE_DIGEST_BYTES == 0:
                return True
            at = episodes.find(digest, at + 1)
        return False

    def record_send(self, sent: Sent, horizon: float, trigger: dict[str, Any] | None = None,
                    expires: float = 0.0) -> None:
        """Note a trigger that went out; forget sends older than ``horizon`` seconds before it.
        ``trigger`` (its JSON form) is kept until ``expires`` when a failed delivery could fall back."""
        self.sent = [s for s in self.sent if s.at > sent.at - horizon][-(MAX_SENT - 1):] + [sent]
        self.recent = [r for r in self.recent if r[0] > sent.at]
        if trigger is not None:
            self.recent = [*self.recent[-(MAX_RECENT - 1):], (expires, trigger)]

    def send_times(self, now: float, channel: str | None = None, playbook: str | None = None) -> list[float]:
        """Ascending times of sends up to ``now``, optionally for one channel or playbook."""
        return sorted(s.at for s in self.sent if s.at <= now and (channel is None or s.channel == channel)
                      and (playbook is None or s.playbook == playbook))

    def record_held(self, held: Held, horizon: float) -> None:
        """Note that the customer was held out of ``held.playbook``: it replaces that playbook's previous
        one; entries older than ``horizon`` seconds before it are forgotten (as sends are).

        >>> ledger = PolicyLedger()
        >>> ledger.record_held(Held(100.0, "nudge"), horizon=50.0); ledger.record_held(Held(120.0, "nudge"), 50.0)
        >>> ledger.held, ledger.decided_times(200.0, "nudge"), ledger.send_times(200.0)
        ([Held(at=120.0, playbook='nudge')], [120.0], [])
        """
        kept = [h for h in self.held if h.at > held.at - horizon and h.playbook != held.playbook]
        self.held = [*kept[-(MAX_HELD - 1):], held]

    def decided_times(self, now: float, playbook: str) -> list[float]:
        """Ascending times up to ``now`` at which ``playbook`` sent to this customer or held them out:
        what its cooldown runs from (caps and arbitration read :meth:`send_times` and ``sent`` only)."""
        sends = self.send_times(now, playbook=playbook)
        held = [h.at for h in self.held if h.playbook == playbook and h.at <= now]
        return sorted(sends + held) if held else sends

    def start_watch(self, watch: Watch) -> None:
        self.watch = [*self.watch[-(MAX_WATCH - 1):], watch]

    def start_pull(self, pull: Pull) -> Pull | None:
        """Await ``pull``'s reward; returns the oldest pull it pushed out (beyond :data:`MAX_PULLS`)."""
        self.pulls.append(pull)
        return self.pulls.pop(0) if len(self.pulls) > MAX_PULLS else None

    def take_pull(self, trigger_id: str) -> Pull | None:
        """Remove and return the pull of ``trigger_id`` (None: none awaited)."""
        if self.pulls:
            digest = pull_digest(trigger_id)
            for i, pull in enumerate(self.pulls):
                if pull.trigger == digest:
                    return self.pulls.pop(i)
        return None

    def take_recent(self, trigger_id: str) -> dict[str, Any] | None:
        """Remove and return a recent trigger by id (a failed delivery is acted on once)."""
        for i, (_, trigger) in enumerate(self.recent):
            if trigger["trigger_id"] == trigger_id:
                return self.recent.pop(i)[1]
        return None

    def note(self, decisions: Iterable[Decided]) -> None:
        """Keep ``decisions`` (newest last, at most :data:`MAX_DECISIONS`). A suppression, holdout or
        shadow send that repeats the playbook's newest kept decision (same verdict, reason and channel)
        counts it again instead of taking a place (every send, deferral and release keeps its own);
        suppressions of shadow playbooks (which never message anyone) are not kept.

        >>> from types import SimpleNamespace as D
        >>> ledger = PolicyLedger()
        >>> ledger.note([D(playbook="burst", verdict="sent", at=10.5, reason=None, channel="email", mode="live")])
        >>> ledger.note([D(playbook="burst", verdict="suppressed", at=t, reason="cooldown", channel=None,
        ...                mode="live") for t in (20, 30)])
        >>> [(n.verdict, n.reason, n.count, n.first, n.at) for n in ledger.decisions]
        [('sent', None, 1, 10.0, 10.0), ('suppressed', 'cooldown', 2, 20.0, 30.0)]
        """
        kept = self.decisions
        for d in decisions:
            if d.mode == "shadow" and d.verdict != "shadow":
                continue
            at = float(math.floor(d.at))
            last = next((i for i in range(len(kept) - 1, -1, -1) if kept[i].playbook == d.playbook), None)
            if last is not None and d.verdict in REPEATS and (kept[last].verdict, kept[last].reason,
                                                              kept[last].channel) == (d.verdict, d.reason, d.channel):
                old = kept.pop(last)
                kept.append(Noted(at, d.playbook, d.verdict, d.reason, d.channel, old.count + 1, old.first))
                continue
            kept.append(Noted(at, d.playbook, d.verdict, d.reason, d.channel))
            del kept[:-MAX_DECISIONS]

    def next_due(self) -> float | None:
        """The earliest time something here needs the engine: a release or a watch ending (a variant's pull
        ending needs no time of its own: it is settled at the customer's next due time, core.policy.rewards)."""
        if not self.pending and not self.watch:
            return None
        return min([p.release_at for p in self.pending] + [w.until for w in self.watch])

    def is_empty(self) -> bool:
        return not (self.sent or self.episodes or self.pending or self.watch or self.recent or self.decisions
                    or self.pulls or self.held)

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON-ready form."""
        return {
            "s": [[s.at, s.playbook, s.channel, s.priority] for s in self.sent],
            "e": base64.b64encode(self.episodes).decode(),
            "p": [[p.release_at, p.signal, p.trigger] for p in self.pending],
            "w": [[w.playbook, w.group, w.since, w.until, *([w.x.hex()] if w.x else [])] for w in self.watch],
            "r": [list(r) for r in self.recent],
            "d": [[n.at, n.playbook, n.verdict, n.reason, n.channel, n.count, n.since] for n in self.decisions],
            **({"u": [[base64.b64encode(u.trigger).decode(), u.playbook, u.variant, u.until] for u in self.pulls]}
               if self.pulls else {}),
            **({"h": [[h.at, h.playbook] for h in self.held]} if self.held else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyLedger:
        """Inverse of :meth:`to_dict`."""
        return cls(
            sent=[Sent(*s) for s in data.get("s", [])],
            episodes=base64.b64decode(data.get("e", "")),
            pending=[Pending(*p) for p in data.get("p", [])],
            watch=[Watch(w[0], w[1], w[2], w[3], bytes.fromhex(w[4]) if len(w) > 4 else b"")
                   for w in data.get("w", [])],
            recent=[(r[0], r[1]) for r in data.get("r", [])],
            decisions=[Noted(*n) for n in data.get("d", [])],
            pulls=[Pull(base64.b64decode(u[0]), u[1], u[2], u[3]) for u in data.get("u", [])],
            held=[Held(h[0], h[1]) for h in data.get("h", [])],
        )


def _digest(playbook: str, episode: str) -> bytes:
    return hashlib.blake2b(f"{playbook}\x1f{episode}".encode(), digest_size=EPISODE_DIGEST_BYTES).digest()
