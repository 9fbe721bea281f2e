"""Playbook variants chosen by a bandit (#16 point 2): the file format, the choice, the rewards,
the holdout, checkpoints and determinism, through the partition runtime."""

from __future__ import annotations

import hashlib
import json
import math
import random
from datetime import datetime, timezone

import pytest

from forethought.contracts.events import ErrorEvent, PageView
from forethought.contracts.records import Outcome, Trigger
from forethought.core.bandit import VariantBandit, thompson_probabilities
from forethought.core.config import EngineConfig
from forethought.core.engine import Step
from forethought.core.models import PartitionModels
from forethought.core.runtime import PartitionRuntime
from forethought.core.state import decode_state, encode_state
from forethought.ops.playbooks import PlaybookFileError as PlaybookError
from forethought.ops.playbooks import parse_rules

CONFIG = EngineConfig(bucket_seconds=10, burst_min_errors=3)
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc).timestamp()
DAY = 86_400.0


def book(variants: str = "", bandit: str = "", holdout: float = 0.0, extra: str = "") -> str:
    return f"""playbooks:
  - name: burst_help
    on: [error_burst]
    channels: [in_app, email]
    priority: 70
    holdout: {holdout}
{variants}{bandit}{extra}"""


TWO = """    variants:
      - {name: short, template: help_short}
      - {name: by_mail, template: help_long, channel: email}
"""


def runtime(text: str, models: PartitionModels | None = None) -> PartitionRuntime:
    return PartitionRuntime(0, CONFIG, parse_rules(text), models or PartitionModels())


def error(customer: str, at: float, n: int) -> ErrorEvent:
    return ErrorEvent(event_id=f"e-{customer}-{n}", customer_id=customer, code="E42",
                      occurred_at=datetime.fromtimestamp(at, tz=timezone.utc))


def burst(rt: PartitionRuntime, customer: str, at: float) -> list[Step]:
    """Three errors of ``customer`` in one bucket: one error_burst detection."""
    return [e.step for i in range(3) for e in rt.feed(error(customer, at + i, i)) if e.step is not None]


def outcome(trigger: Trigger, status: str, at: float) -> Outcome:
    return Outcome(outcome_id=f"o-{trigger.trigger_id}-{status}", trigger_id=trigger.trigger_id,
                   customer_id=trigger.customer_id, channel=trigger.channel, status=status,
                   occurred_at=datetime.fromtimestamp(at, tz=timezone.utc))


def triggers(steps: list[Step]) -> list[Trigger]:
    return [t for s in steps for t in s.triggers]


def rewards(steps: list[Step]) -> list[tuple[str, str]]:
    return [(str(o.detail["variant"]), str(o.detail["result"])) for s in steps for o in s.observations
            if o.kind == "variant_reward"]


# --- the file format ---------------------------------------------------------------------------


@pytest.mark.parametrize(("variants", "message"), [
    ("    variants:\n      - {name: a}\n      - {name: a}\n", "variant names must be unique; repeated: a"),
    ("    variants:\n      - {name: a}\n", "list at least two variants (or none)"),
    ("    variants:\n" + "".join(f"      - {{name: v{i}}}\n" for i in range(9)), "at most 8 items"),
    ("    variants:\n      - {name: Short}\n      - {name: b}\n", "variants.0.name"),
    ("    variants:\n      - {name: a, channel: fax}\n      - {name: b}\n", "variants.0.channel"),
    ("    variants:\n      - {name: a, colour: red}\n      - {name: b}\n", "variants.0.colour"),
])
def test_a_bad_variant_list_is_refused_naming_the_field(variants: str, message: str) -> None:
    with pytest.raises(PlaybookError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_rules(book(variants))


@pytest.mark.parametrize(("bandit", "message"), [
    ("    bandit: {policy: greedy}\n", "bandit.policy"),
    ("    bandit: {reward: [delivered]}\n", "bandit.reward.0"),
    ("    bandit: {reward: []}\n", "bandit.reward"),
    ("    bandit: {reward_window: soon}\n", "expected a duration"),
])
def test_bad_bandit_settings_are_refused_naming_the_field(bandit: str, message: str) -> None:
    with pytest.raises(PlaybookError, match=message):
        parse_rules(book(TWO, bandit))


def test_variants_and_bandit_settings_compile() -> None:
    rules = parse_rules(book(TWO, "    bandit: {policy: ucb, reward: [converted, came_back], reward_window: 2d}\n"))
    playbook = rules.by_name["burst_help"]
    assert [v.name for v in playbook.variants] == ["short", "by_mail"]
    assert playbook.channels_for("by_mail") == ("email", "in_app")
    assert playbook.channels_for("short") == playbook.channels_for(None) == ("in_app", "email")
    assert (playbook.bandit.policy, playbook.bandit.rewards, playbook.bandit.window) == (
        "ucb", frozenset({"converted", "came_back"}), 2 * DAY)


# --- without variants: exactly as before --------------------------------------------------------


def test_without_variants_the_triggers_are_byte_for_byte_those_of_before() -> None:
    """The digest of the triggers the same stream produced before variants existed (main at 18bfe2b)."""
    rt = runtime(book(holdout=0.3, extra='    context: {code: "context.error_code"}\n'))
    lines = []
    for c in range(40):
        for i in range(3):
            event = ErrorEvent(event_id=f"e{c}-{i}", customer_id=f"c{c}", code="E42",
                               occurred_at=datetime(2026, 11, 22, 12, c, i, tzinfo=timezone.utc))
            lines += [t.model_dump_json() for e in rt.feed(event) if e.step for t in e.step.triggers]
    assert len(lines) == 32
    assert hashlib.sha256("\n".join(lines).encode()).hexdigest() == \
        "60c9295146ec74c076fecc123dbb6a2f355cc08197c35f194fc8264cca171946"
    assert not any(key in line for line in lines for key in ('"variant"', '"template"', '"choice"'))
    assert rt.models is not None and rt.models.bandits.by_playbook == {}


# --- the choice and the holdout --------------------------------------------------------------------


def test_a_trigger_carries_its_variant_template_channel_and_the_choice_in_why() -> None:
    rt = runtime(book(TWO))
    sent = triggers([s for c in range(20) for s in burst(rt, f"c{c}", T0 + 60 * c)])
    assert len(sent) == 20 and {t.variant for t in sent} == {"short", "by_mail"}
    assert sent[0].why.choice.probabilities == {"short": 0.5, "by_mail": 0.5}  # type: ignore[union-attr]  # nothing known
    for trigger in sent:
        assert trigger.why is not None and trigger.why.choice is not None
        assert trigger.why.choice.variant == trigger.variant and trigger.why.choice.policy == "thompson"
        assert sum(trigger.why.choice.probabilities.values()) == pytest.approx(1.0, abs=1e-3)
        assert (trigger.template, trigger.channel) == (
            ("help_short", "in_app") if trigger.variant == "short" else ("help_long", "email"))
        assert "consent: " + trigger.channel in trigger.why.checks
        assert json.loads(trigger.model_dump_json())["variant"] == trigger.variant
    assert rt.models is not None and sum(a[0] for a in rt.models.bandits.by_playbook["burst_help"].arms.values()) == 20


def test_held_out_customers_never_get_a_variant_nor_count_as_a_pull() -> None:
    plain, varied = runtime(book(holdout=0.4)), runtime(book(TWO, holdout=0.4))
    verdicts: dict[PartitionRuntime, list[str]] = {plain: [], varied: []}
    for rt in (plain, varied):
        for c in range(60):
            decisions = [d for s in burst(rt, f"c{c}", T0 + 60 * c) for d in s.decisions]
            verdicts[rt] += [d.verdict for d in decisions]
            pulls = rt.state(f"c{c}").policy.pulls  # type: ignore[union-attr]
            if any(d.verdict == "held_out" for d in decisions):
                assert all(d.variant is None for d in decisions) and not pulls
            else:
                assert len(pulls) == (rt is varied)
    assert verdicts[plain] == verdicts[varied] and 10 < verdicts[varied].count("held_out") < 40  # the same customers
    arms = varied.models.bandits.by_playbook["burst_help"].arms  # type: ignore[union-attr]
    assert sum(a[0] for a in arms.values()) == verdicts[varied].count("sent")


def test_a_variant_channel_without_consent_falls_back_to_the_playbooks_channels() -> None:
    text = book(TWO).replace("playbooks:", "policy:\n  consent_required: [email]\nplaybooks:")
    rt = runtime(text)
    sent = triggers([s for c in range(20) for s in burst(rt, f"c{c}", T0 + 60 * c)])
    assert {t.variant for t in sent} == {"short", "by_mail"} and {t.channel for t in sent} == {"in_app"}


# --- rewards -------------------------------------------------------------------------------------


def test_a_counted_outcome_is_a_success_and_no_success_within_the_window_a_failure() -> None:
    """A window's end is settled at the customer's next due time after it (here: the re-engagement
    watch's end, 7 days after the send), or by an outcome that comes too late."""
    rt = runtime(book(TWO, "    bandit: {reward: [clicked], reward_window: 1d}\n"))
    first, second = (triggers(burst(rt, c, T0 + 60 * n))[0] for n, c in enumerate(("c1", "c2")))
    opened = [e.step for e in rt.feed(outcome(first, "opened", T0 + 600)) if e.step]
    clicked = [e.step for e in rt.feed(outcome(first, "clicked", T0 + 700)) if e.step]
    assert rewards(opened) == [] and rewards(clicked) == [(first.variant, "success")]
    assert rewards([e.step for e in rt.feed(outcome(first, "clicked", T0 + 800)) if e.step]) == []  # once
    (pull,) = rt.state("c2").policy.pulls  # type: ignore[union-attr]
    assert pull.until == math.floor(second.fired_at.timestamp()) + DAY
    late = [e.step for e in rt.feed(outcome(second, "clicked", pull.until + 1)) if e.step]
    assert rewards(late) == [(second.variant, "failure")]  # after its window: no success
    third = triggers(burst(rt, "c3", T0 + 120))[0]
    ended = [e.step for e in rt.advance(T0 + 120 + 8 * DAY) if e.step]  # the next due time after the window
    assert rewards(ended) == [(third.variant, "failure")]
    assert not rt.state("c3").policy.pulls  # type: ignore[union-attr]
    arms = rt.models.bandits.by_playbook["burst_help"].arms  # type: ignore[union-attr]
    assert sum(a[1] for a in arms.values()) == 1 and sum(a[2] for a in arms.values()) == 2


def test_an_unsubscribe_is_a_failure_and_coming_back_a_success_when_it_counts() -> None:
    rt = runtime(book(TWO, "    bandit: {reward: [converted, came_back]}\n"))
    gone, back = (triggers(burst(rt, c, T0 + 60 * n))[0] for n, c in enumerate(("c1", "c2")))
    assert rewards([e.step for e in rt.feed(outcome(gone, "unsubscribed", T0 + 300)) if e.step]) == [
        (gone.variant, "failure")]
    visit = PageView(event_id="v1", customer_id="c2", page="home",
                     occurred_at=datetime.fromtimestamp(T0 + DAY, tz=timezone.utc))
    assert rewards([e.step for e in rt.feed(visit) if e.step]) == [(back.variant, "success")]


def test_a_fallback_delivery_keeps_the_pull() -> None:
    rt = runtime(book(TWO))
    sent = triggers([s for c in range(8) for s in burst(rt, f"c{c}", T0 + 60 * c)])
    short = next(t for t in sent if t.variant == "short")  # in_app first: email is its fallback
    retry = triggers([e.step for e in rt.feed(outcome(short, "failed", T0 + 900)) if e.step])
    assert [(t.channel, t.variant, t.fallback_of) for t in retry] == [("email", "short", short.trigger_id)]
    assert rewards([e.step for e in rt.feed(outcome(retry[0], "converted", T0 + 950)) if e.step]) == [
        ("short", "success")]


# --- learning: a synthetic Bernoulli stream --------------------------------------------------------


def play(policy: str, rates: tuple[float, ...], seed: int, rounds: int = 1500) -> tuple[list[int], float]:
    """``rounds`` choices of a bandit over arms rewarded with ``rates``; pulls per arm and regret."""
    names = tuple(f"v{i}" for i in range(len(rates)))
    bandit, rng, regret = VariantBandit(names, policy), random.Random(seed), 0.0
    for t in range(rounds):
        name, _ = bandit.choose(f"seed{seed}-trigger{t}")
        bandit.pulled(name)
        rate = rates[names.index(name)]
        bandit.settle(name, rng.random() < rate)
        regret += max(rates) - rate
    return [bandit.arms[n][0] for n in names], regret


@pytest.mark.parametrize("policy", ["thompson", "ucb"])
def test_the_bandit_finds_the_best_variant_in_most_seeds(policy: str) -> None:
    """Deterministic (fixed seeds, hashed choices): it cannot flake. Best arm 12 % against 8 % and 5 %;
    measured: Thompson finds it in 50 of 50 seeds with 0.15 x uniform's regret, UCB1 in 50 with 0.62 x."""
    rates, rounds = (0.05, 0.12, 0.08), 4000
    found, regrets = 0, []
    for seed in range(50):
        pulls, regret = play(policy, rates, seed, rounds)
        found += pulls.index(max(pulls)) == 1
        regrets.append(regret)
    uniform = rounds * (max(rates) - sum(rates) / len(rates))
    assert found >= 45, found
    assert sum(regrets) / len(regrets) < (0.3 if policy == "thompson" else 0.75) * uniform


def test_thompson_probabilities_agree_with_sampling() -> None:
    rng, posteriors = random.Random(7), [(3, 97), (5, 95), (10, 100)]
    wins = [0, 0, 0]
    for _ in range(20_000):
        draws = [rng.betavariate(s + 1, f + 1) for s, f in posteriors]
        wins[draws.index(max(draws))] += 1
    assert thompson_probabilities(posteriors) == pytest.approx([w / 20_000 for w in wins], abs=0.015)


# --- checkpoints, restarts and replay ------------------------------------------------------------


def test_a_checkpoint_round_trip_gives_the_same_choices() -> None:
    models = PartitionModels()
    bandit = models.bandits.of("burst_help", ("short", "by_mail"), "thompson")
    for t in range(300):
        name, _ = bandit.choose(f"t{t}")
        bandit.pulled(name)
        bandit.settle(name, t % (3 if name == "short" else 5) == 0)
    again = PartitionModels.restore(models.to_bytes(), 0)
    assert again.origin == "restored"
    twin = again.bandits.by_playbook["burst_help"]
    assert twin.arms == bandit.arms
    assert [twin.choose(f"k{i}") for i in range(200)] == [bandit.choose(f"k{i}") for i in range(200)]


@pytest.mark.parametrize(("bandits", "problem"), [
    ({"burst_help": {"policy": "exec", "arms": {"a": [0, 0, 0], "b": [0, 0, 0]}}}, "policy and arms"),
    ({"burst_help": {"policy": "ucb", "arms": {"a": [0, 0, 0]}}}, "2 to 8 names"),
    ({"burst_help": {"policy": "ucb", "arms": {"a": [0, -1, 0], "b": [0, 0, 0]}}}, "negative"),
    ({"burst_help": {"policy": "ucb", "arms": {"a": [0, 0.5, 0], "b": [0, 0, 0]}}}, "not a list of integers"),
    ({"burst_help": {"policy": "ucb", "arms": {"a": [0, 0], "b": [0, 0, 0]}}}, "holds 2 values"),
    ({"burst_help": {"policy": "ucb", "arms": {"__import__": [0, 0, 0], "b": [0, 0, 0]}}}, "2 to 8 names"),
    ({"Bad Name": {"policy": "ucb", "arms": {"a": [0, 0, 0], "b": [0, 0, 0]}}}, "playbook names"),
    ({"burst_help": {"policy": "thompson", "arms": {"a": [1, 1, 0], "b": [0, 0, 0]}, "basis": {"a": [1, 0]}}},
     "basis"),
    ([1, 2, 3], "playbook names"),
])
def test_a_hostile_checkpoint_is_refused_clearly(bandits: object, problem: str) -> None:
    from forethought.core.checkpoint import open_checkpoint, seal
    header, payload = open_checkpoint(PartitionModels().to_bytes())
    del header["sha256"]
    restored = PartitionModels.restore(seal(header, {**payload, "bandits": bandits}), 0)
    assert restored.origin == "failed" and restored.bandits.by_playbook == {}
    assert restored.problem is not None and restored.problem.startswith("corrupt model checkpoint") and \
        problem in restored.problem


def stream(rt: PartitionRuntime, customers: range, rng: random.Random) -> list[str]:
    """Bursts for ``customers``, each trigger clicked with a chance depending on its variant."""
    out = []
    for c in customers:
        for trigger in triggers(burst(rt, f"c{c}", T0 + 60 * c)):
            out.append(trigger.model_dump_json())
            if rng.random() < (0.6 if trigger.variant == "by_mail" else 0.2):
                for e in rt.feed(outcome(trigger, "clicked", T0 + 60 * c + 30)):
                    out += [t.model_dump_json() for t in (e.step.triggers if e.step else ())]
    return out


def test_replay_is_deterministic_and_a_restart_from_checkpoints_continues_the_same() -> None:
    text = book(TWO, "    bandit: {reward_window: 1h}\n")
    whole = runtime(text)
    expected = stream(whole, range(200), random.Random(3))
    assert stream(runtime(text), range(200), random.Random(3)) == expected  # replay: the same, byte for byte
    first = runtime(text)
    rng = random.Random(3)
    before = stream(first, range(100), rng)
    states = [decode_state(encode_state(s), CONFIG) for s in first.customers()]
    restarted = runtime(text, PartitionModels.restore(first.models.to_bytes(), 0))  # type: ignore[union-attr]
    restarted.restore(states)
    assert before + stream(restarted, range(100, 200), rng) == expected
    arms = whole.models.bandits.by_playbook["burst_help"].arms  # type: ignore[union-attr]
    assert arms["by_mail"][0] > arms["short"][0]  # it learned that the mail variant is clicked more


def test_a_customer_evicted_while_a_pull_waits_settles_it_as_a_failure() -> None:
    rt = runtime(book(TWO, "    bandit: {reward_window: 30d}\n"))
    sent = triggers(burst(rt, "c1", T0))[0]
    evicted = [e.step for e in rt.advance(T0 + CONFIG.windows.idle_ttl_seconds + DAY) if e.step]
    last = next(s for s in evicted if any(o.kind == "evicted" for o in s.observations))
    assert rewards(evicted) == rewards([last]) == [(sent.variant, "failure")]


def test_waiting_pulls_survive_the_state_codec_and_a_garbled_one_is_refused() -> None:
    from forethought.core.ledger import Pull, pull_digest
    rt = runtime(book(TWO))
    burst(rt, "c1", T0)
    state = rt.state("c1")
    assert state is not None and [p.playbook for p in state.policy.pulls] == ["burst_help"]
    again = decode_state(encode_state(state), CONFIG)
    assert again.policy.pulls == state.policy.pulls and again.policy.pulls[0].trigger == pull_digest(
        triggers(burst(runtime(book(TWO)), "c1", T0))[0].trigger_id)
    state.policy.pulls = [Pull(b"12345", "burst_help", "short", T0)]  # a digest one byte short
    with pytest.raises(ValueError, match="pull"):
        decode_state(encode_state(state), CONFIG)
