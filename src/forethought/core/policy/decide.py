"""From detections to decisions: playbooks, then one policy that explains every verdict.

For each detection every playbook listening to its signal evaluates its condition; each
match (a *candidate*) then passes, in order: episode (once per episode), cooldown,
arbitration (a trigger of equal or higher priority within the window wins), consent (falling
to the next preferred channel), frequency caps (per channel, across channels, per playbook)
and quiet hours (``defer`` holds the trigger in state until the window opens, ``drop``
suppresses it). Only then the holdout: a customer who *would* have received the trigger is
held out instead (global control group, then the playbook's share), so treated and held-out
customers are alike and lift is fair. A held-out decision starts the playbook's cooldown as a send
does (and a trigger of the playbook waiting for its release counts as sent), so each episode within a
cooldown is decided once in either arm; it uses no frequency cap and wins no arbitration, since no
message went out. A trigger that passes carries the checks in ``why``; every candidate becomes one
:class:`Decision`, with a reason when nothing was sent.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from forethought.contracts.records import Choice, Trigger, Why
from forethought.core import sendtime
from forethought.core.bandit import Bandits, uniform
from forethought.core.ledger import Held, Pending, PolicyLedger, Pull, Sent, Watch, pull_digest
from forethought.core.policy import sendwindow
from forethought.core.policy.expr import EvaluationError
from forethought.core.policy.limits import SENT_AT, caps_allow, caps_text, cooling, span, without_failed_send
from forethought.core.policy.profiles import ProfileState
from forethought.core.policy.rules import Playbook, Rules
from forethought.core.policy.timing import QuietHours, in_holdout
from forethought.core.policy.uplift_gate import REASON as LOW_UPLIFT
from forethought.core.policy.uplift_gate import judge_uplift
from forethought.core.signals import Detection, Observation, bounded_text, build_trigger, utc
from forethought.core.uplift import UpliftModels, snapshot

SUPPRESSION_REASONS = ("episode", "cooldown", "arbitration", "opted_out", "consent", "frequency_cap",
                       "quiet_hours", "condition_error", "expired", LOW_UPLIFT)


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy did with one candidate: ``verdict`` and, when not sent, the ``reason``."""

    playbook: str
    verdict: str  # sent | shadow | deferred | released | fallback | held_out | suppressed
    at: float
    reason: str | None = None
    trigger_id: str | None = None
    channel: str | None = None
    mode: str = "live"
    variant: str | None = None  # the playbook variant a sent trigger carries (core.bandit)


@dataclass(slots=True)
class Verdicts:
    """Everything one policy pass produced."""

    live: list[Trigger] = field(default_factory=list)
    shadow: list[Trigger] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Context:
    """What a policy pass needs besides the candidate."""

    customer_id: str
    account_id: str | None
    ledger: PolicyLedger
    profile: ProfileState
    rules: Rules
    env: dict[str, Any]
    uplift: UpliftModels | None = None  # the partition's uplift estimators (None: every uplift score unknown)
    activity: sendtime.Activity | None = None  # the customer's and the population's active hours (send windows)
    bandits: Bandits | None = None  # the partition's (None: variants are chosen uniformly, nothing learns)


def decide(detections: list[Detection], ctx: Context, out: Verdicts) -> None:
    """Evaluate playbooks on ``detections`` and run each match through the policy, best first."""
    candidates: list[tuple[Playbook, Detection, dict[str, Any]]] = []
    for detection in detections:
        env = {**ctx.env, "signal": detection.signal, "scores": {**ctx.env.get("scores", {}), **detection.scores},
               "context": detection.context}
        for book in ctx.rules.listening(detection.signal):
            try:
                if book.base.holds(env):  # the condition without its uplift terms (core.policy.uplift_gate)
                    candidates.append((book, detection, env))
            except EvaluationError:
                out.decisions.append(Decision(book.name, "suppressed", detection.at, "condition_error", mode=book.mode))
    for book, detection, env in sorted(candidates, key=lambda c: -c[0].priority):
        _judge(book, detection, env, ctx, out)


def _judge(book: Playbook, detection: Detection, env: dict[str, Any], ctx: Context, out: Verdicts) -> None:
    now, ledger = detection.at, ctx.ledger
    episode = _episode(book, detection, env)
    if ledger.has_episode(book.name, episode):
        if detection.signal != "daily":  # a daily re-check of a condition that already fired is not news
            out.decisions.append(Decision(book.name, "suppressed", now, "episode", mode=book.mode))
        return
    checks = [f"episode: first for {episode}"]
    # the features uplift learns from (core.uplift), for playbooks whose uplift a condition reads
    x = snapshot(env) if book.uplift is not None or book.name in ctx.rules.uplift_learned else b""
    if book.uplift is not None:  # not worth sending: the episode stays open, as for any suppression
        passed, check = judge_uplift(book.uplift, x, ctx.uplift)
        if not passed:
            out.decisions.append(Decision(book.name, "suppressed", now, LOW_UPLIFT, mode=book.mode))
            return
        checks.append(check)
    plan = _plan(book, checks, ctx, now, book.channels, fresh=True)
    if plan.verdict == "suppress":  # the episode stays open: a later look (e.g. tomorrow's) may send
        out.decisions.append(Decision(book.name, "suppressed", now, plan.reason, mode=book.mode))
        return
    ledger.mark_episode(book.name, episode)
    group = _holdout_group(book, ctx)
    if book.mode == "live":  # held-out customers are those who *would* have received it: lift is fair
        since = float(math.floor(now))  # whole seconds keep the state small
        ledger.start_watch(Watch(book.name, group or "treated", since, since + ctx.rules.reengagement_window, x))
    if group is not None:
        if book.mode == "live":  # its cooldown runs from here, as from a send; caps are untouched (no message)
            ledger.record_held(Held(float(math.floor(now)), book.name), ctx.rules.memory)
        out.decisions.append(Decision(book.name, "held_out", now, group, mode=book.mode))
        return
    trigger = build_trigger(
        detection, playbook=book.name, channel=book.channels[0], priority=book.priority,
        customer_id=ctx.customer_id, account_id=ctx.account_id, episode=episode, ttl=book.ttl,
        context=_context(book, env, detection), mode=book.mode,
    )
    chosen = choose_variant(book, trigger.trigger_id, plan, ctx, now) if book.variants else None  # after holdout
    plan.checks.append(f"holdout: treated (playbook share {book.holdout:g}, global {ctx.rules.global_holdout:g})")
    _carry_out(book, plan, trigger, detection.signal, ctx, out, now, verdict="sent", chosen=chosen)


def release(ctx: Context, now: float, out: Verdicts) -> None:
    """Send deferred triggers whose quiet hours have ended; they face the policy again."""
    due = sorted((p for p in ctx.ledger.pending if p.release_at <= now), key=lambda p: -p.trigger["priority"])
    ctx.ledger.pending = [p for p in ctx.ledger.pending if p.release_at > now]
    for pending in due:
        trigger = Trigger.model_validate(pending.trigger)
        book = ctx.rules.by_name.get(trigger.playbook)
        if book is None:
            out.decisions.append(Decision(trigger.playbook, "suppressed", now, "playbook_removed", trigger.trigger_id))
            continue
        kept = [c for c in (trigger.why.checks if trigger.why else [])
                if c.startswith(("episode", "uplift", "holdout", "quiet", sendwindow.CHECK))]
        channels = book.channels_for(trigger.variant)
        if trigger.channel in channels:
            channels = channels[channels.index(trigger.channel):]
        plan = _plan(book, kept, ctx, now, channels)
        _carry_out(book, plan, trigger, pending.signal, ctx, out, now, verdict="released")


def fallback(ctx: Context, trigger_id: str, failed_channel: str, now: float, out: Verdicts) -> None:
    """A delivery failed: offer the same trigger on the next preferred channel that may be used."""
    raw = ctx.ledger.take_recent(trigger_id)
    book = None if raw is None else ctx.rules.by_name.get(raw["playbook"])
    channels = () if book is None or raw is None else book.channels_for(raw.get("variant"))
    if raw is None or book is None or failed_channel not in channels:
        return
    original = Trigger.model_validate({k: v for k, v in raw.items() if k != SENT_AT})
    rest = channels[channels.index(failed_channel) + 1:]
    if not rest:
        out.decisions.append(Decision(book.name, "suppressed", now, "no_fallback_channel", trigger_id))
        return
    kept = [c for c in (original.why.checks if original.why else []) if c.startswith(("episode", "uplift", "holdout"))]
    retry = original.model_copy(update={
        "trigger_id": str(uuid.uuid5(uuid.UUID(original.trigger_id), "fallback:" + ",".join(rest))),
        "fallback_of": original.trigger_id,
    })
    failed = Sent(raw[SENT_AT], book.name, original.channel, book.priority) if SENT_AT in raw else None
    continued = replace(ctx, ledger=without_failed_send(ctx.ledger, failed))  # kept before 2026-12-07: none
    plan = _plan(book, [*kept, f"fallback: {failed_channel} failed"], continued, now, rest)
    signal = original.why.signal if original.why else "fallback"
    _carry_out(book, plan, retry, signal, ctx, out, now, verdict="fallback")


@dataclass(slots=True)
class Plan:
    """What the policy would do, worked out without touching anything."""

    verdict: str  # send | defer | suppress
    checks: list[str]
    reason: str | None = None
    channel: str | None = None
    release_at: float | None = None


def _plan(book: Playbook, checks: list[str], ctx: Context, now: float, channels: tuple[str, ...],
          fresh: bool = False) -> Plan:
    """Cooldown, arbitration, consent, caps and quiet hours, in that order; the first that fails is the reason.
    ``fresh``: a new candidate (not a release or a fallback), for which a waiting trigger of its playbook
    counts against the cooldown."""
    ledger, rules = ctx.ledger, ctx.rules
    checks = list(checks)
    if rules.passthrough:
        return Plan("send", [*checks, "pass-through: no policy"], channel=channels[0])
    if book.cooldown and cooling(book, ledger, now, fresh):
        return Plan("suppress", checks, "cooldown")
    checks.append(f"cooldown: none of this playbook within {span(book.cooldown)}")
    if any(now - s.at < rules.arbitration_window and s.priority >= book.priority and s.playbook != book.name
           for s in ledger.sent) or any(p.trigger["priority"] >= book.priority and p.trigger["playbook"] != book.name
                                        for p in ledger.pending):  # a rival waiting for quiet hours to end
        return Plan("suppress", checks, "arbitration")
    checks.append(f"arbitration: no trigger of priority >= {book.priority} within {span(rules.arbitration_window)}")
    if ctx.profile.profile is not None and ctx.profile.profile.opted_out:
        return Plan("suppress", checks, "opted_out")
    allowed = [c for c in channels if ctx.profile.allows(c, rules.consent_required)]
    if not allowed:
        return Plan("suppress", checks, "consent")
    channel = next((c for c in allowed if caps_allow(book, c, ledger, rules, now)), None)
    if channel is None:
        return Plan("suppress", checks, "frequency_cap")
    checks += [f"consent: {channel}", f"caps: {caps_text(book, channel, ledger, rules, now)}"]
    window, zone = _quiet_window(book, ctx)
    if book.send_window and not any(c.startswith((sendwindow.CHECK, "fallback")) for c in checks):
        hold, check = sendwindow.hold(now, book.send_window, ctx.profile.timezone, ctx.activity, window, zone,
                                    "deferred" if book.mode == "live" else "would defer")
        checks.append(check)
        if hold is not None:
            return Plan("defer" if book.mode == "live" else "send", checks, channel=channel, release_at=hold)
    if window is None or zone is None:
        return Plan("send", checks, channel=channel)
    if not window.contains(now, zone):
        if not any(c.startswith("quiet hours: deferred") for c in checks):
            checks.append(f"quiet hours: outside {window} in {zone}")
        return Plan("send", checks, channel=channel)
    if book.quiet_hours == "drop":
        return Plan("suppress", checks, "quiet_hours")
    opens = window.next_open(now, zone)
    verb = "deferred" if book.mode == "live" else "would defer"
    checks.append(f"quiet hours: {verb} from {_local(now, zone)} to {_local(opens, zone)} {zone}")
    return Plan("defer" if book.mode == "live" else "send", checks, channel=channel, release_at=opens)


def release_active(ctx: Context, now: float, out: Verdicts) -> None:
    """The customer is active at ``now``: triggers waiting for their likely active hour go now (they
    face the policy again, quiet hours included), since the hour they waited for is here in fact."""
    ledger = ctx.ledger
    early = [p for p in ledger.pending
             if p.release_at > now and sendwindow.waits_for_activity(p.trigger) and not _quiet_now(p, ctx, now)]
    if not early:
        return
    note = sendwindow.active_note(now, ctx.profile.timezone)
    ledger.pending = [Pending(now, p.signal, sendwindow.with_check(p.trigger, note)) if p in early else p
                      for p in ledger.pending]
    release(ctx, now, out)


def _quiet_now(pending: Pending, ctx: Context, now: float) -> bool:
    book = ctx.rules.by_name.get(pending.trigger["playbook"])
    window, zone = (None, None) if book is None else _quiet_window(book, ctx)
    return window is not None and zone is not None and window.contains(now, zone)


def _carry_out(book: Playbook, plan: Plan, trigger: Trigger, signal: str, ctx: Context, out: Verdicts,
               now: float, verdict: str, chosen: dict[str, Any] | None = None) -> None:
    """Apply a plan: suppress (with its reason), hold until quiet hours end, or send; ``chosen``: the
    variant's fields (:func:`choose_variant`)."""
    if plan.verdict == "suppress":
        out.decisions.append(Decision(book.name, "suppressed", now, plan.reason, trigger.trigger_id, mode=book.mode))
        return
    choice = chosen.pop("choice") if chosen else trigger.why.choice if trigger.why is not None else None
    why = Why(rule=book.condition.source, signal=signal, checks=plan.checks, choice=choice)
    if plan.verdict == "defer":
        held = trigger.model_copy(update={"channel": plan.channel, "why": why, **(chosen or {})})
        ctx.ledger.pending.append(Pending(plan.release_at or now, signal, held.model_dump(mode="json")))
        out.decisions.append(Decision(book.name, "deferred", now, None, trigger.trigger_id, plan.channel))
        return
    update: dict[str, Any] = {"channel": plan.channel, "why": why, **(chosen or {})}
    if verdict == "released":
        update |= {"released_at": utc(now), "expires_at": utc(now) + timedelta(seconds=book.ttl)}
    final = trigger.model_copy(update=update)
    if book.mode == "shadow":
        out.shadow.append(final)
        out.decisions.append(Decision(book.name, "shadow", now, None, final.trigger_id, plan.channel, "shadow"))
        return
    channels = book.channels_for(final.variant)
    can_fall_back = channels.index(final.channel) < len(channels) - 1  # keep it for a fallback
    kept = None
    sent = Sent(float(math.floor(now)), book.name, final.channel, book.priority)
    if can_fall_back:  # with its send's time: a fallback leaves that send out of its cooldown and caps
        kept = final.model_dump(mode="json", exclude={"why"}) | {"why": {"rule": "", "signal": signal},
                                                                 SENT_AT: sent.at}
    ctx.ledger.record_send(sent, ctx.rules.memory, kept, final.expires_at.timestamp())
    if final.variant is not None:
        _pulled(book, final, ctx, now, verdict, out)
    out.live.append(final)
    out.decisions.append(Decision(book.name, verdict, now, None, final.trigger_id, final.channel,
                                  variant=final.variant))


def choose_variant(book: Playbook, trigger_id: str, plan: Plan, ctx: Context, now: float) -> dict[str, Any]:
    """The trigger's variant, picked by the playbook's bandit (:mod:`forethought.core.bandit`), as the
    trigger fields it sets. A variant's own channel replaces the plan's when consent and caps allow it."""
    names, settings = book.variant_names, book.bandit
    if ctx.bandits is None or settings is None:  # no partition models (a test, a tool): uniform, nothing learns
        name = names[int(uniform(trigger_id, 0) * len(names))]
        choice = Choice(policy="uniform", variant=name, probabilities={n: round(1.0 / len(names), 4) for n in names})
    else:
        choice = ctx.bandits.of(book.name, names, settings.policy).choice(trigger_id)
        name = choice.variant
    variant = book.variants[names.index(name)]
    channel = variant.channel
    if channel is not None and channel != plan.channel and not ctx.rules.passthrough \
            and ctx.profile.allows(channel, ctx.rules.consent_required) and caps_allow(book, channel, ctx.ledger,
                                                                                       ctx.rules, now):
        at = next(i for i, c in enumerate(plan.checks) if c.startswith("consent: "))
        caps = caps_text(book, channel, ctx.ledger, ctx.rules, now)
        plan.checks[at:at + 2] = [f"consent: {channel}", f"caps: {caps}"]
        plan.channel = channel
    return {"variant": name, "template": variant.template, "choice": choice}


def _pulled(book: Playbook, final: Trigger, ctx: Context, now: float, verdict: str, out: Verdicts) -> None:
    """A trigger with a variant went out: its reward is awaited (a fallback takes over its pull)."""
    if verdict == "fallback":
        if final.fallback_of is not None and (pull := ctx.ledger.take_pull(final.fallback_of)) is not None:
            ctx.ledger.start_pull(Pull(pull_digest(final.trigger_id), pull.playbook, pull.variant, pull.until))
        return
    if book.bandit is None or final.variant is None:
        return
    pull = Pull(pull_digest(final.trigger_id), book.name, final.variant, float(math.floor(now)) + book.bandit.window)
    if ctx.bandits is not None:
        ctx.bandits.of(book.name, book.variant_names, book.bandit.policy).pulled(final.variant)
    pushed = ctx.ledger.start_pull(pull)
    if pushed is not None:  # more pulls awaited than a state keeps: the oldest ends now, unrewarded
        out.observations.append(settle(pushed, False, ctx.rules, ctx.bandits))


def settle(pull: Pull, success: bool, rules: Rules, bandits: Bandits | None) -> Observation:
    """A pull ends: its playbook's bandit learns ``success``; what a driver counts."""
    book = rules.by_name.get(pull.playbook)
    if bandits is not None and book is not None and book.bandit is not None:
        bandits.of(book.name, book.variant_names, book.bandit.policy).settle(pull.variant, success)
    return Observation("variant_reward", {"playbook": pull.playbook, "variant": pull.variant,
                                          "result": "success" if success else "failure"})


def _quiet_window(book: Playbook, ctx: Context) -> tuple[QuietHours | None, str | None]:
    if book.quiet_hours == "ignore" or ctx.profile.profile is None:
        return None, None
    own = ctx.profile.profile.quiet_hours
    window = QuietHours.parse(own) if own else ctx.rules.quiet_hours
    return window, ctx.profile.timezone


def _holdout_group(book: Playbook, ctx: Context) -> str | None:
    if ctx.rules.global_holdout and in_holdout(ctx.customer_id, "global-control", ctx.rules.global_holdout):
        return "global_control"
    if book.holdout and in_holdout(ctx.customer_id, f"holdout:{book.name}", book.holdout):
        return "holdout"
    return None


def _episode(book: Playbook, detection: Detection, env: dict[str, Any]) -> str:
    if book.episode is not None:
        try:
            value = book.episode.evaluate(env)
        except EvaluationError:
            value = None
        if value is not None:
            return str(value)
    return detection.episode


def _context(book: Playbook, env: dict[str, Any], detection: Detection) -> dict[str, Any]:
    """The trigger's context: the detection's, then the playbook's expressions; every text is cut to
    the contract's limit (an expression may join texts that are each within it)."""
    context: dict[str, Any] = dict(detection.context)
    for name, expression in book.context:
        try:
            value = expression.evaluate(env)
        except EvaluationError:
            value = None
        context[name] = value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
    return {name: bounded_text(value) for name, value in context.items()}


def _local(at: float, zone: str) -> str:
    return utc(at).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")
