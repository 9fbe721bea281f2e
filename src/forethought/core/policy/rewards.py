"""When a variant's pull ends (:mod:`forethought.core.bandit`): the three moments the engine calls.

A pull is settled as a **success** by the first outcome of its trigger whose status the playbook
counts (``bandit.reward``, default clicked or converted), or, with ``came_back`` among them, by
the customer's next event that is not an error, within its reward window; as a **failure** by an
``unsubscribed`` outcome, or once its window has ended without a success. Other outcomes
(delivered, opened when not counted, failed, bounced...) leave it waiting. Each settled pull is an
observation a driver counts (``variant_reward``).

A window's end has no due time of its own (a tick per pull would cost more than the rest of the
bandit): the failure is settled at the customer's next due time after it — at the latest the end of
the re-engagement window every live decision watches, or the customer's idle eviction. The bandit
loses nothing by the wait: a pull waiting already counts as a failure (:mod:`forethought.core.bandit`).

>>> from forethought.contracts.playbooks import PlaybookFile
>>> from forethought.core.bandit import Bandits
>>> from forethought.core.ledger import PolicyLedger, pull_digest, Pull, pull_digest
>>> from forethought.core.policy.rules import compile_rules
>>> rules = compile_rules(PlaybookFile.model_validate({"playbooks": [{"name": "nudge", "on": ["silence"],
...     "channels": ["email"], "priority": 50, "variants": [{"name": "a"}, {"name": "b"}]}]}))
>>> ledger, bandits = PolicyLedger(pulls=[Pull(pull_digest("t1"), "nudge", "b", 100.0)]), Bandits()
>>> on_due(ledger, 99.0, rules, bandits), [o.detail["result"] for o in on_due(ledger, 100.0, rules, bandits)]
((), ['failure'])
>>> bandits.by_playbook["nudge"].arms
{'a': [0, 0, 0], 'b': [0, 0, 1]}
"""

from __future__ import annotations

from forethought.core.bandit import Bandits
from forethought.core.ledger import PolicyLedger, pull_digest
from forethought.core.policy.decide import settle
from forethought.core.policy.rules import Rules
from forethought.core.signals import Observation


def on_outcome(ledger: PolicyLedger, trigger_id: str, status: str, at: float, rules: Rules,
               bandits: Bandits | None) -> tuple[Observation, ...]:
    """An outcome of ``trigger_id`` at ``at``: a counted status within the window settles its pull as a
    success, an unsubscribe (or a counted status too late) as a failure."""
    if not ledger.pulls:
        return ()
    digest = pull_digest(trigger_id)
    pull = next((p for p in ledger.pulls if p.trigger == digest), None)
    if pull is None:
        return ()
    book = rules.by_name.get(pull.playbook)
    counted = book is not None and book.bandit is not None and status in book.bandit.rewards
    if not counted and status != "unsubscribed":
        return ()
    ledger.pulls = [p for p in ledger.pulls if p is not pull]
    return (settle(pull, counted and at <= pull.until, rules, bandits),)


def on_activity(ledger: PolicyLedger, ts: float, rules: Rules, bandits: Bandits | None) -> tuple[Observation, ...]:
    """The customer is active at ``ts``: pulls of playbooks that count ``came_back`` are successes."""
    back = [p for p in ledger.pulls if ts <= p.until and _counts_return(p.playbook, rules)]
    if not back:
        return ()
    ledger.pulls = [p for p in ledger.pulls if p not in back]
    return tuple(settle(p, True, rules, bandits) for p in back)


def on_due(ledger: PolicyLedger, due: float, rules: Rules, bandits: Bandits | None) -> tuple[Observation, ...]:
    """Event time reached ``due`` (any of the customer's due times; their eviction: ``math.inf``): pulls
    whose window ended without a success are failures."""
    ended = [p for p in ledger.pulls if p.until <= due]
    if not ended:
        return ()
    ledger.pulls = [p for p in ledger.pulls if p.until > due]
    return tuple(settle(p, False, rules, bandits) for p in ended)


def _counts_return(playbook: str, rules: Rules) -> bool:
    book = rules.by_name.get(playbook)
    return book is not None and book.bandit is not None and "came_back" in book.bandit.rewards
