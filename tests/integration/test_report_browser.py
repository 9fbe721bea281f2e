"""The backtest page in a real browser: Debian's Chromium, headless (installed by ``make chromium``,
which ``make test`` runs). Chromium loads the file with its network closed, runs the page's own
check (each chart's marks measured on the laid-out page, ``getBoundingClientRect``) and dumps the
DOM; the test reads how many charts drew and how many marks of each had a size. Without Chromium the
tests skip, and fail under ``CI=true``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import missing

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
sys.path.insert(0, str(ROOT / "tests" / "unit"))
from test_replay_report import HOSTILE, hostile_page  # noqa: E402  (the same hostile page as the unit test)


def rendered(page: Path, profile: Path) -> str:
    """The DOM of ``page`` after Chromium loaded it and its scripts ran."""
    if not os.access(CHROMIUM, os.X_OK):
        missing(f"{CHROMIUM} not found: run `make chromium` (Debian package chromium)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--window-size=900,1200", f"--user-data-dir={profile}"]
    done = subprocess.run([CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                          timeout=180, check=False)
    assert done.returncode == 0 and "<body" in done.stdout, done.stderr[-2000:]
    return done.stdout


def charts(dom: str) -> dict[str, int]:
    """``{chart name: marks drawn}`` as the page's check recorded them."""
    found = re.findall(r'<svg[^>]*data-chart="([a-z_]+)"[^>]*data-marks-drawn="(\d+)"', dom)
    return {name: int(n) for name, n in found}


@pytest.fixture(scope="module")
def backtest_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A page written by the real CLI: simulate, then replay with the shipped playbooks and the truth."""
    folder = tmp_path_factory.mktemp("report")
    cli = str(Path(sys.executable).with_name("forethought"))
    subprocess.run([cli, "simulate", "--customers", "60", "--days", "32", "--seed", "3", "--churn-rate", "0.4",
                    "--output", str(folder / "events.jsonl.gz"), "--truth", str(folder / "truth.jsonl"), "--quiet"],
                   check=True, cwd=ROOT, timeout=300)
    subprocess.run([cli, "replay", str(folder / "events.jsonl.gz"), "--truth", str(folder / "truth.jsonl"),
                    "--html", str(folder / "report.html"), "--playbooks", "streams/playbooks.yaml", "--quiet"],
                   check=True, cwd=ROOT, timeout=600)
    return folder / "report.html"


def test_every_chart_draws_in_chromium(backtest_page: Path, tmp_path: Path) -> None:
    static = backtest_page.read_text()
    expected = {name: svg.count('class="mark"') for name, svg in
                re.findall(r'<svg class="chart" data-chart="([a-z_]+)"(.*?)</svg>', static, re.S)}
    assert {"triggers_per_day", "suppressions", "lift", "scores_dropoff", "precision_recall",
            "lead_time"} <= set(expected)
    dom = rendered(backtest_page, tmp_path / "profile")
    assert f'data-charts-drawn="{len(expected)}"' in dom  # the page's own script ran, and every chart drew
    drawn = charts(dom)
    assert drawn == expected and all(drawn.values())  # every mark of every chart has a size on screen


def test_hostile_names_are_shown_as_text_in_chromium(tmp_path: Path) -> None:
    page = tmp_path / "hostile.html"
    page.write_text(hostile_page())
    dom = rendered(page, tmp_path / "profile")
    assert "data-pwned" not in dom and "<img" not in dom  # no injected element, no injected handler ran
    assert dom.count("<script") == 1
    assert 'data-charts-drawn="3"' in dom  # per day, suppressions, lift: drawn with the hostile names as labels
    assert "&lt;img src=x onerror=" in dom and HOSTILE.startswith("<img")
