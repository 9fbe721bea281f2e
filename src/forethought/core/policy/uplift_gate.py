"""``scores.uplift.<playbook>`` in playbook conditions: names, checks at load, and the uplift gate.

A condition may read ``scores.uplift.<name>`` for every playbook ``<name>`` of the same file whose
uplift can be learned (a live playbook with a holdout share, or a file with a global control group):
the estimated difference that playbook's message makes to the customer's chance of coming back
(:mod:`forethought.core.uplift`). At load, the condition's top-level ``and`` terms that read an
uplift score form the playbook's **uplift gate**; the other terms are its base condition. A term
that reads an uplift score must read nothing else (scores of other kinds go in their own terms), so
the gate means one thing: "is the message worth sending to this customer?".

At decision time the base condition picks the candidates as before. The gate is then checked after
the episode: while any uplift score it reads is unknown (the estimator is cold) it is **passed** and
the trigger's ``why`` says so; when every score is known and the gate is false the candidate is
suppressed with the reason ``low_uplift`` (kept for "why not?"), before cooldowns, caps and the
holdout, so treated and held-out customers stay alike.

>>> from forethought.core.policy.expr import Schema, compile_expression
>>> schema = with_uplift(Schema(frozenset({"scores.dropoff"})), ("nudge",))
>>> gate = split(compile_expression("scores.dropoff > 0.5 and scores.uplift.nudge > 0", schema), schema)
>>> gate.base.source, gate.term.source, gate.reads
('(scores.dropoff > 0.5)', '(scores.uplift.nudge > 0)', ('nudge',))
>>> gate.check({"nudge": None})
(True, 'uplift: unknown for nudge (too few labelled outcomes yet): not required')
>>> gate.check({"nudge": -0.05})
(False, 'uplift: nudge -0.05')
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from forethought.core.policy.expr import Expression, ExpressionError, Schema, compile_expression
from forethought.core.uplift import UpliftModels

PREFIX = "scores.uplift."
REASON = "low_uplift"


def with_uplift(schema: Schema, playbooks: Iterable[str]) -> Schema:
    """``schema`` that also knows ``scores.uplift.<name>`` for each of ``playbooks``."""
    return replace(schema, names=schema.names | {PREFIX + name for name in playbooks})


def reads(expression: Expression) -> tuple[str, ...]:
    """The playbooks whose uplift ``expression`` reads, sorted."""
    return tuple(sorted(name[len(PREFIX):] for name in expression.names if name.startswith(PREFIX)))


@dataclass(frozen=True, slots=True)
class UpliftGate:
    """A playbook's condition split in two: ``base`` picks candidates, ``term`` (reading only the
    uplift scores of ``reads``) decides whether the message is worth sending."""

    base: Expression
    term: Expression
    reads: tuple[str, ...]

    def check(self, scores: Mapping[str, float | None]) -> tuple[bool, str]:
        """Whether the gate lets the candidate through, and the check's text for ``why``."""
        unknown = [name for name in self.reads if scores.get(name) is None]
        if unknown:
            return True, f"uplift: unknown for {', '.join(unknown)} (too few labelled outcomes yet): not required"
        text = ", ".join(f"{name} {scores[name]:+g}" for name in self.reads)
        try:
            passed = self.term.holds({"scores": {"uplift": scores}})
        except ValueError:  # EvaluationError: a type error in the gate counts as not passed
            passed = False
        return passed, f"uplift: {text}"


def split(condition: Expression, schema: Schema) -> UpliftGate | None:
    """The uplift gate of a compiled ``condition`` (None when it reads no uplift score); raises
    :class:`ExpressionError` when a term mixes uplift scores with anything else."""
    if not reads(condition):
        return None
    text = condition.source.strip()
    body = ast.parse(text, mode="eval").body
    terms = body.values if isinstance(body, ast.BoolOp) and isinstance(body.op, ast.And) else [body]
    base, gate = [], []
    for term in terms:
        source = ast.get_source_segment(text, term) or ast.unparse(term)
        compiled = compile_expression(source, schema)
        if not reads(compiled):
            base.append(source)
        elif any(not name.startswith(PREFIX) for name in compiled.names):
            raise ExpressionError(f"the term '{source}' reads an uplift score and something else: give"
                                  " scores.uplift.* terms of their own, joined to the rest with 'and'")
        else:
            gate.append(source)
    join = lambda parts: " and ".join(f"({p})" for p in parts) or "true"  # noqa: E731
    return UpliftGate(compile_expression(join(base), schema), compile_expression(join(gate), schema),
                      reads(condition))


def learnable(name: str, mode: str, holdout: float, global_holdout: float) -> str | None:
    """Why the uplift of playbook ``name`` can never be learned (None when it can): it needs
    messaged *and* held-out customers of a live playbook."""
    if mode != "live":
        return f"scores.uplift.{name} is never known: playbook '{name}' is in {mode} mode (it messages no one)"
    if not holdout and not global_holdout:
        return (f"scores.uplift.{name} is never known: playbook '{name}' holds no one out"
                " (give it a holdout share, or the policy a global_holdout)")
    return None


def unknown_playbook(error: ExpressionError, playbooks: list[str]) -> str | None:
    """A clearer message for an unknown ``scores.uplift.<name>``: no playbook of the file, or read
    outside ``when`` (None for any other error).

    >>> unknown_playbook(ExpressionError("unknown name 'scores.uplift.nudj' (did you mean 'scores.uplift.nudge'?)"),
    ...                  ["nudge", "welcome"])
    "unknown playbook 'nudj' in 'scores.uplift.nudj' (playbooks of this file: nudge, welcome)"
    """
    quoted = f"unknown name '{PREFIX}"
    if not error.message.startswith(quoted):
        return None
    name = error.message[len(quoted):].split("'", 1)[0]
    if name in playbooks:
        return f"'{PREFIX}{name}' may only be read in 'when' (where it is the playbook's uplift gate)"
    return f"unknown playbook '{name}' in '{PREFIX}{name}' (playbooks of this file: {', '.join(playbooks)})"


def judge_uplift(gate: UpliftGate, raw: bytes, models: UpliftModels | None) -> tuple[bool, str]:
    """:meth:`UpliftGate.check` with the customer's scores from ``models`` (None: all unknown), from
    the features the decision's watch keeps (``raw``: :func:`forethought.core.uplift.snapshot`)."""
    return gate.check({name: None if models is None else models.score(name, raw) for name in gate.reads})
