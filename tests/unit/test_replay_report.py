"""``forethought replay --html``: the page's numbers are the replay's, read back from the page itself.

One small simulated population (60 customers, 32 days, seeded) is replayed once with the shipped
playbooks and its truth; each test reads what a user would read off the page (chart tooltips, tables)
and checks it against an independent count of the replay's own outputs (triggers file, JSON report).
The browser side (the charts actually draw) is tests/integration/test_report_browser.py.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections import Counter
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from rich.filesize import decimal

from forethought.core.config import EngineConfig
from forethought.ops.playbooks import load_rules
from forethought.ops.topics import load_catalogue
from forethought.replay.command import run_replay
from forethought.replay.reader import sorted_lines
from forethought.replay.report_data import lift_intervals, newcombe_interval, pr_curve
from forethought.replay.report_html import render_page
from forethought.simulate.plans import SimulationConfig
from forethought.simulate.population import write

ROOT = Path(__file__).resolve().parents[2]


def simulate(folder: Path) -> tuple[Path, Path]:
    events, truth = folder / "events.jsonl.gz", folder / "truth.jsonl"
    write(SimulationConfig(customers=60, days=32, seed=3, churn_rate=0.4), events, truth)
    return events, truth


def replay(events: Path, folder: Path, truth: Path | None) -> dict[str, Any]:
    report = run_replay([events], EngineConfig(), truth=truth, html_out=folder / "page.html",
                        triggers_out=folder / "triggers.jsonl", quiet=True,
                        rules=load_rules(ROOT / "streams" / "playbooks.yaml"), partitions=load_catalogue().partitions)
    return {"report": report, "page": (folder / "page.html").read_text(),
            "triggers": [json.loads(line) for line in (folder / "triggers.jsonl").read_text().splitlines()]}


@pytest.fixture(scope="module")
def backtest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("backtest")
    events, truth = simulate(folder)
    return replay(events, folder, truth) | {"events": events}


def chart(page: str, name: str) -> str:
    found = re.search(rf'<svg class="chart" data-chart="{name}".*?</svg>', page, re.S)
    assert found, f"no {name} chart on the page"
    return found.group(0)


def tooltips(svg: str) -> dict[str, float]:
    """``{"series · category": value}`` from each mark's tooltip."""
    return {unescape(key): float(value.replace(",", ""))
            for key, value in re.findall(r'class="mark"[^>]*><title>(.*?): ([-\d.,]+)</title>', svg)}


def table_rows(page: str, section: str) -> list[list[str]]:
    body = page.split(f'<h2 id="{section}">', 1)[1].split("<h2", 1)[0]
    return [[unescape(re.sub("<.*?>", "", cell)) for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S) if "<td>" in row]


def test_triggers_per_day_per_playbook_are_the_triggers_written(backtest: dict[str, Any]) -> None:
    expected = Counter(f"{t['playbook']} · {t['fired_at'][:10]}" for t in backtest["triggers"])
    shown = tooltips(chart(backtest["page"], "triggers_per_day"))
    assert shown == {k: float(n) for k, n in expected.items()}
    assert len({k.split(" · ")[1] for k in shown}) > 20  # a month of days, with triggers on most of them
    live = {row[0]: int(row[1].replace(",", "")) for row in table_rows(backtest["page"], "triggers")}
    assert live == backtest["report"]["triggers_by_playbook"]


def test_suppression_reasons_are_the_policys(backtest: dict[str, Any]) -> None:
    report = backtest["report"]
    rows = {reason: int(n.replace(",", "")) for reason, n in table_rows(backtest["page"], "suppressions")}
    assert rows == report["suppressed_by_reason"] and rows  # the shipped playbooks suppress (cooldown at least)
    per_playbook = Counter()
    for key, n in tooltips(chart(backtest["page"], "suppressions")).items():
        per_playbook[key.split(" · ")[0]] += int(n)
    assert per_playbook == Counter(report["suppressed_by_reason"])


def test_lift_has_an_interval_around_it_in_the_report_and_on_the_page(backtest: dict[str, Any]) -> None:
    lift = backtest["report"]["lift"]
    measured = {p: row for p, row in lift.items() if row["lift_ci95"] is not None}
    assert measured, "no playbook measured in both groups: the simulation is too small"
    for row in measured.values():
        low, high = row["lift_ci95"]
        assert -1 <= low <= row["lift"] <= high <= 1
    assert all(row["lift_ci95"] is None for row in lift.values() if "holdout" not in row or "treated" not in row)
    page_rows = {row[0]: row for row in table_rows(backtest["page"], "lift")}
    assert set(page_rows) == set(measured)
    for playbook, row in measured.items():
        low, high = row["lift_ci95"]
        assert page_rows[playbook][3:] == [f"{row['lift']:+.1%}", f"{low:+.1%} to {high:+.1%}"]


def test_newcombe_interval_matches_the_published_example_and_narrows_with_data() -> None:
    low, high = newcombe_interval(56, 70, 48, 80)  # Newcombe (1998), Statistics in Medicine 17, example (a)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    small, large = newcombe_interval(6, 10, 4, 10), newcombe_interval(600, 1000, 400, 1000)
    assert small[0] < 0 < small[1] and 0 < large[0] < 0.2 < large[1]  # same rates: only more data excludes zero
    assert newcombe_interval(0, 5, 0, 5)[0] < 0 < newcombe_interval(0, 5, 0, 5)[1]  # no crash at a zero rate
    assert lift_intervals({"p": {"treated": {"measured": 3, "reengaged": 1, "rate": 0.33}, "lift": None}})["p"][
        "lift_ci95"] is None


def test_precision_recall_points_are_those_of_every_threshold() -> None:
    rng = random.Random(4)
    pairs = [(round(rng.random(), 2), int(rng.random() < 0.3)) for _ in range(500)]  # ties included
    curve = pr_curve(pairs, points=10_000)
    positives = sum(y for _, y in pairs)
    expected = []
    for threshold in sorted({s for s, _ in pairs}, reverse=True):
        above = [y for s, y in pairs if s >= threshold]
        expected.append([threshold, round(sum(above) / len(above), 4), round(sum(above) / positives, 4)])
    assert curve["points"] == expected
    assert curve["points"][-1][1:] == [round(positives / len(pairs), 4), 1.0]
    few = pr_curve(pairs, points=20)["points"]
    assert len(few) <= 21 and few[0] == expected[0] and few[-1] == expected[-1]


def test_the_scores_separate_churned_from_retained_on_the_page(backtest: dict[str, Any]) -> None:
    page = backtest["page"]
    svg = chart(page, "scores_dropoff")
    groups = dict(re.findall(r"(churned|retained) \(([\d,]+)\)", svg))
    assert int(groups["churned"].replace(",", "")) > 0 and int(groups["retained"].replace(",", "")) > 0
    shares = tooltips(svg)
    mean = {g: sum(float(k.split(" · ")[1]) * v for k, v in shares.items() if k.startswith(g)) for g in groups}
    assert mean["churned"] > mean["retained"]  # churning customers' silence scores are higher
    precision = re.search(r"dropoff: average precision ([\d.]+) over ([\d,]+) scores", page)
    assert precision and float(precision.group(1)) > 0
    assert chart(page, "precision_recall").count('class="mark"') >= 1


def test_lead_times_are_those_of_the_detected_churners(backtest: dict[str, Any]) -> None:
    dropoff = backtest["report"]["quality"]["dropoff"]
    leads = tooltips(chart(backtest["page"], "lead_time"))
    assert sum(leads.values()) == dropoff["lead_time_days"]["n"] > 0
    days = sorted(int(k.split(" · ")[1]) for k, n in leads.items() for _ in range(int(n)))
    assert days[0] <= dropoff["lead_time_days"]["median"] < days[-1] + 1


def test_without_truth_the_page_says_what_needs_it(backtest: dict[str, Any], tmp_path: Path) -> None:
    page = replay(backtest["events"], tmp_path, None)["page"]
    assert "Needs --truth" in page and "precision–recall curve" in page
    assert 'data-chart="triggers_per_day"' in page and 'data-chart="suppressions"' in page
    assert not any(f'data-chart="{name}"' in page for name in ("scores_dropoff", "precision_recall", "lead_time"))
    assert "Needs --truth" not in backtest["page"]


HOSTILE = '<img src=x onerror="document.body.dataset.pwned=1">"\'</svg></title><script>alert(1)</script>&amp;'


def hostile_page() -> str:
    """A page whose every name comes from hostile data (shared with the browser test)."""
    report = {"records_read": 3, "valid": 2, "invalid_by_reason": {HOSTILE: 1}, "triggers_by_playbook": {HOSTILE: 2},
              "shadow_by_playbook": {}, "first_event_at": HOSTILE, "last_event_at": None}
    lift = lift_intervals({HOSTILE: {"treated": {"measured": 40, "reengaged": 30, "rate": 0.75},
                                     "holdout": {"measured": 10, "reengaged": 4, "rate": 0.4}, "lift": 0.35}})
    details = {"per_day": {"days": [HOSTILE], "series": {HOSTILE: [2]}}, "suppressions": {HOSTILE: {HOSTILE: 4}},
               "lift": lift}
    return render_page(report, sources=[HOSTILE], details=details)


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_hostile_names_stay_text() -> None:
    page = hostile_page()
    parser = Elements()
    parser.feed(page)
    tags = [tag for tag, _ in parser.tags]
    assert "img" not in tags and tags.count("script") == 1  # only the page's own
    assert not [a for _, attrs in parser.tags for a in attrs if a.startswith("on")]
    assert "&lt;img src=x onerror=" in page and "&lt;/svg&gt;&lt;/title&gt;&lt;script&gt;" in page


def test_the_page_fetches_nothing(backtest: dict[str, Any]) -> None:
    page = backtest["page"]
    parser = Elements()
    parser.feed(page)
    assert not [(tag, a) for tag, attrs in parser.tags for a in attrs if a in ("src", "href", "xlink:href")]
    assert "http://" not in page and "https://" not in page
    policy = [attrs["content"] for tag, attrs in parser.tags if attrs.get("http-equiv") == "Content-Security-Policy"]
    assert policy and (policy[0] or "").startswith("default-src 'none';")  # and the browser blocks any fetch


def test_progress_counts_stored_bytes_and_then_records(tmp_path: Path) -> None:
    """The reading bar ends at the files' size as stored (compressed for .gz), the processing bar
    learns the record count once every file is read."""
    lines = b"".join(b'{"occurred_at":"2026-01-01T00:00:%02dZ","n":%d}\n' % (i % 60, i) for i in range(5000))
    plain, packed = tmp_path / "a.jsonl", tmp_path / "b.jsonl.gz"
    plain.write_bytes(lines + b"not json\n\n")
    packed.write_bytes(gzip.compress(lines))
    read: list[int] = []
    scanned: list[int] = []
    got = list(sorted_lines([plain, packed], on_bytes=read.append, on_scanned=scanned.append))
    assert sum(read) == plain.stat().st_size + packed.stat().st_size < 2 * len(lines)
    assert scanned == [len(got)] == [10_001]


def test_the_cli_shows_processing_progress_and_writes_the_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from forethought.cli import app

    monkeypatch.chdir(tmp_path)
    events = tmp_path / "events.jsonl.gz"
    write(SimulationConfig(customers=5, days=3, seed=1), events, None)
    result = CliRunner().invoke(app, ["replay", str(events), "--html", "page.html", "--playbooks", "builtin"])
    assert result.exit_code == 0, result.output
    read = re.search(r"read ([\d,]+) records", result.output)
    assert read, result.output
    records = int(read.group(1).replace(",", ""))
    assert re.search(rf"processing .*{records:,}/{records:,} ", result.output), result.output
    stored = decimal(events.stat().st_size)  # the .gz file's own size, not the uncompressed bytes
    assert re.search(rf"reading .*{stored}/{stored}", result.output), result.output
    assert "{" not in result.output  # counts are listed, not printed as Python dicts
    assert "<h1>Backtest report</h1>" in (tmp_path / "page.html").read_text()
