"""Compiled playbooks and the shared policy: what :func:`decide` runs against.

A :class:`~forethought.contracts.playbooks.PlaybookFile` is compiled once (conditions become
closures, names are checked against what the engine provides), so a typo fails at start-up:

>>> from forethought.contracts.playbooks import PlaybookFile
>>> spec = PlaybookFile.model_validate({"playbooks": [{"name": "burst", "on": ["error_burst"],
...     "when": "scores.anomaly >= 4 and profile.plan != 'free'", "channels": ["in_app"], "priority": 70}]})
>>> compile_rules(spec).playbooks[0].condition.holds({"scores": {"anomaly": 6.0}, "profile": {"plan": "pro"}})
True
>>> bad = spec.model_copy(update={"playbooks": [spec.playbooks[0].model_copy(update={"when": "scores.anomly > 4"})]})
>>> compile_rules(bad)
Traceback (most recent call last):
...
forethought.core.policy.rules.RuleError: playbooks.0.when: unknown name 'scores.anomly' (did you mean 'scores.anomaly'?)
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from functools import cache

from forethought.contracts.playbooks import BanditSpec, CapSpec, PlaybookFile, PlaybookSpec, seconds
from forethought.contracts.records import Channel
from forethought.core.bandit import BanditSettings, Variant
from forethought.core.policy.expr import Expression, ExpressionError, Schema, compile_expression
from forethought.core.policy.lifecycle import Bounds, bounds
from forethought.core.policy.timing import QuietHours
from forethought.core.policy.uplift_gate import UpliftGate, learnable, split, unknown_playbook, with_uplift
from forethought.core.registry import Registry, builtin_registry

PROFILE = ("plan", "timezone", "locale", "signup_date", "renewal_date", "days_since_signup",
           "days_until_renewal", "opted_out", "known")


@cache
def schema_of(registry: Registry) -> Schema:
    """The names a condition may read: every registered detector's scores and features (the
    vocabulary comes from the detectors, :mod:`forethought.core.plugin`), and the profile's."""
    return Schema(
        names=frozenset({"signal", *(f"scores.{s}" for s in registry.scores),
                         *(f"features.{f}" for f in registry.features), *(f"profile.{p}" for p in PROFILE)}),
        open_prefixes=frozenset({"context", "profile.attributes", "profile.consent",
                                 *(f"features.{f}" for f in registry.open_features)}),
        functions={},
    )


class RuleError(ValueError):
    """A playbook file that cannot run; ``path`` locates the field (e.g. ``playbooks.2.when``)."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        self.path, self.message = path, message
        super().__init__(f"{'.'.join(map(str, path))}: {message}")


@dataclass(frozen=True, slots=True)
class Cap:
    """At most ``limit`` triggers in any rolling ``window`` seconds; ``channel`` None counts all."""

    limit: int
    window: float
    channel: Channel | None = None

    @classmethod
    def of(cls, spec: CapSpec) -> Cap:
        return cls(spec.max, spec.window_seconds, None if spec.channel == "any" else spec.channel)


@dataclass(frozen=True, slots=True)
class Playbook:
    """A compiled playbook."""

    name: str
    signals: frozenset[str]
    condition: Expression
    channels: tuple[Channel, ...]
    priority: int
    description: str = ""
    cooldown: float = 0.0
    caps: tuple[Cap, ...] = ()
    quiet_hours: str = "defer"
    holdout: float = 0.0
    mode: str = "live"
    episode: Expression | None = None
    context: tuple[tuple[str, Expression], ...] = ()
    ttl: float = 86_400.0
    send_window: float | None = None  # seconds: released at the likely active hour within it (core.sendtime)
    uplift: UpliftGate | None = None  # the uplift terms of ``condition`` (core.policy.uplift_gate)
    variants: tuple[Variant, ...] = ()  # chosen by a bandit (core.bandit); none: the playbook as written
    bandit: BanditSettings | None = None  # set when there are variants
    variant_names: tuple[str, ...] = ()

    @property
    def base(self) -> Expression:
        """What picks candidates: the condition without its uplift terms."""
        return self.condition if self.uplift is None else self.uplift.base

    def variant(self, name: str | None) -> Variant | None:
        """The variant called ``name`` (None: none, or no longer listed after a reload)."""
        return next((v for v in self.variants if v.name == name), None) if name is not None else None

    def channels_for(self, variant: str | None) -> tuple[Channel, ...]:
        """The channels in order of preference for ``variant``: its own first, then the playbook's."""
        chosen = self.variant(variant)
        if chosen is None or chosen.channel is None:
            return self.channels
        first: Channel = chosen.channel  # type: ignore[assignment]  # a Channel, checked by the contract
        return (first, *(c for c in self.channels if c != first))


@dataclass(frozen=True, slots=True)
class Rules:
    """Playbooks plus the policy they share."""

    playbooks: tuple[Playbook, ...]
    arbitration_window: float = 3600.0
    caps: tuple[Cap, ...] = ()
    quiet_hours: QuietHours | None = None
    consent_required: frozenset[str] = frozenset()
    global_holdout: float = 0.0
    reengagement_window: float = 7 * 86_400.0
    passthrough: bool = False
    by_name: dict[str, Playbook] = field(default_factory=dict, compare=False)
    by_signal: dict[str, tuple[Playbook, ...]] = field(default_factory=dict, compare=False)
    memory: float = field(default=0.0, compare=False)
    daily_bounds: tuple[Bounds | None, ...] = field(default=(), compare=False)
    uplift_learned: frozenset[str] = field(default=frozenset(), compare=False)  # playbooks whose uplift is read

    def __post_init__(self) -> None:
        self.by_name.update({p.name: p for p in self.playbooks})
        signals = {s for p in self.playbooks for s in p.signals}
        self.by_signal.update({s: tuple(p for p in self.playbooks if s in p.signals) for s in signals})
        object.__setattr__(self, "memory", self._memory())
        # when each playbook listening to "daily" can hold (None: at any time), see core.policy.lifecycle
        object.__setattr__(self, "daily_bounds", tuple(bounds(p.condition.source) for p in self.listening("daily")))
        read = frozenset(n for p in self.playbooks if p.uplift for n in p.uplift.reads)  # core.policy.uplift_gate
        object.__setattr__(self, "uplift_learned", read)

    def listening(self, signal: str) -> tuple[Playbook, ...]:
        """Playbooks evaluated on ``signal`` (worked out once, at compile time)."""
        return self.by_signal.get(signal, ())

    def _memory(self) -> float:
        """How long the policy must remember a send: the longest cap, cooldown or arbitration window."""
        windows = [self.arbitration_window, *(c.window for c in self.caps)]
        windows += [w for b in self.playbooks for w in (b.cooldown, *(c.window for c in b.caps))]
        return max(windows)


def compile_rules(spec: PlaybookFile, registry: Registry | None = None) -> Rules:
    """Compile a validated file against the detectors of ``registry`` (default: the built-in ones);
    raises :class:`RuleError` naming the field at fault."""
    policy, registry = spec.policy, registry or builtin_registry()
    return Rules(
        playbooks=tuple(_compile_playbook(i, book, registry, spec) for i, book in enumerate(spec.playbooks)),
        arbitration_window=seconds(policy.arbitration_window),
        caps=tuple(Cap.of(c) for c in policy.caps),
        quiet_hours=QuietHours.parse(policy.quiet_hours) if policy.quiet_hours else None,
        consent_required=frozenset(policy.consent_required),
        global_holdout=policy.global_holdout,
        reengagement_window=seconds(policy.reengagement_window),
    )


def _compile_playbook(index: int, spec: PlaybookSpec, registry: Registry, file: PlaybookFile) -> Playbook:
    schema = schema_of(registry)
    names = [book.name for book in file.playbooks]

    def expression(source: str, *where: str, known: Schema = schema) -> Expression:
        try:
            return compile_expression(source, known)
        except ExpressionError as error:
            raise RuleError(("playbooks", index, *where), unknown_playbook(error, names) or str(error)) from None

    for at, signal in enumerate(spec.on):
        if signal not in registry.signals:
            close = difflib.get_close_matches(signal, registry.signals, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(registry.signals)}"
            raise RuleError(("playbooks", index, "on", at), f"unknown signal '{signal}' ({hint})")

    condition = expression(spec.when, "when", known=with_uplift(schema, names))
    return Playbook(
        name=spec.name, signals=frozenset(spec.on), condition=condition,
        channels=tuple(spec.channels), priority=spec.priority, description=spec.description,
        cooldown=spec.cooldown_seconds, caps=tuple(Cap.of(c) for c in spec.caps), quiet_hours=spec.quiet_hours,
        holdout=spec.holdout, mode=spec.mode,
        episode=expression(spec.episode, "episode") if spec.episode else None,
        context=tuple((name, expression(src, "context", name)) for name, src in spec.context.items()),
        ttl=seconds(spec.ttl), uplift=_uplift_gate(index, condition, schema, names, file),
        send_window=spec.send_window_seconds,
        variants=tuple(Variant(v.name, v.template, v.channel) for v in spec.variants),
        bandit=_bandit(spec) if spec.variants else None, variant_names=tuple(v.name for v in spec.variants),
    )


def _bandit(spec: PlaybookSpec) -> BanditSettings:
    bandit = spec.bandit or BanditSpec()
    return BanditSettings(bandit.policy, frozenset(bandit.reward), bandit.window_seconds)


def _uplift_gate(index: int, condition: Expression, schema: Schema, names: list[str],
                 file: PlaybookFile) -> UpliftGate | None:
    """The condition's uplift terms, checked: each playbook read must be one whose uplift can be learned."""
    try:
        gate = split(condition, with_uplift(schema, names))
    except ExpressionError as error:
        raise RuleError(("playbooks", index, "when"), str(error)) from None
    for name in gate.reads if gate else ():
        book = file.playbooks[names.index(name)]
        problem = learnable(name, book.mode, book.holdout, file.policy.global_holdout)
        if problem:
            raise RuleError(("playbooks", index, "when"), problem)
    return gate


@cache
def builtin_rules() -> Rules:
    """One playbook per detector and no policy at all (no consent, quiet hours, caps or holdout):
    what the engine does without a playbook file, and how detection quality is measured."""
    spec = PlaybookFile.model_validate({"playbooks": [
        {"name": "silence_dropoff", "on": ["silence"], "channels": ["email"], "priority": 50,
         "description": "The customer has been silent much longer than their own usual gap between visits."},
        {"name": "churn_risk", "on": ["churn"], "channels": ["cs_outreach"], "priority": 50,
         "description": "The customer's probability of no activity within the churn horizon passed its threshold."},
        {"name": "activity_decline", "on": ["decline"], "channels": ["email"], "priority": 55,
         "description": "The customer's weekly activity has fallen well below their own usual level."},
        {"name": "usage_anomaly", "on": ["usage_anomaly"], "channels": ["cs_outreach"], "priority": 60,
         "description": "The customer reported usage far above or below their own level for that metric."},
        {"name": "error_burst", "on": ["error_burst"], "channels": ["in_app"], "priority": 70,
         "description": "The customer is hitting errors far above their own baseline."},
        {"name": "unusual_behaviour", "on": ["behaviour_anomaly"], "channels": ["cs_outreach"], "priority": 55,
         "description": "A minute of activity unlike what the partition's Half-Space Trees learned as usual."},
    ], "policy": {"arbitration_window": "0s"}})
    return replace(compile_rules(spec), passthrough=True)

