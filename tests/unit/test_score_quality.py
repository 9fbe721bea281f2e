"""Prediction-quality measures against values computed by hand (ties, all positive, empty), and as
``forethought replay --truth --snapshot-at`` reports them (issue #13 point 4)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from forethought.core.config import EngineConfig
from forethought.core.quality import average_precision, brier, calibration, grade, lift_quality, roc_auc, score_quality
from forethought.replay.command import run_replay

DAY = 86_400.0


def test_auc_counts_a_tie_between_a_positive_and_a_negative_as_one_half() -> None:
    # positives 0.5, 0.9; negatives 0.5, 0.1: (0.5 + 1 + 1 + 1) / 4 comparisons
    assert roc_auc([(0.5, 1), (0.5, 0), (0.9, 1), (0.1, 0)]) == 0.875
    assert roc_auc([(0.3, 1), (0.3, 0), (0.3, 1), (0.3, 0)]) == 0.5  # one score for all: chance
    assert roc_auc([(0.1, 1), (0.9, 0)]) == 0.0  # perfectly reversed


def test_lift_quality_is_two_auc_minus_one_graded_on_brazes_scale() -> None:
    assert [lift_quality(a) for a in (0.5, 0.712, 0.8, 1.0)] == [0.0, pytest.approx(42.4), 60.0, 100.0]
    assert [grade(lift_quality(a)) for a in (0.58, 0.65, 0.75, 0.85, 0.45)] == [
        "Poor", "Fair", "Good", "Excellent", "Worse than random"]


def test_average_precision_by_hand_with_and_without_ties() -> None:
    # thresholds 0.9 (P 1, R 1/2), 0.8 (P 1/2, R 1/2), 0.7 (P 2/3, R 1): 1/2·1 + 1/2·2/3
    assert average_precision([(0.9, 1), (0.8, 0), (0.7, 1), (0.1, 0)]) == pytest.approx(5 / 6)
    # one threshold holds three pairs, two of them positive: recall 0 → 1 at precision 2/3
    assert average_precision([(0.5, 1), (0.5, 0), (0.5, 1), (0.2, 0)]) == pytest.approx(2 / 3)


def test_brier_and_calibration_by_hand() -> None:
    assert brier([(0.8, 1), (0.3, 0)]) == pytest.approx((0.04 + 0.09) / 2)
    pairs = [(i / 20, int(i >= 10)) for i in range(20)]
    deciles = calibration(pairs)
    assert [b["n"] for b in deciles] == [2] * 10
    assert [b["predicted"] for b in deciles] == [round((2 * k + 0.5) / 20, 4) for k in range(10)]
    assert [b["observed"] for b in deciles] == [0.0] * 5 + [1.0] * 5
    tied = calibration([(0.4, 1), (0.4, 0), (0.4, 0), (0.9, 1)], bins=4)
    assert [(b["n"], b["predicted"], b["observed"]) for b in tied] == [(3, 0.4, 0.3333), (1, 0.9, 1.0)]


def test_all_positive_and_empty_give_what_is_defined_and_none_for_the_rest() -> None:
    everyone = score_quality([(0.9, 1), (0.2, 1)])
    assert (everyone["auc"], everyone["lift_quality"], everyone["grade"]) == (None, None, None)
    assert everyone["average_precision"] == 1.0 and everyone["brier"] == pytest.approx((0.01 + 0.64) / 2)
    nobody = score_quality([])
    assert nobody == {"n": 0, "positives": 0, "base_rate": None, "auc": None, "lift_quality": None, "grade": None,
                      "average_precision": None, "brier": None, "calibration": []}
    assert score_quality([(3.0, 1), (-1.0, 0)])["brier"] is None, "not a probability: no Brier score"


T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat().replace("+00:00", "Z")


def test_replay_reports_every_scores_quality_over_the_whole_base(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Four customers, each visiting every two days; two stop on day 20, and one of those is evicted
    (10-day TTL) before the snapshot on day 40. The snapshot still scores all four."""
    lines, truth = [], []
    for c, (stop, churned) in enumerate([(60, 0), (20, 1), (60, 0), (20, 1)]):
        customer = f"c{c}"
        for day in range(0, stop, 2):
            lines.append({"type": "page_view", "event_id": f"{customer}-{day}", "customer_id": customer, "page": "/",
                          "occurred_at": _iso(T0 + day * DAY + c * 60)})
        last = _iso(T0 + (stop - 2) * DAY + c * 60)
        truth.append({"customer_id": customer, "last_activity_at": last, "dropoff_at": last if churned else None})
    lines.sort(key=lambda e: e["occurred_at"])
    events, truth_file = tmp_path / "events.jsonl", tmp_path / "truth.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in lines))
    truth_file.write_text("".join(json.dumps(t) + "\n" for t in truth))
    truth_file.write_text(truth_file.read_text() + json.dumps({"customer_id": "c3", "label": 1}) + "\n")
    config = EngineConfig(idle_ttl_seconds=15 * DAY, prior_gap_seconds=2 * DAY)
    report = run_replay([events], config, truth=truth_file, snapshot_at=_iso(T0 + 40 * DAY),
                        snapshot_out=tmp_path / "scores.jsonl", report_out=tmp_path / "report.json",
                        html_out=tmp_path / "page.html")
    snapshot = report["prediction_quality"]["snapshot"]
    assert (snapshot["customers"], snapshot["summarised"], snapshot["missing_from_snapshot"]) == (4, 2, 0)
    dropoff = snapshot["scores"]["dropoff"]
    assert (dropoff["n"], dropoff["positives"], dropoff["auc"], dropoff["grade"]) == (4, 2, 1.0, "Excellent")
    assert dropoff["brier"] is not None and sum(b["n"] for b in dropoff["calibration"]) == 4
    daily = report["prediction_quality"]["daily"]["scores"]["dropoff"]
    assert daily["n"] > 40 and daily["auc"] is not None
    rows = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert [r["customer_id"] for r in rows if r.get("summarised")] == ["c1", "c3"]
    assert json.loads((tmp_path / "report.json").read_text())["prediction_quality"] == report["prediction_quality"]
    printed = capsys.readouterr().err
    assert "Prediction quality, snapshot scores" in printed and "Excellent" in printed
    page = (tmp_path / "page.html").read_text()
    section = page[page.index('id="prediction-quality"'):page.index('id="lead"')]
    assert "snapshot scores" in section and "<td>Excellent</td>" in section and "Calibration of dropoff" in section


def test_daily_labels_from_purchase_style_truth_use_the_last_activity() -> None:
    """A truth row without ``dropoff_at`` (made from purchase data): gone when the last activity came
    within the horizon after the look; looks in the last horizon of the data have no answer yet."""
    from forethought.replay.score_quality import DailyScores, daily_quality

    rows = [DailyScores("a", {"at": 0.0, "dropoff": 0.9, "snapshot": True}),
            DailyScores("b", {"at": 0.0, "dropoff": 0.1, "dropoff_learned": None}),
            DailyScores("b", {"at": 95 * DAY, "dropoff": 0.5})]  # within 14 days of the end: left out
    truth = {"a": {"last_activity_at": _iso(5 * DAY)}, "b": {"last_activity_at": _iso(99 * DAY)}}
    quality = daily_quality(rows, truth, end=100 * DAY)["scores"]
    assert list(quality) == ["dropoff"], "only numbers are scores"
    assert (quality["dropoff"]["n"], quality["dropoff"]["positives"], quality["dropoff"]["auc"]) == (2, 1, 1.0)
