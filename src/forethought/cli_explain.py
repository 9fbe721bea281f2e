"""``forethought explain CUSTOMER``: why a customer got (or did not get) a message, for people.

Against a running worker (any worker of the group: ``/customers/{id}`` is forwarded to the one that
holds the customer)::

    forethought explain cust-42                                # FORETHOUGHT_WEB_HOST/PORT, FORETHOUGHT_WEB_TOKEN
    forethought explain cust-42 --url http://worker-1:6066 --at 2026-11-22T12:00:00Z

or from a replay of event files, as the worker would have answered at ``--at`` (default: the last event)::

    forethought explain cust-42 --from-replay events.jsonl.gz --at 2026-11-22T12:00:00Z

It prints the customer's recent decisions (sent, deferred, held out, suppressed with the reason),
oldest first, then what waits, the scores and the facts the playbooks read; ``--json`` prints the view
as the worker answers it. Failures are one line (docs/cli-errors.md): an unknown customer exits 1, a
worker that cannot be reached or refuses the token exits 6.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from forethought.ops.failures import BadSetting, Failure, require_readable

TIMEOUT_SECONDS = 10.0
SHOWN_FACTS = (("events", "events"), ("visits", "visits"), ("events_last_hour", "events in the last hour"),
               ("events_last_24_hours", "events in the last 24 h"), ("silence_seconds", "silent for"),
               ("typical_gap_seconds", "typical gap"), ("silence_threshold_seconds", "silence threshold"),
               ("in_error_burst", "in an error burst"))


class WorkerUnavailable(Failure):
    """The worker's web server cannot be reached, or refuses us."""

    exit_code = 6


class UnknownCustomer(Failure):
    """No state for the customer (never seen, or evicted after being idle)."""

    exit_code = 1


def explain_command(
    customer: str = typer.Argument(..., help="The customer_id to explain."),
    at: str = typer.Option(None, "--at", metavar="TIME", help="ISO-8601 time with offset, e.g. 2026-11-22T12:00:00Z:"
                           " a replay stops there; against a worker, decisions up to then."),
    url: str = typer.Option(None, "--url", help="A worker's web root (default: FORETHOUGHT_WEB_HOST/PORT)."),
    token: str = typer.Option(None, "--token", envvar="FORETHOUGHT_WEB_TOKEN", show_envvar=True, show_default=False,
                              help="Bearer token of the worker's /customers view."),
    from_replay: list[Path] = typer.Option(None, "--from-replay", metavar="FILE",
                                           help="Replay these event files (.gz ok) instead of asking a worker."),
    playbooks: str = typer.Option(None, help="With --from-replay: the playbook file (default: the worker's)."),
    as_json: bool = typer.Option(False, "--json", help="Print the view as JSON (as the worker answers it)."),
) -> None:
    """Why (not)? A customer's recent decisions with their reasons, scores and facts."""
    from forethought.ops.startup import load_settings

    until = parse_time(at) if at else None
    if from_replay and url:
        raise BadSetting("give either --url (ask a worker) or --from-replay (replay files), not both")
    if from_replay:
        view = replay_view(customer, from_replay, until, playbooks)
    else:
        view = fetch_view(url or load_settings().web_url, customer, token)
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    for line in render(view, None if from_replay else until):
        typer.echo(line)


def parse_time(text: str) -> float:
    """POSIX seconds of an ISO-8601 time with an offset; :class:`BadSetting` otherwise.

    >>> parse_time("2026-11-22T12:00:00Z")
    1795348800.0
    >>> parse_time("2026-11-22 12:00")
    Traceback (most recent call last):
    forethought.ops.failures.BadSetting: --at 2026-11-22 12:00: give a time zone offset, e.g. 2026-11-22T12:00:00Z
    """
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise BadSetting(f"--at {text}: not an ISO-8601 time (e.g. 2026-11-22T12:00:00Z)") from None
    if when.tzinfo is None:
        raise BadSetting(f"--at {text}: give a time zone offset, e.g. 2026-11-22T12:00:00Z")
    return when.timestamp()


def fetch_view(base: str, customer: str, token: str | None) -> dict[str, Any]:
    """``GET {base}/customers/{customer}`` as JSON; a failure that says what to do otherwise."""
    if not base.startswith(("http://", "https://")):
        raise BadSetting(f"--url {base}: give the worker's web root, e.g. http://127.0.0.1:6066")
    target = f"{base.rstrip('/')}/customers/{urllib.parse.quote(customer, safe='')}"
    request = urllib.request.Request(target, headers={"Accept": "application/json",
                                                      **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with _OPENER.open(request, timeout=TIMEOUT_SECONDS) as response:
            return _json(response.read(), base)
    except urllib.error.HTTPError as error:
        body = _json(error.read(), base, strict=False)
        raise _refusal(error.code, body, base, customer, token) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise WorkerUnavailable(f"cannot reach the worker at {base}: {reason} (is it running? give its web root"
                                " with --url, or set FORETHOUGHT_WEB_HOST and FORETHOUGHT_WEB_PORT)") from None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A worker never redirects: a redirect is answered as the HTTP error it is, not followed."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _refusal(status: int, body: dict[str, Any], base: str, customer: str, token: str | None) -> Failure:
    said = body.get("error") or f"HTTP {status}"
    if status == 404:
        where = body.get("served_by") or base
        return UnknownCustomer(f"no state for customer {customer!r} (asked {where}, which holds its partition"
                               f" {body.get('partition', '?')}): never seen, or evicted after being idle")
    if status == 401:
        fix = "the token was refused" if token else "set FORETHOUGHT_WEB_TOKEN or give --token"
        return WorkerUnavailable(f"the worker at {base} wants a bearer token for /customers: {fix}")
    return WorkerUnavailable(f"the worker at {base} answered {status}: {said}")


def _json(raw: bytes, base: str, strict: bool = True) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict):
        return data
    if strict:
        raise WorkerUnavailable(f"{base} did not answer with a customer view (is it a Forethought worker?)")
    return {}


def replay_view(customer: str, inputs: list[Path], until: float | None, playbooks: str | None) -> dict[str, Any]:
    """The customer's view as the worker would have shown it at ``until`` (default: the last event):
    ``inputs`` replayed in event-time order through the worker's core, playbooks and policy."""
    from forethought.core.summary import summary_view
    from forethought.core.why import customer_view, iso, with_iso_times
    from forethought.ops.playbooks import BUILTIN, PlaybookFileError, load_rules
    from forethought.ops.startup import load_settings
    from forethought.ops.topics import load_catalogue
    from forethought.replay.reader import sorted_lines
    from forethought.replay.runner import Replayer

    settings = load_settings()
    book = Path(playbooks) if playbooks else settings.playbooks_file
    for path in inputs:
        require_readable({"--from-replay": path})
    require_readable({"FORETHOUGHT_TOPICS_FILE": settings.topics_file,  # builtin playbooks: no file
                      "--playbooks" if playbooks else "FORETHOUGHT_PLAYBOOKS_FILE": None if str(book) == BUILTIN
                      else book})
    try:
        rules = load_rules(book)
    except PlaybookFileError as exc:
        raise BadSetting(f"invalid playbooks: {exc}") from None
    replay = Replayer(settings.engine, rules=rules, partitions=load_catalogue(settings.topics_file).partitions)
    for line in sorted_lines(inputs):
        if until is not None and line.invalid is None and line.ts > until:
            break  # in event-time order: nothing after this one is before --at
        replay.feed(line)
    replay.finish(until)
    state, summary = replay.runtime(customer).state(customer), replay.runtime(customer).summary(customer)
    end = until if until is not None else replay.now
    if (state is None and summary is None) or end is None:
        upto = f" up to {iso(until)}" if until is not None else ""
        raise UnknownCustomer(f"no state for customer {customer!r} in {', '.join(map(str, inputs))}{upto}:"
                              " no event or profile of theirs")
    if state is None and summary is not None:  # evicted after idling: scored from its summary
        view = customer_view(summary.revive(settings.engine), end, settings.engine, replay.model(customer))
        view |= summary_view(summary, end, settings.engine)
    else:
        view = customer_view(state, end, settings.engine, replay.model(customer))  # type: ignore[arg-type]
    view = with_iso_times(view)
    profile = replay.runtime(customer).profile(customer).to_dict()
    return {**view, "profile": profile, "served_by": f"replay of {', '.join(str(p) for p in inputs)}"}


def render(view: dict[str, Any], until: float | None = None) -> list[str]:
    """The view as lines for people: who, then decisions (up to ``until``), what waits, scores, facts."""
    lines = [f"customer {view.get('customer_id')} as of {view.get('as_of')} ({view.get('served_by', 'a worker')}"
             + (f", partition {view['partition']})" if "partition" in view else ")"),
             f"  first seen {view.get('first_seen') or '-'}, last seen {view.get('last_seen') or '-'}"]
    decisions = view.get("decisions")
    if decisions is None:
        lines.append("decisions: this worker keeps none (a version before decisions were kept?)")
    else:
        shown = [d for d in decisions if until is None or _epoch(d.get("since") or d["at"]) <= until]
        lines.append(f"decisions, oldest first ({len(shown)}"
                     + (f" up to the --at time, of {len(decisions)} kept)" if until is not None else " kept)")
                     + (":" if shown else ": none"))
        lines += [f"  {_decision(d)}" for d in shown]
    policy = view.get("policy") or {}
    for held in policy.get("deferred", []):
        lines.append(f"waiting: {held['playbook']} deferred until {held['release_at']} (trigger {held['trigger_id']})")
    for watch in policy.get("measuring", []):
        lines.append(f"measuring: {watch['playbook']} ({watch['group']}) until {watch['until']}")
    scores = view.get("scores") or {}
    lines.append("scores: " + (", ".join(f"{k} {_number(v)}" for k, v in sorted(scores.items())) or "-"))
    if view.get("uplift"):  # scores.uplift.<playbook> (docs/uplift.md)
        lines.append("uplift: " + ", ".join(_uplift(name, u) for name, u in sorted(view["uplift"].items())))
    facts = [f"{label} {_span(view[key]) if key.endswith('_seconds') else _number(view[key])}"
             for key, label in SHOWN_FACTS if view.get(key) is not None]
    lines.append("facts: " + (", ".join(facts) or "-"))
    return lines


def _uplift(playbook: str, u: dict[str, Any]) -> str:
    """``playbook +0.042``, or why there is no score yet (labels per arm so far)."""
    if u.get("score") is not None:
        return f"{playbook} {u['score']:+.4f}"
    return f"{playbook} - (cold: {u.get('treated_labels')} treated, {u.get('holdout_labels')} held-out labels)"


def _decision(d: dict[str, Any]) -> str:
    verdict, reason, channel = d.get("verdict"), d.get("reason"), d.get("channel")
    text = {"sent": "sent", "released": "sent after quiet hours", "fallback": "sent on a fallback channel",
            "deferred": "deferred by quiet hours", "shadow": "would have sent (shadow mode)",
            "held_out": "held out", "suppressed": "suppressed"}.get(str(verdict), str(verdict))
    if channel:
        text += f" on {channel}"
    if reason:
        text += f" ({reason})" + (f": {d['why']}" if d.get("why") and d["why"] != reason else "")
    if (d.get("count") or 1) > 1:
        text += f"  x{d['count']} since {d.get('since')}"
    return f"{d.get('at')}  {d.get('playbook', '?'):<22} {text}"


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _span(seconds: Any) -> str:
    """A duration for people.

    >>> _span(42.0), _span(5400), _span(970_600.5)
    ('42 s', '1.5 h', '11.2 d')
    """
    if not isinstance(seconds, (int, float)):
        return _number(seconds)
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"
