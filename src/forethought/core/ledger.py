"""The policy's memory of one customer, kept in its state: what was sent, which episodes fired, what waits.

It lives inside the changelogged customer state, so caps, cooldowns, deferred triggers and
lift measurement survive restarts. A plain data type below :mod:`forethought.core.state` (which holds
one) and :mod:`forethought.core.policy` (which reads and writes it). Everything is bounded:

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
from dataclasses import dataclass, field
from typing import Any

EPISODE_DIGEST_BYTES = 6
MAX_EPISODES = 16
MAX_SENT = 32
MAX_RECENT = 2
MAX_WATCH = 8


@dataclass(slots=True)
class Sent:
    """A trigger that went out: when, from which playbook, on which channel, at what priority."""

    at: float
    playbook: str
    channel: str
    priority: int


@dataclass(slots=True)
class Watch:
    """A decision whose effect is being measured: did the customer come back before ``until``?"""

    playbook: str
    group: str  # "treated" or "holdout"
    since: float
    until: float


@dataclass(slots=True)
class Pending:
    """A trigger held until ``release_at`` (quiet hours), as the trigger's JSON form."""

    release_at: float
    signal: str
    trigger: dict[str, Any]


@dataclass(slots=True)
class PolicyLedger:
    """Per-customer policy memory; see the module docstring."""

    sent: list[Sent] = field(default_factory=list)
    episodes: bytes = b""
    pending: list[Pending] = field(default_factory=list)
    watch: list[Watch] = field(default_factory=list)
    recent: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def copy(self) -> PolicyLedger:
        """An independent copy: entries and held trigger bodies are copied, not shared."""
        if self.is_empty():
            return PolicyLedger()
        return PolicyLedger(
            sent=[Sent(s.at, s.playbook, s.channel, s.priority) for s in self.sent], episodes=self.episodes,
            pending=[Pending(p.release_at, p.signal, _json_copy(p.trigger)) for p in self.pending],
            watch=[Watch(w.playbook, w.group, w.since, w.until) for w in self.watch],
            recent=[(at, _json_copy(t)) for at, t in self.recent],
        )

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

    def start_watch(self, watch: Watch) -> None:
        self.watch = [*self.watch[-(MAX_WATCH - 1):], watch]

    def take_recent(self, trigger_id: str) -> dict[str, Any] | None:
        """Remove and return a recent trigger by id (a failed delivery is acted on once)."""
        for i, (_, trigger) in enumerate(self.recent):
            if trigger["trigger_id"] == trigger_id:
                return self.recent.pop(i)[1]
        return None

    def next_due(self) -> float | None:
        """The earliest time something here needs the engine: a release or a watch ending."""
        if not self.pending and not self.watch:
            return None
        return min([p.release_at for p in self.pending] + [w.until for w in self.watch])

    def is_empty(self) -> bool:
        return not (self.sent or self.episodes or self.pending or self.watch or self.recent)

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON-ready form."""
        return {
            "s": [[s.at, s.playbook, s.channel, s.priority] for s in self.sent],
            "e": base64.b64encode(self.episodes).decode(),
            "p": [[p.release_at, p.signal, p.trigger] for p in self.pending],
            "w": [[w.playbook, w.group, w.since, w.until] for w in self.watch],
            "r": [list(r) for r in self.recent],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyLedger:
        """Inverse of :meth:`to_dict`."""
        return cls(
            sent=[Sent(*s) for s in data.get("s", [])],
            episodes=base64.b64decode(data.get("e", "")),
            pending=[Pending(*p) for p in data.get("p", [])],
            watch=[Watch(*w) for w in data.get("w", [])],
            recent=[(r[0], r[1]) for r in data.get("r", [])],
        )


def _digest(playbook: str, episode: str) -> bytes:
    return hashlib.blake2b(f"{playbook}\x1f{episode}".encode(), digest_size=EPISODE_DIGEST_BYTES).digest()


def _json_copy(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars): several times cheaper than
    :func:`copy.deepcopy`, which a held trigger body never needs.

    >>> body = {"a": [1, {"b": 2}], "c": "x"}
    >>> twin = _json_copy(body); twin["a"][1]["b"] = 3
    >>> body["a"][1]["b"], twin == body
    (2, False)
    """
    if isinstance(value, dict):
        return {k: _json_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_copy(v) for v in value]
    return value
