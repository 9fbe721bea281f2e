"""A held-out decision counts against its playbook's cooldown as a send does, and uses no frequency cap.

Before this, a held-out customer recorded nothing, so every new episode within the cooldown was decided
(and measured) again while a treated customer waited: at ``holdout: 0.5`` the held-out arm outnumbered
the treated one (docs/closed-loop-results.md). Each eligible episode window now yields one decision in
either arm.
"""

from __future__ import annotations

from collections import Counter

from test_policy_engine import BURST, CONFIG, T0, Customer, profile, rules

from forethought.core.ledger import Held, PolicyLedger
from forethought.core.ledger_codec import LEDGER
from forethought.core.policy.timing import in_holdout
from forethought.core.state import CustomerState

HOUR, DAY = 3600, 86_400
HALF = rules(BURST + "    cooldown: 1d\n    holdout: 0.5\n")
IDS = [f"cust-{i}" for i in range(120)]
HELD_ID = next(i for i in IDS if in_holdout(i, "holdout:burst", 0.5))
TREATED_ID = next(i for i in IDS if not in_holdout(i, "holdout:burst", 0.5))


def bursts(customer: Customer, hours: list[float]) -> Customer:
    for h in hours:
        customer.burst(T0 + h * HOUR)
    return customer


def verdicts(customer: Customer) -> list[tuple[str, str | None]]:
    return [(d.verdict, d.reason) for d in customer.decisions]


def test_five_bursts_within_one_cooldown_are_one_decision_per_customer_in_either_arm() -> None:
    treated = bursts(Customer(HALF, TREATED_ID), [0, 1, 2, 3, 4])
    held = bursts(Customer(HALF, HELD_ID), [0, 1, 2, 3, 4])
    assert verdicts(treated) == [("sent", None)] + [("suppressed", "cooldown")] * 4
    assert verdicts(held) == [("held_out", "holdout")] + [("suppressed", "cooldown")] * 4
    assert [w.group for w in treated.state.policy.watch] == ["treated"]
    assert [w.group for w in held.state.policy.watch] == ["holdout"]  # measured once, like the treated


def test_the_arms_are_counted_once_per_customer_so_they_split_like_the_customers() -> None:
    customers, decided, measured = Counter(), Counter(), Counter()
    for cid in IDS:
        c = bursts(Customer(HALF, cid), [0, 2, 5, 9])
        arm = "held_out" if in_holdout(cid, "holdout:burst", 0.5) else "sent"
        customers[arm] += 1
        decided.update(d.verdict for d in c.decisions if d.verdict in ("sent", "held_out"))
        measured.update(w.group for w in c.state.policy.watch)
    assert decided == customers  # one decision per customer, in its own arm
    assert measured == Counter(treated=customers["sent"], holdout=customers["held_out"])


def test_a_held_out_customer_is_decided_again_only_after_the_cooldown_like_a_treated_one() -> None:
    hours = [0, 12, 23.5, 25, 30, 49.5]  # the cooldown (1d) ends 24 h after each decision
    treated = bursts(Customer(HALF, TREATED_ID), hours)
    held = bursts(Customer(HALF, HELD_ID), hours)
    expected = ["decided", "cooldown", "cooldown", "decided", "cooldown", "decided"]
    assert ["cooldown" if d.reason == "cooldown" else "decided" for d in held.decisions] == expected
    assert ["cooldown" if d.reason == "cooldown" else "decided" for d in treated.decisions] == expected
    assert {d.verdict for d in held.decisions} == {"held_out", "suppressed"} and held.triggers == []
    assert len(held.state.policy.held) == 1 and held.state.policy.sent == []  # only the newest is kept


CAPPED = """  caps:
    - {channel: in_app, max: 1, per: 1d}
  arbitration_window: 1h
"""
MINOR = BURST.replace("name: burst", "name: minor").replace("priority: 70", "priority: 40")


def test_a_held_out_decision_consumes_no_frequency_cap_and_blocks_no_other_playbook() -> None:
    """No message went out, so the customer's caps (and arbitration) are untouched: the lower playbook
    may still message them, as it would have had the held-out playbook not existed (the counterfactual the
    holdout measures). The held-out playbook itself waits for its cooldown."""
    book = rules(BURST + "    cooldown: 1d\n    holdout: 1.0\n" + MINOR + "    cooldown: 1h\n", CAPPED)
    customer = Customer(book, profile=profile())
    first = customer.burst(T0)
    assert [(d.playbook, d.verdict) for d in first.decisions] == [("burst", "held_out"), ("minor", "sent")]
    assert "caps: in_app 0/1 per 1d" in first.triggers[0].why.checks  # the held-out decision used none
    again = customer.burst(T0 + 2 * HOUR)
    assert [(d.playbook, d.verdict, d.reason) for d in again.decisions] == [
        ("burst", "suppressed", "cooldown"), ("minor", "suppressed", "frequency_cap")]  # its cap: minor's send


def test_a_global_control_customer_waits_for_the_cooldown_too() -> None:
    book = rules(BURST + "    cooldown: 1d\n", "  global_holdout: 0.5\n  arbitration_window: 1h\n")
    cid = next(i for i in IDS if in_holdout(i, "global-control", 0.5))
    held = bursts(Customer(book, cid), [0, 3, 25])
    assert verdicts(held) == [("held_out", "global_control"), ("suppressed", "cooldown"),
                              ("held_out", "global_control")]


QUIET = "  quiet_hours: \"00:00-12:00\"\n  arbitration_window: 1h\n"


def test_a_trigger_waiting_for_quiet_hours_is_decided_once_like_a_held_out_one() -> None:
    """A treated trigger deferred by quiet hours counts against its cooldown while it waits, so a second
    episode meanwhile is not a second treated decision (the held-out arm, decided at once, has one)."""
    book = rules(BURST + "    cooldown: 1d\n    holdout: 0.5\n", QUIET)
    treated = bursts(Customer(book, TREATED_ID, profile(TREATED_ID, timezone="UTC")), [0, 2])
    held = bursts(Customer(book, HELD_ID, profile(HELD_ID, timezone="UTC")), [0, 2])
    assert verdicts(treated) == [("deferred", None), ("suppressed", "cooldown")]
    assert verdicts(held) == [("held_out", "holdout"), ("suppressed", "cooldown")]
    assert len(treated.state.policy.watch) == len(held.state.policy.watch) == 1
    released = treated.tick(T0 + 10 * HOUR)  # quiet hours end at 12:00 UTC (T0 is 03:00)
    assert [d.verdict for d in released.decisions] == ["released"] and len(treated.triggers) == 1


# --- the stored state: an eighth ledger part, only when there is something in it --------------------

# A held-out customer's state as the binary codec wrote it before held-out decisions were kept (burst,
# holdout 1.0, one burst at T0): a ledger of six parts (sends, episodes, pending, watch, recent, decisions).
OLD_HELD_OUT_STATE = bytes.fromhex(
    "829fce00014bffce6ae7fcb2a668656c642d3192ce0ab0cc78c4010384a164940103cd51179700000000030000a16296013592ce0ab0"
    "cc78c40103ce0ab0cc7881a245310381a56572726f7203a16e94010500cb41dac4cd1bf93a8fa168930101c40c00100000000000000000"
    "000000f80301970000000000030092ce00079a2bc40103fec40f5bbc746df0e10d6aea422e73ad824a039690c406c4b56bcd785a909194"
    "a56275727374a7686f6c646f757400ce00054600909291a56275727374919500ff0512c0")


def test_a_state_stored_before_held_out_decisions_were_kept_loads_and_is_written_without_them() -> None:
    state = CustomerState.from_bytes(OLD_HELD_OUT_STATE, CONFIG)
    assert state.policy.held == [] and [w.group for w in state.policy.watch] == ["holdout"]
    assert [(n.verdict, n.reason) for n in state.policy.decisions] == [("held_out", "holdout")]
    assert len(LEDGER.out(state.policy, 0)) == 6  # nothing held: no eighth part, as before
    assert CustomerState.from_bytes(state.to_bytes(), CONFIG) == state


def test_held_out_decisions_survive_the_binary_and_json_forms_and_a_restart() -> None:
    held = bursts(Customer(HALF, HELD_ID), [0])
    raw = held.state.to_bytes()
    back = CustomerState.from_bytes(raw, CONFIG)
    assert back == held.state and back.policy.held == [Held(held.decisions[0].at // 1, "burst")]
    assert PolicyLedger.from_dict(back.policy.to_dict()) == back.policy
    assert len(LEDGER.out(back.policy, 0)) == 8
    held.state = back  # the restarted worker decides from the stored state: still within the cooldown
    assert verdicts(bursts(held, [3]))[-1] == ("suppressed", "cooldown")


def test_a_ledger_with_only_held_out_decisions_writes_empty_sixth_and_seventh_parts() -> None:
    ledger = PolicyLedger(held=[Held(100.0, "burst")])
    assert LEDGER.out(ledger, 100) == [[], b"", [], [], [], [[], []], [], [[0, "burst"]]]
    assert LEDGER.back(LEDGER.out(ledger, 100), 100, CONFIG) == ledger


def test_a_malformed_held_out_entry_is_refused_with_value_error() -> None:
    for bad in ([[0]], [[0, "burst", 1]], [["x", "burst"]], [[0, 7]], "held"):
        try:
            LEDGER.back([[], b"", [], [], [], [[], []], [], bad], 100, CONFIG)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")
