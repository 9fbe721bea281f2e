"""``forethought explain CUSTOMER --from-replay FILE``: the decisions a replay made for one customer, as
the worker would show them at --at, and one-line failures for what a user can get wrong.

Against a running worker: tests/stream/test_explain_worker.py (the worker's web app, its token) and
tests/integration/test_why_not_two_workers.py (two worker processes on the real broker).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forethought.cli import app

T0 = datetime(2026, 11, 2, 3, 0, tzinfo=timezone.utc).timestamp()
PLAYBOOKS = """policy:
  arbitration_window: 1h
playbooks:
  - name: burst
    on: [error_burst]
    channels: [in_app]
    priority: 70
    cooldown: 1h
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.upper().startswith("FORETHOUGHT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FORETHOUGHT_ENGINE__BUCKET_SECONDS", "10")
    monkeypatch.setenv("FORETHOUGHT_ENGINE__BURST_MIN_ERRORS", "3")
    monkeypatch.setenv("FORETHOUGHT_ENGINE__BURST_QUIET_BUCKETS", "1")
    monkeypatch.chdir(tmp_path)
    yield


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@pytest.fixture
def replayed(tmp_path: Path) -> tuple[Path, Path]:
    """Three error bursts of c1 (sent, cooldown, sent) and one page view of c2, as JSON lines out of order."""
    lines = []
    for n, start in enumerate((T0, T0 + 1800, T0 + 4000)):
        lines += [{"event_id": f"e{n}-{i}", "customer_id": "c1", "type": "error", "code": "E1",
                   "occurred_at": iso(start + i)} for i in range(3)]
    lines.append({"event_id": "p1", "customer_id": "c2", "type": "page_view", "occurred_at": iso(T0 + 5000)})
    events, books = tmp_path / "events.jsonl", tmp_path / "playbooks.yaml"
    events.write_text("\n".join(json.dumps(line) for line in reversed(lines)) + "\n")
    books.write_text(PLAYBOOKS)
    return events, books


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), prog_name="forethought")
    return result.exit_code, result.stdout, result.stderr


def error_line(code: int, stdout: str, stderr: str, expected: int) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == expected and len(lines) == 1 and "Traceback" not in stdout + stderr, (code, stdout, stderr)
    assert lines[0].startswith("error: ")
    return lines[0]


def test_a_replay_prints_each_decision_with_time_playbook_verdict_and_reason(replayed: tuple[Path, Path]) -> None:
    events, books = replayed
    code, out, err = invoke("explain", "c1", "--from-replay", str(events), "--playbooks", str(books))
    assert code == 0, err
    decisions = [line.split() for line in out.splitlines() if line.startswith("  2026")]
    assert [d[:3] for d in decisions] == [[iso(T0 + 2), "burst", "sent"], [iso(T0 + 1802), "burst", "suppressed"],
                                          [iso(T0 + 4002), "burst", "sent"]]
    assert "(cooldown): the playbook sent within its cooldown" in out
    assert f"as of {iso(T0 + 5000)}" in out  # the last event of the file
    assert "scores: " in out and "facts: events 9" in out


def test_at_stops_the_replay_there(replayed: tuple[Path, Path]) -> None:
    events, books = replayed
    code, out, _ = invoke("explain", "c1", "--from-replay", str(events), "--playbooks", str(books),
                          "--at", iso(T0 + 3600))
    assert code == 0
    assert [line.split()[2] for line in out.splitlines() if line.startswith("  2026")] == ["sent", "suppressed"]
    assert f"as of {iso(T0 + 3600)}" in out and "facts: events 6" in out


def test_json_prints_the_view_as_the_worker_answers_it(replayed: tuple[Path, Path]) -> None:
    events, books = replayed
    code, out, _ = invoke("explain", "c1", "--from-replay", str(events), "--playbooks", str(books), "--json")
    view = json.loads(out)
    assert code == 0 and view["customer_id"] == "c1" and view["last_seen"] == iso(T0 + 4002)
    assert [(d["verdict"], d["reason"], d["at"]) for d in view["decisions"]][1] == (
        "suppressed", "cooldown", iso(T0 + 1802))


def test_a_customer_the_replay_never_saw_is_one_line_and_exit_1(replayed: tuple[Path, Path]) -> None:
    events, books = replayed
    line = error_line(*invoke("explain", "nobody", "--from-replay", str(events), "--playbooks", str(books)), 1)
    assert "no state for customer 'nobody'" in line and str(events) in line
    line = error_line(*invoke("explain", "c2", "--from-replay", str(events), "--playbooks", str(books),
                              "--at", iso(T0)), 1)  # c2's only event comes later
    assert "no state for customer 'c2'" in line and iso(T0) in line


@pytest.mark.parametrize(("args", "code", "words"), [
    (["--at", "yesterday"], 2, "--at yesterday: not an ISO-8601 time"),
    (["--at", "2026-11-02T03:00:00"], 2, "give a time zone offset"),
    (["--url", "http://127.0.0.1:1", "--from-replay", "events.jsonl"], 2, "either --url"),
    (["--url", "worker-1:6066"], 2, "--url worker-1:6066: give the worker's web root"),
    (["--from-replay", "missing.jsonl"], 3, "missing.jsonl"),
])
def test_bad_input_is_one_line_naming_it(args: list[str], code: int, words: str) -> None:
    assert words in error_line(*invoke("explain", "c1", *args), code)


def test_an_unreachable_worker_is_one_line_naming_its_address_and_exit_6() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens once the socket closes
    line = error_line(*invoke("explain", "c1", "--url", f"http://127.0.0.1:{port}"), 6)
    assert f"cannot reach the worker at http://127.0.0.1:{port}" in line and "--url" in line
