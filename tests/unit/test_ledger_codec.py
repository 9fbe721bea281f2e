"""The policy ledger's stored form: what was sent names its playbook and channel by number (the word
table the kept decisions use), older ledgers that spell the names out still load, and damaged ones are
refused."""

from __future__ import annotations

from pathlib import Path

import msgpack  # type: ignore[import-untyped]
import orjson
import pytest

from forethought.core.config import EngineConfig
from forethought.core.ledger import Noted, PolicyLedger, Sent
from forethought.core.ledger_codec import LEDGER
from forethought.core.state import CustomerState

CONFIG = EngineConfig()
T0 = 1_790_000_000
DATA = Path(__file__).parent / "data"


def _size(ledger: PolicyLedger) -> int:
    return len(msgpack.packb(LEDGER.out(ledger, T0), use_bin_type=True))


def test_what_was_sent_round_trips_with_its_names_written_once() -> None:
    sent = [Sent(T0 - 60.0, "feature_welcome", "in_app", 20), Sent(T0 - 30.0, "feature_welcome", "email", 20),
            Sent(T0 - 10.0, "a_team_playbook", "pigeon", 5)]
    ledger = PolicyLedger(sent=sent, decisions=[Noted(T0 - 10.0, "a_team_playbook", "sent", None, "pigeon")])
    assert LEDGER.back(LEDGER.out(ledger, T0), T0, CONFIG) == ledger
    only_sent = PolicyLedger(sent=sent[:1])
    assert LEDGER.back(LEDGER.out(only_sent, T0), T0, CONFIG) == only_sent
    # each name once, in the word table; a known channel by its fixed number
    assert _size(PolicyLedger(sent=sent[:2])) - _size(PolicyLedger(sent=sent[:1])) <= 8
    assert _size(only_sent) < _size(PolicyLedger()) + len("feature_welcome") + 12


def test_a_ledger_stored_with_the_names_spelled_out_still_loads() -> None:
    before = [[[-60 << 2, "feature_welcome", "in_app", 20]], b"", [], [], []]
    assert LEDGER.back(before, T0, CONFIG) == PolicyLedger(sent=[Sent(T0 - 60.0, "feature_welcome", "in_app", 20)])
    with_decisions = [[[-60 << 2, "burst", "email", 70]], b"", [], [], [], [["burst"], [[-60, -1, 0, None, 20]]]]
    back = LEDGER.back(with_decisions, T0, CONFIG)
    assert back.sent == [Sent(T0 - 60.0, "burst", "email", 70)] and back.decisions[0].playbook == "burst"
    state = CustomerState.from_bytes((DATA / "state-v1-busy.bin").read_bytes(), CONFIG)  # binary version 1
    assert [s.playbook for s in state.policy.sent] == ["error_burst", "my_playbook"]
    assert CustomerState.from_bytes(state.to_bytes(), CONFIG) == state


@pytest.mark.parametrize("sent", [
    [[0, -1, 20, 5]],          # a playbook number with no word table (no sixth part)
    [[0, -3, 20, 5]],          # a number beyond the word table
    [[0, None, 20, 5]],        # no playbook
    [[0, -1, 99, 5]],          # a channel number no text has
    [[0, 1.5, 20, 5]],         # neither a name nor a number
])
def test_a_damaged_sent_entry_is_refused(sent: list) -> None:
    parts = [sent, b"", [], [], []]
    if sent[0][1] != -1:
        parts.append([["burst"], []])
    with pytest.raises(ValueError):
        LEDGER.back(parts, T0, CONFIG)


def test_a_state_stored_by_the_version_before_loads_as_its_json_form_says() -> None:
    """A busy state (sends, kept decisions, a usage spike in progress, errors of three severities) as
    binary version 2 wrote it, before what was sent was named by number and the baselines were written
    as short decimals: it loads to the state its JSON form holds, and is smaller written again."""
    old = (DATA / "state-v2-busy.bin").read_bytes()
    assert old[0] == 0x82
    state = CustomerState.from_bytes(old, CONFIG)
    expected = CustomerState.from_dict(orjson.loads((DATA / "state-v2-busy.json").read_bytes()), CONFIG)
    expected.applied = state.applied  # (the JSON form keeps no input offsets)
    assert state == expected and state.applied
    assert [s.playbook for s in state.policy.sent] == ["feature_welcome", "usage_anomaly", "error_burst"]
    assert state.slice("usage").usage["seats"][3:] == [1, -1, 1796658253.0]  # in a spike since then
    again = state.to_bytes()
    assert again[0] == 0x83 and CustomerState.from_bytes(again, CONFIG) == state
    assert len(again) < len(old) - 60
