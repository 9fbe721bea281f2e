"""``forethought replay --html REPORT.html``: one self-contained page to share a backtest.

The page has no external resource at all: charts are inline SVG drawn here (:mod:`.svg_charts`), the
style sheet is inline, and its Content-Security-Policy forbids every fetch (``default-src 'none'``) and
every script but its own (allowed by hash). That one small script only records, in ``data-*``
attributes, how many marks of each chart the browser laid out with a size on the page (the browser test reads
them); the page reads the same without it. Every value from data is escaped (Jinja2 autoescape and
:class:`markupsafe.Markup` formatting).

>>> page = render_page({"records_read": 0, "valid": 0}, sources=["<x>.jsonl"])
>>> "&lt;x&gt;.jsonl" in page, "<x>" in page, "Needs --truth" in page
(True, False, True)
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from forethought.replay import svg_charts as charts

SCRIPT = """(function () {
  var drawn = 0;
  document.querySelectorAll("svg.chart").forEach(function (svg) {
    var marks = 0;
    svg.querySelectorAll(".mark").forEach(function (mark) {
      var box = mark.getBoundingClientRect();  // as laid out on the page: zero when hidden or empty
      if (box.width > 0 || box.height > 0) { marks += 1; }
    });
    var rect = svg.getBoundingClientRect();
    svg.setAttribute("data-marks-drawn", String(marks));
    if (marks > 0 && rect.width > 0 && rect.height > 0) { drawn += 1; }
  });
  document.body.setAttribute("data-charts-drawn", String(drawn));
})();"""

STYLE = """body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 800px; color: #222; }
body { padding: 0 1em; }
h1 { font-size: 1.6em; } h3 { font-size: 1.05em; margin-bottom: 0; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .6em 0; } td, th { padding: 2px 10px; text-align: right; }
td:first-child, th:first-child { text-align: left; } tr:nth-child(even) td { background: #f6f6f6; }
.note { color: #555; } .needs { background: #fff7e0; padding: .6em 1em; border-left: 4px solid #edc948; }
svg.chart { max-width: 100%; height: auto; display: block; margin: .5em 0; }
svg .grid { stroke: #e4e4e4; } svg .zero { stroke: #555; } svg .reference { stroke: #999; stroke-dasharray: 5 4; }
svg .whisker { stroke-width: 3; } svg text { font: 11px system-ui, sans-serif; fill: #333; }
svg .axis { font-size: 12px; fill: #555; }"""

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Backtest report · {{ period }}</title><style>{{ style }}</style></head>
<body>
<h1>Backtest report</h1>
<p>{{ num(r.records_read or 0) }} records read ({{ num(r.valid or 0) }} valid) from
{% for s in sources %}<code>{{ s }}</code>{{ ", " if not loop.last }}{% endfor %}; events {{ period }}.
{{ num(total_triggers) }} triggers{% if r.tick_errors %}, {{ r.tick_errors }} failed ticks{% endif %}.</p>
{% if invalid %}<p class="note">Invalid lines by reason:
{% for reason, n in invalid %}{{ reason }} {{ num(n) }}{{ ", " if not loop.last }}{% endfor %}.</p>{% endif %}
{% if missing %}<p class="needs" id="needs-truth">Needs --truth (ground truth), so not shown:
{{ missing | join(", ") }}. Run <code>forethought replay … --truth truth.jsonl</code> (<code>forethought simulate
--truth</code> writes one).</p>{% endif %}

<h2 id="triggers">Triggers per day per playbook</h2>
{% if per_day %}{{ per_day }}
<table><tr><th>playbook</th><th>live</th><th>shadow</th></tr>
{% for p, n, s in playbooks %}<tr><td>{{ p }}</td><td>{{ num(n) }}</td><td>{{ num(s) }}</td></tr>{% endfor %}
</table>{% else %}<p class="note">No trigger fired.</p>{% endif %}

<h2 id="suppressions">Suppression reasons</h2>
<p class="note">Candidates the policy did not send, by reason (colour: playbook).</p>
{% if suppressed %}{{ suppressed_chart }}
<table><tr><th>reason</th><th>suppressed</th></tr>
{% for reason, n in suppressed %}<tr><td>{{ reason }}</td><td>{{ num(n) }}</td></tr>{% endfor %}
</table>{% else %}<p class="note">Nothing was suppressed.</p>{% endif %}

<h2 id="lift">Lift over holdout</h2>
<p class="note">Share of measured customers active again within the re-engagement window, treated minus held
out, with a 95 % interval (Newcombe's score interval of a difference of two proportions). An interval
crossing zero means the backtest cannot tell the playbook from doing nothing.</p>
{% if lift_rows %}{{ lift_chart }}
<table><tr><th>playbook</th><th>treated</th><th>holdout</th><th>lift</th><th>95 % interval</th></tr>
{% for row in lift_rows %}<tr><td>{{ row.playbook }}</td><td>{{ row.treated }}</td><td>{{ row.holdout }}</td>
<td>{{ row.lift }}</td><td>{{ row.ci }}</td></tr>{% endfor %}
</table>{% else %}<p class="note">No playbook was measured in both a treated and a holdout group (a playbook
needs a holdout share, and customers whose re-engagement window ended within the data).</p>{% endif %}

{% if truth %}
<h2 id="scores">Scores of churned vs retained customers</h2>
<p class="note">Each customer's drop-off scores as the engine computed them day by day (daily looks), taken at
least {{ horizon_days }} days before the end of the data. <b>churned</b>: the customer dropped off and the score
was taken at most {{ horizon_days }} days before their last activity (or later); <b>retained</b>: every other
score. Bars are shares of each group, so groups of different sizes compare.</p>
{% for heading, chart in score_charts %}<h3>{{ heading }}</h3>{{ chart }}
{% else %}<p class="note">No daily scores were observed.</p>{% endfor %}

<h2 id="pr">Precision–recall</h2>
<p class="note">Every threshold on the same daily scores: precision = churned scores among those above the
threshold, recall = share of churned scores above it. Dashed: a random score. {{ ap_note }}</p>
{% if pr_chart %}{{ pr_chart }}{% else %}<p class="note">Needs both churned and retained scores.</p>{% endif %}

<h2 id="prediction-quality">Prediction quality</h2>
<p class="note">Per score against the truth: ROC-AUC, lift quality (Braze's scale: 2·AUC − 1 in percent, graded
Excellent from 60, Good from 40, Fair from 20), average precision and, for probabilities, the Brier score and the
mean predicted / observed rate per decile of the prediction. Definitions in docs/churn-quality.md.</p>
{% for view, part in prediction %}<h3>{{ view }} scores (horizon {{ fmt(part.horizon_days) }} days)</h3>
<table><tr><th>score</th><th>n</th><th>base rate</th><th>ROC-AUC</th><th>lift quality</th><th>grade</th><th>AP</th>
<th>Brier</th></tr>
{% for name, q in part.scores.items() %}<tr><td>{{ name }}</td><td>{{ num(q.n) }}</td><td>{{ fmt(q.base_rate) }}</td>
<td>{{ fmt(q.auc) }}</td><td>{{ fmt(q.lift_quality) }}</td><td>{{ q.grade or "-" }}</td>
<td>{{ fmt(q.average_precision) }}</td><td>{{ fmt(q.brier) }}</td></tr>{% endfor %}</table>
{% for name, q in part.scores.items() if q.calibration %}<p class="note">Calibration of {{ name }}:
{% for b in q.calibration %}{{ fmt(b.predicted) }}/{{ fmt(b.observed) }}{{ " · " if not loop.last }}{% endfor %}</p>
{% endfor %}{% else %}<p class="note">No score could be labelled.</p>{% endfor %}

<h2 id="lead">Lead time of drop-off alarms</h2>
<p class="note">For each detected churner ({{ lead.detected }} of {{ lead.eligible }} eligible), days from the first
true drop-off trigger to their last activity: positive = warned before the customer went quiet.</p>
{% if lead_chart %}{{ lead_chart }}
{% else %}<p class="note">No churner was detected by a drop-off trigger.</p>{% endif %}
{% if quality %}<table><tr><th>detector</th><th>triggers</th><th>precision</th><th>recall</th><th>F1</th></tr>
{% for name, q in quality %}<tr><td>{{ name }}</td><td>{{ q.triggers }}</td><td>{{ fmt(q.precision) }}</td>
<td>{{ fmt(q.recall) }}</td><td>{{ fmt(q.f1) }}</td></tr>{% endfor %}</table>{% endif %}
{% endif %}
<p class="note">Written by <code>forethought replay --html</code>; definitions in docs/backtest-report.md.</p>
<script>{{ script }}</script>
</body></html>
"""

TRUTH_SECTIONS = ("score distributions of churned vs retained", "the precision–recall curve",
                  "the lead-time histogram")


def render_page(report: dict[str, Any], *, sources: list[str], details: dict[str, Any] | None = None) -> str:
    """The page for a replay ``report`` (its JSON) and ``details`` (from ``report_data``: ``per_day``,
    ``suppressions``, ``lift``; with truth also ``scores``, ``pr``, ``lead``, ``horizon_days``)."""
    d = details or {}
    truth = "scores" in d
    per_day = d.get("per_day") or {"days": [], "series": {}}
    suppressed_by = d.get("suppressions") or {}
    lift = d.get("lift") or {}
    measured = [(p, row) for p, row in lift.items() if row.get("lift_ci95") is not None]
    colors = charts.colours_for([p for p, _, _ in _playbooks(report)] + sorted(
        {p for parts in suppressed_by.values() for p in parts} | set(lift) | set(per_day["series"])))
    environment = Environment(autoescape=True)
    return environment.from_string(TEMPLATE).render(
        r=report, sources=sources, csp=_csp(), style=Markup(STYLE), script=Markup(SCRIPT),
        period=f"{_when(report.get('first_event_at'))} → {_when(report.get('last_event_at'))}",
        total_triggers=sum((report.get("triggers_by_playbook") or {}).values()),
        invalid=sorted((report.get("invalid_by_reason") or {}).items(), key=lambda kv: -kv[1]),
        missing=[] if truth else TRUTH_SECTIONS,
        per_day=charts.bar_chart("Triggers per day", per_day["days"], per_day["series"], name="triggers_per_day",
                                 y_label="triggers", colors=colors) if per_day["series"] else None,
        playbooks=_playbooks(report),
        suppressed=[(reason, sum(parts.values())) for reason, parts in suppressed_by.items()],
        suppressed_chart=charts.hbar_chart("Suppressions by reason", suppressed_by, name="suppressions",
                                           x_label="suppressed candidates", colors=colors),
        lift_rows=[_lift_row(p, row) for p, row in measured],
        lift_chart=charts.interval_chart("Lift with 95 % interval",
                                         [(p, row["lift"], *row["lift_ci95"]) for p, row in measured],
                                         name="lift", colors=colors),
        truth=truth, horizon_days=_fmt(d.get("horizon_days")),
        score_charts=[_score_chart(name, dist) for name, dist in (d.get("scores") or {}).items()],
        pr_chart=_pr_chart(d.get("pr") or {}), ap_note=_ap_note(d.get("pr") or {}),
        lead=d.get("lead") or {"detected": 0, "eligible": 0}, lead_chart=_lead_chart(d.get("lead") or {}),
        quality=_quality(report.get("quality") or {}), fmt=_fmt,
        prediction=[(view, part) for view, part in (report.get("prediction_quality") or {}).items() if part["scores"]],
        num=lambda n: f"{n or 0:,}",
    )


def write_page(path: Path, report: dict[str, Any], *, sources: list[str], details: dict[str, Any]) -> None:
    """Write :func:`render_page` to ``path`` (UTF-8)."""
    path.write_text(render_page(report, sources=sources, details=details), encoding="utf-8")


def _csp() -> str:
    digest = lambda text: base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()  # noqa: E731
    return (f"default-src 'none'; script-src 'sha256-{digest(SCRIPT)}'; style-src 'sha256-{digest(STYLE)}'; "
            "img-src 'none'; form-action 'none'; base-uri 'none'")


def _playbooks(report: dict[str, Any]) -> list[tuple[str, int, int]]:
    live, shadow = report.get("triggers_by_playbook") or {}, report.get("shadow_by_playbook") or {}
    return sorted(((p, live.get(p, 0), shadow.get(p, 0)) for p in set(live) | set(shadow)), key=lambda r: -r[1] - r[2])


def _lift_row(playbook: str, row: dict[str, Any]) -> dict[str, str]:
    group = lambda g: f"{g['reengaged']:,}/{g['measured']:,} = {g['reengaged'] / g['measured']:.1%}"  # noqa: E731
    low, high = row["lift_ci95"]
    return {"playbook": playbook, "treated": group(row["treated"]), "holdout": group(row["holdout"]),
            "lift": f"{row['lift']:+.1%}", "ci": f"{low:+.1%} to {high:+.1%}"}


def _score_chart(name: str, dist: dict[str, Any]) -> tuple[str, Markup]:
    bins = len(dist["churned"]["counts"])
    labels = [f"{i / bins:.2f}" for i in range(bins)]
    shares = {f"{group} ({dist[group]['n']:,})": [n / dist[group]["n"] if dist[group]["n"] else 0.0
                                                  for n in dist[group]["counts"]] for group in ("churned", "retained")}
    title = {"dropoff": "Silence score (scores.dropoff)", "dropoff_learned": "Learned score (scores.dropoff_learned)"}
    heading = title.get(name, name)
    return heading, charts.bar_chart(heading, labels, shares, stacked=False, name=f"scores_{name}",
                                     y_label="share of the group's scores", fmt=".0%")


def _pr_chart(pr: dict[str, Any]) -> Markup | None:
    curves = {name: [(r, p) for _, p, r in curve["points"]] for name, curve in pr.items() if curve["points"]}
    if not curves:
        return None
    first = next(curve for curve in pr.values() if curve["points"])
    return charts.line_chart("Precision against recall", curves, x_label="recall", y_label="precision",
                             reference=first["positives"] / first["n"], name="precision_recall")


def _ap_note(pr: dict[str, Any]) -> str:
    parts = [f"{name}: average precision {curve['average_precision']:.3f} over {curve['n']:,} scores"
             for name, curve in pr.items() if curve["average_precision"] is not None]
    return "; ".join(parts) + "." if parts else ""


def _lead_chart(lead: dict[str, Any]) -> Markup | None:
    if not lead.get("counts"):
        return None
    labels = [str(lead["lo"] + i) for i in range(len(lead["counts"]))]
    return charts.bar_chart("Lead time (days before the last activity)", labels, {"detected churners": lead["counts"]},
                            name="lead_time", y_label="churners")


def _quality(quality: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    names = {"dropoff": "drop-off", "error_burst": "error burst", "usage": "usage spike/drop",
             "behaviour": "multivariate (HST)"}
    return [(label, quality[key]) for key, label in names.items() if quality.get(key)]


def _when(iso: str | None) -> str:
    """An ISO time as ``2026-09-07 00:19 UTC`` (the report's times are UTC).

    >>> _when("2026-09-07T00:19:49.905000+00:00"), _when(None)
    ('2026-09-07 00:19 UTC', '-')
    """
    if not iso:
        return "-"
    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
