"""What the on-call person gets: a runbook per alert, configurable links, a promtool case per alert, and a
dashboard whose panels each show one unit, filtered by declared template variables.

The files are read as Prometheus, promtool and Grafana read them; metric names are checked against the
code's own registries (ops/metrics.py, senders/metrics.py), not against a list kept by hand.
"""

from __future__ import annotations

import doctest
import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from test_deploy import (
    DASHBOARD_FILE,
    KNOWN_METRICS,
    NEEDS_PROMTOOL,
    PROMETHEUS_DIR,
    RECORDED,
    ROOT,
    _promtool,
    default_link,
    metric_names,
)

RUNBOOKS = ROOT / "docs" / "runbooks"
RUNBOOK_SECTIONS = ("## What it means", "## How to confirm", "## What to do")
# The two links of every alert and the external label that sets each one's base (docs/operations.md).
LINKS = {"runbook_url": "runbook_base_url", "dashboard_url": "dashboard_base_url"}
GRAFANA_BUILTINS = {"__all", "__rate_interval", "__interval", "__range", "__interval_ms", "__range_s"}


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def alerts() -> dict[str, dict]:
    groups = _yaml(PROMETHEUS_DIR / "alerts.yml")["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))


def panels(dashboard: dict) -> list[dict]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


# --- runbooks and links ----------------------------------------------------------------------


def test_every_alert_links_its_own_runbook(alerts: dict[str, dict]) -> None:
    for name, rule in alerts.items():
        link = default_link(rule["annotations"]["runbook_url"])
        assert link == f"docs/runbooks/{name}.md", f"{name}: {link}"
        assert (ROOT / link).is_file(), f"{name}: {link} does not exist"


def test_every_runbook_is_for_an_existing_alert_and_says_what_when_how(alerts: dict[str, dict]) -> None:
    books = sorted(RUNBOOKS.glob("*.md"))
    assert books, "no runbooks"
    for book in books:
        if book.name == "README.md":
            continue
        assert book.stem in alerts, f"{book.name} is a runbook for no alert in alerts.yml"
        text = book.read_text(encoding="utf-8")
        assert text.startswith(f"# {book.stem}\n"), f"{book.name}: the title is the alert's name"
        severity = alerts[book.stem]["labels"]["severity"]
        assert f"**Severity:** {severity} " in text, f"{book.name}: the alert's severity is {severity}"
        positions = [text.find(section) for section in RUNBOOK_SECTIONS]
        assert -1 not in positions and positions == sorted(positions), f"{book.name}: sections {RUNBOOK_SECTIONS}"
        confirm = text[positions[1]:positions[2]]
        assert "```" in confirm, f"{book.name}: 'How to confirm' shows the query or command to run"
        quoted = {name for block in re.findall(r"```promql\n(.*?)```", text, re.S) for name in metric_names(block)}
        assert quoted <= KNOWN_METRICS | RECORDED, f"{book.name}: unknown metrics {quoted - KNOWN_METRICS}"


def runbook_queries() -> list[str]:
    """Every line of every ```promql block in the runbooks."""
    blocks = [b for book in RUNBOOKS.glob("*.md") for b in re.findall(r"```promql\n(.*?)```", book.read_text(), re.S)]
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


@NEEDS_PROMTOOL
def test_runbook_queries_parse(tmp_path: Path) -> None:
    """The queries an on-call person pastes are valid PromQL (each checked by promtool as a recording rule)."""
    queries = runbook_queries()
    assert len(queries) >= 15
    rules = [{"record": f"runbook:query_{i}", "expr": query} for i, query in enumerate(queries)]
    (tmp_path / "runbook_rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "runbooks", "rules": rules}]}))
    _promtool("check", "rules", "runbook_rules.yml", cwd=tmp_path)


def test_the_runbook_index_lists_every_runbook() -> None:
    index = (RUNBOOKS / "README.md").read_text(encoding="utf-8")
    for book in RUNBOOKS.glob("Forethought*.md"):
        assert f"({book.name})" in index, f"docs/runbooks/README.md does not link {book.name}"


def test_link_bases_come_from_external_labels(alerts: dict[str, dict]) -> None:
    """Each link starts with ``{{ with $externalLabels.<label> }}{{ . }}{{ else }}<default>{{ end }}``."""
    for name, rule in alerts.items():
        for annotation, label in LINKS.items():
            value = rule["annotations"][annotation]
            prefix = f"{{{{ with $externalLabels.{label} }}}}{{{{ . }}}}{{{{ else }}}}"
            assert value.startswith(prefix), f"{name}.{annotation} does not take its base from {label}: {value}"


def test_default_link_leaves_plain_urls_alone() -> None:
    assert default_link("http://grafana:3000/d/x") == "http://grafana:3000/d/x"
    assert default_link("{{ with $externalLabels.a }}{{ . }}{{ else }}{{ end }}/x.md") == "/x.md"


def test_each_alert_links_a_panel_that_shows_its_signal(alerts: dict[str, dict], dashboard: dict) -> None:
    shown = {str(p["id"]): set().union(*(metric_names(t["expr"]) for t in p["targets"])) for p in panels(dashboard)}
    for name, rule in alerts.items():
        url = default_link(rule["annotations"]["dashboard_url"])
        panel = re.search(r"[?&]viewPanel=(\d+)", url)
        assert panel and panel.group(1) in shown, f"{name}: {url}"
        assert metric_names(rule["expr"]) & shown[panel.group(1)], f"{name}: panel {panel.group(1)} shows none of it"


# --- promtool cases --------------------------------------------------------------------------


def promtool_cases() -> dict[str, dict[str, list[dict]]]:
    """Alert name → {"fires": [expected alerts...], "quiet": [...]} from alerts_test.yml."""
    cases: dict[str, dict[str, list[dict]]] = {}
    for test in _yaml(PROMETHEUS_DIR / "alerts_test.yml")["tests"]:
        for check in test.get("alert_rule_test", []):
            kind = "fires" if check.get("exp_alerts") else "quiet"
            cases.setdefault(check["alertname"], {"fires": [], "quiet": []})[kind].append(
                {"external_labels": test.get("external_labels", {}), "alerts": check.get("exp_alerts") or []})
    return cases


def test_every_alert_has_a_promtool_case_that_fires_and_one_that_does_not(alerts: dict[str, dict]) -> None:
    cases = promtool_cases()
    assert set(cases) <= set(alerts), f"cases for alerts that do not exist: {set(cases) - set(alerts)}"
    for name in alerts:
        assert cases.get(name, {}).get("fires"), f"{name}: no promtool case where it fires"
        assert cases[name]["quiet"], f"{name}: no promtool case where it stays quiet"


def test_promtool_cases_expect_the_links(alerts: dict[str, dict]) -> None:
    """promtool compares annotations exactly, so each firing case pins both links as they render."""
    configured = 0
    for name, case in promtool_cases().items():
        for fired in case["fires"]:
            bases = fired["external_labels"]
            configured += bool(bases)
            for alert in fired["alerts"]:
                for annotation in LINKS:
                    expected = default_link(alerts[name]["annotations"][annotation], bases)
                    assert alert["exp_annotations"][annotation] == expected, f"{name}.{annotation}"
    assert configured, "no promtool case renders the links with the external labels set"


# --- dashboard: units and template variables -------------------------------------------------

# Grafana unit id → what it measures; every target of a panel must measure the same thing.
UNIT_KINDS = {"ops": "per second", "reqps": "per second", "percentunit": "ratio", "s": "seconds", "m": "minutes",
              "bytes": "bytes", "short": "count", "none": "count"}
_SUFFIX_KINDS = (("_bytes", "bytes"), ("_seconds", "seconds"), ("_minutes", "minutes"), (":7d", "ratio"))


def unit_of(expr: str) -> str:
    """What a panel query measures, from its functions and its metrics' unit suffixes.

    >>> unit_of('histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket[5m])))')
    'seconds'
    >>> unit_of('sum(rate(a_total[5m])) / sum(rate(b_total[5m]))'), unit_of('sum(rate(a_total[1m]))')
    ('ratio', 'per second')
    >>> unit_of('rate(process_cpu_seconds_total[1m])'), unit_of('increase(a_total[1m])'), unit_of('max(a_bytes)')
    ('ratio', 'count', 'bytes')
    """
    names = metric_names(expr)
    if "histogram_quantile(" in expr:
        return "seconds" if all(n.removesuffix("_bucket").endswith("_seconds") for n in names) else "count"
    if re.search(r"\)\s*/\s*", expr):
        return "ratio"
    if re.search(r"\brate\(", expr):
        return "ratio" if all(n.endswith("_seconds_total") for n in names) else "per second"  # seconds per second
    if "increase(" in expr:
        return "count"
    kinds = {kind for name in names for suffix, kind in _SUFFIX_KINDS if name.endswith(suffix)}
    return kinds.pop() if len(kinds) == 1 else "count"


def unit_problems(panel: dict) -> list[str]:
    """Why a panel's targets do not share its declared unit (empty when they do).

    >>> panel = {"title": "p", "fieldConfig": {"defaults": {"unit": "s"}}, "targets": [{"expr": "max(a_bytes)"}]}
    >>> unit_problems(panel)
    ["p: declared 's' (seconds) but max(a_bytes) is in bytes"]
    """
    declared = panel["fieldConfig"]["defaults"].get("unit", "")
    kind = UNIT_KINDS.get(declared, f"unknown unit {declared!r}")
    return [f"{panel['title']}: declared {declared!r} ({kind}) but {t['expr']} is in {unit_of(t['expr'])}"
            for t in panel["targets"] if unit_of(t["expr"]) != kind]


def test_every_panel_shows_one_unit(dashboard: dict) -> None:
    problems = [problem for panel in panels(dashboard) for problem in unit_problems(panel)]
    assert not problems, "\n".join(problems)


def test_a_panel_mixing_seconds_and_counts_is_caught() -> None:
    mixed = {"title": "mixed", "fieldConfig": {"defaults": {"unit": "s"}}, "targets": [
        {"expr": "histogram_quantile(0.99, sum by (le) (rate(forethought_processing_seconds_bucket[5m])))"},
        {"expr": "sum(forethought_customers)"}]}
    assert unit_problems(mixed) == ["mixed: declared 's' (seconds) but sum(forethought_customers) is in count"]
    unknown = {"title": "u", "fieldConfig": {"defaults": {}}, "targets": [{"expr": "sum(forethought_customers)"}]}
    assert unit_problems(unknown) == ["u: declared '' (unknown unit '') but sum(forethought_customers) is in count"]


def variables_used(text: str) -> set[str]:
    """Grafana variables referenced as ``$name`` or ``${name}`` (built-ins left out).

    >>> sorted(variables_used('rate(x{job=~"$job", a="${datasource}"}[$__rate_interval])'))
    ['datasource', 'job']
    """
    return {name for name in re.findall(r"\$\{?(\w+)", text) if name not in GRAFANA_BUILTINS}


def test_template_variables_are_declared_and_used(dashboard: dict) -> None:
    declared = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert {"datasource", "job", "instance"} <= declared
    in_panels = variables_used(json.dumps(dashboard["panels"]))
    in_variables = variables_used(json.dumps(dashboard["templating"]["list"]))
    assert in_panels | in_variables <= declared, f"used, never declared: {(in_panels | in_variables) - declared}"
    assert declared <= in_panels, f"declared, used by no panel: {declared - in_panels}"


def test_every_query_filters_by_job_and_instance(dashboard: dict) -> None:
    for panel in panels(dashboard):
        for target in panel["targets"]:
            for selector in re.findall(r"\b([a-z_]+)\{([^}]*)\}", target["expr"]):
                assert 'job=~"$job"' in selector[1] and 'instance=~"$instance"' in selector[1], \
                    f"{panel['title']}: {selector[0]} is not filtered by the job and instance variables"


def test_variable_queries_use_known_metrics(dashboard: dict) -> None:
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        inner = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
        assert inner, variable["name"]
        assert metric_names(inner.group(1)) <= KNOWN_METRICS, variable["name"]
        assert variable["includeAll"] and variable["datasource"]["uid"] == "${datasource}", variable["name"]


def test_the_helpers_examples_hold() -> None:
    """The doctest examples above (and test_deploy's) run here: pytest does not collect doctests in tests/."""
    import test_deploy

    for module in (sys.modules[__name__], test_deploy):
        result = doctest.testmod(module)
        assert result.attempted and not result.failed, module.__name__
