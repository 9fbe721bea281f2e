"""A record runs on a draft of its customer's state: whatever the run does to the draft, the held
state stays as it was (so a record the engine raises on leaves no trace), and a kept draft is whole."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from forethought.contracts.events import ErrorEvent, Usage
from forethought.core.config import EngineConfig
from forethought.core.engine import process
from forethought.core.ledger import Pending, Sent, Watch
from forethought.core.state import CustomerState

CONFIG = EngineConfig(bucket_seconds=10, burst_min_errors=3)
T0 = datetime(2026, 11, 22, 12, tzinfo=timezone.utc)


def busy_state() -> CustomerState:
    """A state with every part in use: windows, slices, and a ledger holding sends, holds and watches."""
    state = None
    for i in range(8):
        event = (ErrorEvent(event_id=f"e{i}", customer_id="c1", code="E42", occurred_at=T0 + timedelta(seconds=i))
                 if i % 2 else Usage(event_id=f"u{i}", customer_id="c1", metric="api_calls", quantity=i + 1.0,
                                          occurred_at=T0 + timedelta(seconds=i)))
        state = process(state, event, CONFIG).state
    assert state is not None
    state.policy.record_send(Sent(1.0, "welcome", "email", 1), horizon=100.0, trigger={"trigger_id": "t1"}, expires=9.0)
    state.policy.pending.append(Pending(4e9, "silence", {"trigger_id": "t2", "priority": 1, "playbook": "p"}))
    state.policy.start_watch(Watch("welcome", "treated", 1.0, 2.0))
    return state


def test_everything_a_run_does_to_a_draft_leaves_the_state_it_came_from_as_it_was() -> None:
    state = busy_state()
    before = state.to_bytes()
    draft = state.draft()
    for name in state.slices:  # every slice read (copied) and changed where it holds something mutable
        piece = draft.slice(name)
        for value in vars(piece).values() if hasattr(piece, "__dict__") else ():
            if isinstance(value, list):
                value.append(1)
    draft.activity.add(10**9), draft.hours.add(10**6)
    draft.by_type["error"] = 99
    draft.remember("new-id")
    draft.policy.record_send(Sent(3.0, "other", "sms", 2), horizon=100.0, trigger={"trigger_id": "t3"}, expires=9.0)
    draft.policy.pending.append(Pending(4e9, "silence", {"trigger_id": "t4"}))
    draft.policy.take_recent("t1")
    draft.policy.start_watch(Watch("other", "holdout", 3.0, 4.0))
    draft.policy.mark_episode("other", "x")
    process(draft, ErrorEvent(event_id="e99", customer_id="c1", code="E1", occurred_at=T0 + timedelta(seconds=30)),
            CONFIG)
    assert state.to_bytes() == before


def test_a_kept_draft_is_whole_and_equal_to_its_origin_until_changed() -> None:
    state = busy_state()
    draft = state.draft()
    draft.slice("silence")  # read: copied; the others are taken over when the draft is finished
    draft.finish()
    assert type(draft.slices) is dict and draft.slices.keys() == state.slices.keys()
    assert draft == state and draft.to_bytes() == state.to_bytes()
    assert draft.slice("silence") is not state.slice("silence")


def test_a_copy_shares_no_slice_with_its_origin() -> None:
    state = busy_state()
    twin = state.copy()
    assert all(twin.slice(name) is not piece for name, piece in state.slices.items())
    assert twin == state
