"""From detections to decisions: playbooks, then one policy that explains every verdict.

For each detection every playbook listening to its signal evaluates its condition; each
match (a *candidate*) then passes, in order: episode (once per episode), holdout (global
control group, then the playbook's share), cooldown, arbitration (a trigger of equal or
higher priority within the window wins), consent (falling to the next preferred channel),
frequency caps (per channel, across channels, per playbook) and quiet hours (``defer`` holds
the trigger in state until the window opens, ``drop`` suppresses it). A trigger that passes
carries the checks in ``why``; one that does not becomes a :class:`Decision` with a reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from forethought.contracts.records import Trigger, Why
from forethought.core.policy.expr import EvaluationError
from forethought.core.policy.ledger import Pending, PolicyLedger, Sent, Watch
from forethought.core.policy.profiles import ProfileState
from forethought.core.policy.rules import Cap, Playbook, Rules
from forethought.core.policy.timing import QuietHours, cap_allows, in_holdout
from forethought.core.signals import Detection, build_trigger, utc

SUPPRESSION_REASONS = ("episode", "cooldown", "arbitration", "opted_out", "consent", "frequency_cap",
                       "quiet_hours", "condition_error", "expired")


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


@dataclass(slots=True)
class Verdicts:
    """Everything one policy pass produced."""

    live: list[Trigger] = field(default_factory=list)
    shadow: list[Trigger] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Context:
    """What a policy pass needs besides the candidate."""

    customer_id: str
    account_id: str | None
    ledger: PolicyLedger
    profile: ProfileState
    rules: Rules
    env: dict[str, Any]


def decide(detections: list[Detection], ctx: Context, out: Verdicts) -> None:
    """Evaluate playbooks on ``detections`` and run each match through the policy, best first."""
    candidates: list[tuple[Playbook, Detection, dict[str, Any]]] = []
    for detection in detections:
        env = {**ctx.env, "signal": detection.signal, "scores": {**ctx.env.get("scores", {}), **detection.scores},
               "context": detection.context}
        for book in ctx.rules.listening(detection.signal):
            try:
                if book.condition.holds(env):
                    candidates.append((book, detection, env))
            except EvaluationError:
                out.decisions.append(Decision(book.name, "suppressed", detection.at, "condition_error", mode=book.mode))
    for book, detection, env in sorted(candidates, key=lambda c: -c[0].priority):
        _judge(book, detection, env, ctx, out)


def _judge(book: Playbook, detection: Detection, env: dict[str, Any], ctx: Context, out: Verdicts) -> None:
    now, ledger, live = detection.at, ctx.ledger, book.mode == "live"
    episode = _episode(book, detection, env)
    if ledger.has_episode(book.name, episode):
        if detection.signal != "daily":  # a daily re-check of a condition that already fired is not news
            out.decisions.append(Decision(book.name, "suppressed", now, "episode", mode=book.mode))
        return
    checks = [f"episode: first for {episode}"]
    group = _holdout_group(book, ctx)
    if live:
        ledger.mark_episode(book.name, episode)
        ledger.start_watch(Watch(book.name, group or "treated", now, now + ctx.rules.reengagement_window))
    if group is not None:
        out.decisions.append(Decision(book.name, "held_out", now, group, mode=book.mode))
        return
    checks.append(f"holdout: treated (playbook share {book.holdout:g}, global {ctx.rules.global_holdout:g})")
    trigger = build_trigger(
        detection, playbook=book.name, channel=book.channels[0], priority=book.priority,
        customer_id=ctx.customer_id, account_id=ctx.account_id, episode=episode, ttl=book.ttl,
        context=_context(book, env, detection), mode=book.mode,
    )
    _dispatch(book, trigger, detection.signal, checks, ctx, out, now, released=False)


def release(ctx: Context, now: float, out: Verdicts) -> None:
    """Send deferred triggers whose quiet hours have ended; they face the policy again."""
    due = sorted((p for p in ctx.ledger.pending if p.release_at <= now), key=lambda p: -p.trigger["priority"])
    ctx.ledger.pending = [p for p in ctx.ledger.pending if p.release_at > now]
    for pending in due:
        trigger = Trigger.model_validate(pending.trigger)
        book = ctx.rules.by_name.get(trigger.playbook)
        if book is None:
            out.decisions.append(Decision(trigger.playbook, "suppressed", now, "playbook_removed"))
            continue
        checks = list(trigger.why.checks if trigger.why else [])
        _dispatch(book, trigger, pending.signal, checks, ctx, out, now, released=True)


def fallback(ctx: Context, trigger_id: str, failed_channel: str, now: float, out: Verdicts) -> None:
    """A delivery failed: offer the same trigger on the next preferred channel that may be used."""
    raw = ctx.ledger.take_recent(trigger_id)
    book = None if raw is None else ctx.rules.by_name.get(raw["playbook"])
    if raw is None or book is None or failed_channel not in book.channels:
        return
    original = Trigger.model_validate(raw)
    rest = book.channels[book.channels.index(failed_channel) + 1:]
    if not rest:
        out.decisions.append(Decision(book.name, "suppressed", now, "no_fallback_channel", trigger_id))
        return
    checks = [*(original.why.checks if original.why else []), f"fallback: {failed_channel} failed"]
    retry = original.model_copy(update={
        "trigger_id": str(uuid.uuid5(uuid.UUID(original.trigger_id), "fallback:" + ",".join(rest))),
        "fallback_of": original.trigger_id,
    })
    _dispatch(book, retry, original.why.signal if original.why else "fallback", checks, ctx, out, now,
              released=True, channels=rest, verdict="fallback")


def _dispatch(book: Playbook, trigger: Trigger, signal: str, checks: list[str], ctx: Context, out: Verdicts,
              now: float, *, released: bool, channels: tuple[str, ...] | None = None, verdict: str | None = None) -> None:
    """Cooldown, arbitration, consent, caps, quiet hours; then send, defer or suppress."""
    ledger, rules, mode = ctx.ledger, ctx.rules, book.mode

    def suppress(reason: str) -> None:
        out.decisions.append(Decision(book.name, "suppressed", now, reason, trigger.trigger_id, mode=mode))

    if book.cooldown and any(now - t < book.cooldown for t in ledger.send_times(now, playbook=book.name)):
        return suppress("cooldown")
    checks.append(f"cooldown: none of this playbook within {_span(book.cooldown)}")
    rival = next((s for s in ledger.sent if now - s.at < rules.arbitration_window and s.priority >= book.priority
                  and s.playbook != book.name), None)
    if rival is not None:
        return suppress("arbitration")
    checks.append(f"arbitration: no trigger of priority >= {book.priority} within {_span(rules.arbitration_window)}")
    if ctx.profile.profile is not None and ctx.profile.profile.opted_out:
        return suppress("opted_out")
    allowed = [c for c in (channels or book.channels) if ctx.profile.allows(c, rules.consent_required)]
    if not allowed:
        return suppress("consent")
    channel = next((c for c in allowed if _caps_allow(book, c, ledger, rules, now)), None)
    if channel is None:
        return suppress("frequency_cap")
    checks += [f"consent: {channel}", f"caps: {_caps_text(book, channel, ledger, rules, now)}"]
    window, zone = _quiet_window(book, ctx)
    if window is not None and zone is not None and window.contains(now, zone):
        if book.quiet_hours == "drop":
            return suppress("quiet_hours")
        opens = window.next_open(now, zone)
        if mode == "live":
            checks.append(f"quiet hours: deferred from {_local(now, zone)} to {_local(opens, zone)} {zone}")
            held = trigger.model_copy(update={"channel": channel, "why": Why(rule=book.condition.source, signal=signal, checks=checks)})
            ledger.pending.append(Pending(opens, signal, held.model_dump(mode="json")))
            out.decisions.append(Decision(book.name, "deferred", now, None, trigger.trigger_id, channel))
            return
        checks.append(f"quiet hours: would defer to {_local(opens, zone)} {zone}")
    elif window is not None and zone is not None:
        checks.append(f"quiet hours: outside {window} in {zone}")
    _send(book, trigger, signal, checks, channel, ctx, out, now, released, verdict)


def _send(book: Playbook, trigger: Trigger, signal: str, checks: list[str], channel: str, ctx: Context,
          out: Verdicts, now: float, released: bool, verdict: str | None) -> None:
    update: dict[str, Any] = {"channel": channel, "why": Why(rule=book.condition.source, signal=signal, checks=checks)}
    if released:
        update |= {"released_at": utc(now), "expires_at": utc(now) + timedelta(seconds=book.ttl)}
    final = trigger.model_copy(update=update)
    if book.mode == "shadow":
        out.shadow.append(final)
        out.decisions.append(Decision(book.name, "shadow", now, None, final.trigger_id, channel, "shadow"))
        return
    ctx.ledger.record_send(Sent(now, book.name, channel, book.priority), final.model_dump(mode="json"),
                           final.expires_at.timestamp(), _horizon(ctx.rules))
    out.live.append(final)
    out.decisions.append(Decision(book.name, verdict or ("released" if released else "sent"), now, None,
                                  final.trigger_id, channel))


def _caps(book: Playbook, rules: Rules) -> Iterator[tuple[Cap, bool]]:
    """Every cap that applies to ``book``, with True for the playbook's own (per-playbook) caps."""
    yield from ((cap, False) for cap in rules.caps)
    yield from ((cap, True) for cap in book.caps)


def _caps_allow(book: Playbook, channel: str, ledger: PolicyLedger, rules: Rules, now: float) -> bool:
    for cap, own in _caps(book, rules):
        if cap.channel is not None and cap.channel != channel:
            continue
        times = ledger.send_times(now, channel=cap.channel, playbook=book.name if own else None)
        if not cap_allows(times, now, cap.limit, cap.window):
            return False
    return True


def _caps_text(book: Playbook, channel: str, ledger: PolicyLedger, rules: Rules, now: float) -> str:
    parts = []
    for cap, own in _caps(book, rules):
        if cap.channel is None or cap.channel == channel:
            used = len([t for t in ledger.send_times(now, channel=cap.channel, playbook=book.name if own else None)
                        if t > now - cap.window])
            scope = "this playbook" if own else (cap.channel or "all channels")
            parts.append(f"{scope} {used}/{cap.limit} per {_span(cap.window)}")
    return "; ".join(parts) or "none apply"


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
    context: dict[str, Any] = dict(detection.context)
    for name, expression in book.context:
        try:
            value = expression.evaluate(env)
        except EvaluationError:
            value = None
        context[name] = value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
    return context


def _horizon(rules: Rules) -> float:
    windows = [rules.arbitration_window, *(c.window for c in rules.caps)]
    windows += [w for b in rules.playbooks for w in (b.cooldown, *(c.window for c in b.caps))]
    return max(windows, default=0.0)


def _span(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _local(at: float, zone: str) -> str:
    return utc(at).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")
