"""The worker's recovery bookkeeping: the broker counts as unreachable after two unanswered checks in
a row, and each return to readiness is timed and exported by its cause."""

from __future__ import annotations

from forethought.ops.metrics import Metrics
from forethought.stream.recovery import Recovery, process_age


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_each_loss_of_readiness_is_timed_by_its_cause() -> None:
    metrics, now = Metrics(), [100.0]
    recovery = Recovery(metrics, clock=lambda: now[0], age=2.0)  # the process started 2 s before
    now[0] = 104.5
    assert recovery.observe(True) == 6.5
    assert sample(metrics, "forethought_recovery_seconds", cause="start") == 6.5
    now[0] = 200.0
    recovery.observe(False)  # a rebalance
    now[0] = 203.0
    assert recovery.observe(True) == 3.0
    assert sample(metrics, "forethought_recovery_seconds", cause="rebalance") == 3.0
    assert recovery.observe(True) is None, "only the return to readiness is timed"


def test_the_broker_is_unreachable_after_two_missed_checks_and_back_at_the_first_answer() -> None:
    metrics, now = Metrics(), [0.0]
    recovery = Recovery(metrics, clock=lambda: now[0], age=0.0)
    recovery.observe(True)
    recovery.broker_answered(False)
    assert recovery.reachable, "one unanswered request is no outage"
    now[0] = 10.0
    recovery.observe(False)  # Faust's rebalance as the connection dropped
    recovery.broker_answered(False)
    assert not recovery.reachable and sample(metrics, "forethought_broker_reachable") == 0
    recovery.observe(False)
    now[0] = 40.0
    recovery.broker_answered(True)
    assert recovery.reachable and sample(metrics, "forethought_broker_reachable") == 1
    assert recovery.observe(True) == 30.0
    assert sample(metrics, "forethought_recovery_seconds", cause="broker") == 30.0


def test_this_process_has_an_age() -> None:
    assert 0.0 < process_age() < 24 * 3600
