"""The state codec's kind for the policy ledger (:mod:`forethought.core.ledger`): what was sent, the
episodes, held triggers, re-engagement watches, triggers kept for a fallback and the kept decisions,
as a MessagePack list; on the way back every part is checked and anything else raises ValueError.

The list has five parts, and a sixth, the kept decisions, only when there are some: a ledger
without decisions is written exactly as before they were kept, and a reader that knows five parts
refuses a sixth (ValueError), as the codec refuses any state of a newer writer. A seventh, the
variants awaiting their reward (:class:`Pull`: 6 bytes of trigger id, playbook, variant, window end),
is there only while some are: a ledger without is written exactly as before. An eighth, the
held-out decisions that a playbook's cooldown runs from (:class:`Held`: time, playbook), likewise:
while there are some, the sixth and seventh parts are written even when empty (a reader that knows
seven parts refuses the eighth); a ledger without any is written exactly as before, and a stored
ledger of five, six or seven parts reads with none.

What was sent names its playbook and channel by their number in the sixth part's word table, as the
kept decisions do (one byte each instead of the names: about 20 bytes per entry), so the sixth part
is written whenever anything was sent. A stored ledger that spells them out (written before) still
reads; a reader that expects the names refuses the numbers (ValueError), as it refuses any state of a
newer writer.

>>> from forethought.core.config import EngineConfig
>>> ledger = PolicyLedger(decisions=[Noted(100.0, "burst", "sent", None, "email")])
>>> LEDGER.back(LEDGER.out(ledger, 100), 100, EngineConfig()) == ledger
True
>>> LEDGER.out(PolicyLedger(), 0)
[[], b'', [], [], []]
"""

from __future__ import annotations

import json
from typing import Any

from forethought.core.codec_kinds import (
    _EXACT,
    Kind,
    Plain,
    _bytes,
    _float,
    _list,
    _str,
    checked_int,
    malformed,
    time_back,
    time_out,
)
from forethought.core.ledger import (
    MAX_DECISIONS,
    MAX_HELD,
    MAX_PULLS,
    PULL_DIGEST_BYTES,
    Held,
    Noted,
    Pending,
    PolicyLedger,
    Pull,
    Sent,
    Watch,
)
from forethought.core.views import EngineView

_MAX_NESTING = 64  # held trigger bodies (JSON text) nest at most this deep
_MAX_SNAPSHOT = 32  # bytes of a watch's uplift snapshot (6 today)


def _json_back(text: Plain) -> dict[str, Any]:
    """A held trigger body, stored as JSON text (it is sent on as JSON)."""
    raw = _str(text)
    if raw.count("[") + raw.count("{") > _MAX_NESTING:
        depth = deepest = 0
        for c in raw:
            depth += (c in "[{") - (c in "]}")
            deepest = max(deepest, depth)
        if deepest > _MAX_NESTING:
            raise malformed("trigger (nested too deeply)")
    body = json.loads(raw)
    if type(body) is not dict:
        raise malformed("trigger")
    return body


def _dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"))


def _ledger_out(ledger: PolicyLedger, anchor: int) -> Plain:
    words = _Words()
    sent = [[time_out(s.at, anchor), words.number(s.playbook), words.number(s.channel), s.priority]
            for s in ledger.sent]
    return [
        sent,
        ledger.episodes,
        [[time_out(p.release_at, anchor), p.signal, _dumps(p.trigger)] for p in ledger.pending],
        [[w.playbook, w.group, time_out(w.since, anchor), time_out(w.until, anchor), *([w.x] if w.x else [])]
         for w in ledger.watch],  # the uplift snapshot only when there is one: a watch without it is as before
        [[time_out(at, anchor), _dumps(trigger)] for at, trigger in ledger.recent],
        *([_decisions_out(ledger.decisions, anchor, words)]
          if ledger.sent or ledger.decisions or ledger.pulls or ledger.held else []),  # (as before them)
        *([[[u.trigger, u.playbook, u.variant, time_out(u.until, anchor)] for u in ledger.pulls]]
          if ledger.pulls or ledger.held else []),  # variants awaiting their reward (core.bandit): a seventh part
        *([[[time_out(h.at, anchor), h.playbook] for h in ledger.held]]
          if ledger.held else []),  # held-out decisions (core.policy.decide's cooldown): an eighth, when any
    ]


def _ledger_back(v: Plain, anchor: int, _config: EngineView) -> PolicyLedger:
    parts = _list(v)
    if len(parts) not in (5, 6, 7, 8):
        raise malformed("ledger")
    sent, episodes, pending, watch, recent = parts[:5]
    ledger = PolicyLedger(episodes=_bytes(episodes))
    words, decided = _sixth(parts[5]) if len(parts) >= 6 else ([], [])
    for at, playbook, channel, priority in map(_list, _list(sent)):
        ledger.sent.append(Sent(time_back(at, anchor), _sent_text(playbook, words), _sent_text(channel, words),
                                checked_int(priority)))
    for at, signal, trigger in map(_list, _list(pending)):
        ledger.pending.append(Pending(time_back(at, anchor), _str(signal), _json_back(trigger)))
    for entry in map(_list, _list(watch)):
        if len(entry) not in (4, 5):
            raise malformed("watch")
        playbook, group, since, until = entry[:4]
        x = _bytes(entry[4]) if len(entry) == 5 else b""
        if len(x) > _MAX_SNAPSHOT:
            raise malformed("watch snapshot")
        ledger.watch.append(Watch(_str(playbook), _str(group), time_back(since, anchor), time_back(until, anchor), x))
    ledger.recent = [(time_back(at, anchor), _json_back(trigger)) for at, trigger in map(_list, _list(recent))]
    if len(parts) >= 6:
        ledger.decisions = _decisions_back(decided, anchor, words)
    if len(parts) >= 7:
        ledger.pulls = [_pull_back(u, anchor) for u in _list(parts[6])[-MAX_PULLS:]]
    if len(parts) == 8:
        ledger.held = [_held_back(h, anchor) for h in _list(parts[7])[-MAX_HELD:]]
    return ledger


def _held_back(v: Plain, anchor: int) -> Held:
    at, playbook = _list(v)
    return Held(time_back(at, anchor), _str(playbook))


def _pull_back(v: Plain, anchor: int) -> Pull:
    trigger, playbook, variant, until = _list(v)
    if len(digest := _bytes(trigger)) != PULL_DIGEST_BYTES:
        raise malformed("pull")
    return Pull(digest, _str(playbook), _str(variant), time_back(until, anchor))


# Texts a kept decision uses most (verdicts, reasons, channels), stored as their number here.
# APPEND ONLY: the numbers are in stored states. Any other text goes in the state's own word list.
DECISION_WORDS = (
    "sent", "shadow", "deferred", "released", "fallback", "held_out", "suppressed", "episode", "cooldown",
    "arbitration", "opted_out", "consent", "frequency_cap", "quiet_hours", "condition_error", "expired",
    "playbook_removed", "no_fallback_channel", "holdout", "global_control", "email", "in_app", "webhook",
    "cs_outreach", "sms", "push",
)
_WORD_NUMBER = {w: i for i, w in enumerate(DECISION_WORDS)}


class _Words:
    """The numbers of the texts a ledger writes: :data:`DECISION_WORDS`' own, else ``-1 - i`` for the
    ledger's ``i``-th other text (each once: playbook names), None for none.

    >>> words = _Words()
    >>> [words.number(t) for t in ("sent", "burst", "email", "burst", None, "welcome")], words.table
    ([0, -1, 20, -1, None, -2], ['burst', 'welcome'])
    """

    __slots__ = ("numbers",)

    def __init__(self) -> None:
        self.numbers: dict[str, int] = {}

    def number(self, text: str | None) -> int | None:
        if text is None:
            return None
        known = _WORD_NUMBER.get(text)
        return known if known is not None else -1 - self.numbers.setdefault(text, len(self.numbers))

    @property
    def table(self) -> list[str]:
        return list(self.numbers)


def _text(v: Plain, words: list[str]) -> str | None:
    """Inverse of :meth:`_Words.number`, given the ledger's word table."""
    if v is None:
        return None
    i = checked_int(v)
    if 0 <= i < len(DECISION_WORDS):
        return DECISION_WORDS[i]
    if -len(words) <= i < 0:
        return words[-1 - i]
    raise malformed("ledger (a word number out of range)")


def _sent_text(v: Plain, words: list[str]) -> str:
    """A sent entry's playbook or channel: its word number, or (as written before) the text itself."""
    return _str(v) if type(v) is str else _required_text(v, words)


def _required_text(v: Plain, words: list[str]) -> str:
    found = _text(v, words)
    if found is None:
        raise malformed("ledger (a missing name)")
    return found


def _sixth(v: Plain) -> tuple[list[str], list[Plain]]:
    """The sixth part, ``[words, entries]``: its word table and the kept decisions' entries."""
    words_in, entries = _list(v)
    return [_str(w) for w in _list(words_in)], _list(entries)


def _decisions_out(decisions: list[Noted], anchor: int, words: _Words | None = None) -> Plain:
    """``[words, entries]``: each entry ``[at, playbook, verdict, reason, channel]``, then ``count,
    since`` when a decision repeated. Times are whole seconds after ``anchor`` (a float otherwise);
    texts are numbers (:class:`_Words`, whose table is shared with what was sent).

    >>> kept = [Noted(100.0, "burst", "suppressed", "cooldown"), Noted(160.0, "burst", "sent", None, "email", 2, 130.0)]
    >>> _decisions_out(kept, 160)
    [['burst'], [[-60, -1, 6, 8, None], [0, -1, 0, None, 20, 2, -30]]]
    >>> _decisions_back(_decisions_out(kept, 160)[1], 160, ['burst']) == kept
    True
    """
    words = _Words() if words is None else words
    number = words.number
    entries: list[Plain] = []
    for n in decisions:
        entry = [_second_out(n.at, anchor), number(n.playbook), number(n.verdict), number(n.reason),
                 number(n.channel)]
        if n.count != 1 or n.since is not None:
            entry += [n.count, _second_out(n.first, anchor)]
        entries.append(entry)
    return [words.table, entries]


def _decisions_back(entries: list[Plain], anchor: int, words: list[str]) -> list[Noted]:
    """The kept decisions from the sixth part's entries, given its word table (:func:`_sixth`)."""
    kept = []
    for entry in map(_list, entries[-MAX_DECISIONS:]):  # a longer list (a future bound): its newest
        if len(entry) not in (5, 7):
            raise malformed("decision")
        count, since = (checked_int(entry[5]), _second_back(entry[6], anchor)) if len(entry) == 7 else (1, None)
        if count < 1:
            raise malformed("decision")
        kept.append(Noted(_second_back(entry[0], anchor), _required_text(entry[1], words),
                          _required_text(entry[2], words), _text(entry[3], words), _text(entry[4], words),
                          count, since))
    return kept


def _second_out(t: float, anchor: int) -> int | float:
    """Whole seconds after ``anchor`` (what the ledger keeps), else the float itself."""
    return int(t) - anchor if float(t).is_integer() and abs(t) < _EXACT else t


def _second_back(v: Plain, anchor: int) -> float:
    return float(checked_int(v) + anchor) if type(v) is int else _float(v)


LEDGER = Kind(_ledger_out, _ledger_back)
