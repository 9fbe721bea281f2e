"""Detectors read slices they do not change without copying them (``CustomerState.peek``): a due tick
or a look on a draft leaves untouched slices shared with the held state, and what a run reads is
always the run's own latest value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from forethought.contracts.events import PageView
from forethought.core.config import EngineConfig
from forethought.core.engine import explain, next_due, process, tick
from forethought.core.state import CustomerState

CONFIG = EngineConfig(bucket_seconds=10, min_visits_to_arm=2, visit_gap_seconds=60.0)
T0 = datetime(2026, 11, 22, 12, tzinfo=UTC)


def _regular() -> CustomerState:
    state = None
    for i in range(6):  # six visits an hour apart: the silence detector is armed
        event = PageView(event_id=f"p{i}", customer_id="c1", page="/home", occurred_at=T0 + timedelta(hours=i))
        state = process(state, event, CONFIG).state
    assert state is not None
    return state


def test_reading_a_drafts_slice_copies_nothing_and_writing_copies_it_once() -> None:
    state = _regular()
    draft = state.draft()
    assert draft.peek("silence") is state.slice("silence")  # read only: the held state's own
    written = draft.slice("silence")  # to change: the draft's copy from now on
    written.deadline = 1.0
    assert draft.peek("silence") is written and state.slice("silence").deadline != 1.0


def test_a_tick_on_a_draft_gives_what_it_gives_on_a_copy_and_leaves_the_held_state_alone() -> None:
    state = _regular()
    before, due = state.to_bytes(), next_due(state, CONFIG)
    assert due is not None
    on_draft, on_copy = tick(state.draft(), due + 1, CONFIG), tick(state.copy(), due + 1, CONFIG)
    assert [t.playbook for t in on_draft.triggers] == [t.playbook for t in on_copy.triggers] == ["silence_dropoff"]
    assert on_draft.state is not None and on_copy.state is not None
    on_draft.state.finish()
    assert on_draft.state.to_bytes() == on_copy.state.to_bytes() != before
    assert state.to_bytes() == before
    assert explain(state, due + 1, CONFIG) == explain(state.draft(), due + 1, CONFIG)
