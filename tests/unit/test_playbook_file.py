"""Playbook files: the shipped set loads, mistakes fail fast with file, line and field, reload is safe."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from forethought.ops.playbooks import PlaybookFileError, PlaybookSource, load_rules, parse_rules
from forethought.ops.settings import DEFAULT_PLAYBOOKS_FILE

GOOD = """\
version: 1
policy:
  quiet_hours: "22:00-08:00"
playbooks:
  - name: burst
    on: [error_burst]
    when: scores.anomaly >= 4
    channels: [in_app]
    priority: 70
"""


def test_the_shipped_playbooks_cover_the_promised_situations() -> None:
    rules = load_rules(DEFAULT_PLAYBOOKS_FILE)
    names = {p.name for p in rules.playbooks}
    assert {"dropoff_risk_high", "error_burst", "onboarding_stalled", "key_feature_unused", "renewal_at_risk",
            "feature_welcome", "long_inactivity"} <= names
    assert rules.quiet_hours is not None and rules.caps


@pytest.mark.parametrize(("text", "expected"), [
    (GOOD.replace("priority: 70", "priority: 170"), "line 9, playbooks.0.priority: Input should be less than or equal to 100"),
    (GOOD.replace("scores.anomaly", "scores.anomly"), "line 7, playbooks.0.when: unknown name 'scores.anomly' (did you mean 'scores.anomaly'?)"),
    (GOOD.replace("[in_app]", "[pigeon]"), "line 8, playbooks.0.channels.0: Input should be"),
    (GOOD.replace('"22:00-08:00"', '"late"'), "line 3, policy.quiet_hours: Value error, expected local quiet hours as HH:MM-HH:MM"),
    (GOOD.replace("on: [error_burst]", "on: [sunrise]"), "line 6, playbooks.0.on.0: unknown signal 'sunrise'"),
    (GOOD.replace("    priority: 70\n", "    priority: 70\n    cooldown: soon\n"), "line 10, playbooks.0.cooldown"),
    (GOOD + GOOD.split("playbooks:\n")[1], "playbooks: Value error, playbook names must be unique; repeated: burst"),
    (GOOD.replace("when: scores.anomaly >= 4", "when: __import__('os')"), "line 7, playbooks.0.when:"),
    ("playbooks: [unclosed", "not valid YAML"),
])
def test_a_bad_file_fails_with_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(PlaybookFileError) as caught:
        parse_rules(text, "my.yaml")
    assert str(caught.value).startswith("my.yaml") and expected in str(caught.value)


def test_yes_no_on_off_stay_strings_in_playbook_files() -> None:
    rules = parse_rules(GOOD.replace("name: burst", "name: on_call"))
    assert rules.playbooks[0].name == "on_call" and rules.playbooks[0].signals == frozenset({"error_burst"})


def test_reload_takes_a_valid_change_and_keeps_the_old_playbooks_when_the_new_file_is_bad(tmp_path: Path) -> None:
    path = tmp_path / "playbooks.yaml"
    path.write_text(GOOD)
    source = PlaybookSource.open(path)
    assert source.refresh() is None  # unchanged
    path.write_text(GOOD.replace("priority: 70", "priority: 75"))
    os.utime(path, (1, 1))  # a different mtime even on coarse clocks
    assert source.refresh() is True and source.rules.playbooks[0].priority == 75
    path.write_text(GOOD.replace("priority: 70", "priority: nope"))
    os.utime(path, (2, 2))
    assert source.refresh() is False
    assert source.rules.playbooks[0].priority == 75 and "playbooks.0.priority" in (source.error or "")
    path.unlink()
    assert source.refresh() is False and "cannot read" in (source.error or "")
    assert source.rules.playbooks[0].priority == 75


def test_an_invalid_file_at_start_up_fails_fast(tmp_path: Path) -> None:
    path = tmp_path / "playbooks.yaml"
    path.write_text(GOOD.replace("channels: [in_app]", "channels: []"))
    with pytest.raises(PlaybookFileError, match="line 8, playbooks.0.channels: List should have at least 1 item"):
        PlaybookSource.open(path)


def test_builtin_names_the_pass_through_playbooks() -> None:
    rules = load_rules(Path("builtin"))
    assert {p.name for p in rules.playbooks} == {"silence_dropoff", "churn_risk", "activity_decline", "usage_anomaly",
                                                 "error_burst", "unusual_behaviour"}
    assert rules.caps == () and all(p.holdout == 0 for p in rules.playbooks)
