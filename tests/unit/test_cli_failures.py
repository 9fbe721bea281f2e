"""Every CLI verb fails cleanly: one line on stderr naming what to fix, a distinct exit code, no traceback.

The four failure classes (docs/cli-errors.md): a misspelt or invalid setting (2), a missing input file (3),
an output path that cannot be written, found before any work starts (4), and a broker that does not answer
within FORETHOUGHT_KAFKA_WAIT_SECONDS (5). The matrix runs the real command tree in-process (typer's
runner: the same root command and error handling as the console script); a few cases run the installed
CLI in a subprocess to show the real process behaves the same.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from forethought.cli import app

BAD_SETTING, INPUT_MISSING, OUTPUT_UNWRITABLE, BROKER_UNAVAILABLE, BUG = 2, 3, 4, 5, 70


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No FORETHOUGHT_* from the caller's environment; what a command sets (--debug, --config) is undone."""
    for name in list(os.environ):
        if name.upper().startswith("FORETHOUGHT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FORETHOUGHT_DEBUG", "")  # restored (removed) after the test even if a command set it
    monkeypatch.setenv("FORETHOUGHT_CONFIG_FILE", "")
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), prog_name="forethought")
    return result.exit_code, result.stdout, result.stderr


def assert_one_line(code: int, stdout: str, stderr: str, expected_code: int, *words: str) -> str:
    """Exit ``expected_code``, exactly one line on stderr containing ``words``, no traceback anywhere."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == expected_code, (code, stdout, stderr)
    assert len(lines) == 1, stderr
    assert "Traceback" not in stdout + stderr
    assert lines[0].startswith("error: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text('{"not": "an event"}\n')
    return path


# (a) the broker does not answer: a bounded wait, then the address and the settings to change
BROKER_VERBS = [
    ["worker"],
    ["topics", "create"],
    ["simulate-traffic", "--seconds", "1"],
    ["simulate", "--to-kafka", "--customers", "10", "--days", "1"],
    ["simulate", "--respond", "--customers", "10", "--days", "1"],
    ["send", "events.jsonl"],
    ["senders", "run", "--channel", "console"],
    ["demo", "--seconds", "1"],
]


@pytest.mark.parametrize("verb", BROKER_VERBS, ids=" ".join)
def test_an_unreachable_broker_is_one_line_naming_the_address_and_the_settings(
        verb: list[str], closed_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jsonl(tmp_path)
    monkeypatch.setenv("FORETHOUGHT_KAFKA_BOOTSTRAP", f"127.0.0.1:{closed_port}")
    monkeypatch.setenv("FORETHOUGHT_KAFKA_WAIT_SECONDS", "0.3")
    assert_one_line(*invoke(*verb), BROKER_UNAVAILABLE, f"127.0.0.1:{closed_port}", "FORETHOUGHT_KAFKA_BOOTSTRAP",
                    "FORETHOUGHT_KAFKA_WAIT_SECONDS")


# (b) an input file that is not there: the option or setting and the path named
MISSING_INPUTS = [
    (["replay", "nothere.jsonl"], {}, "input nothere.jsonl"),
    (["replay", "events.jsonl", "--truth", "nothere.jsonl"], {}, "--truth nothere.jsonl"),
    (["replay", "events.jsonl", "--playbooks", "nothere.yaml"], {}, "--playbooks nothere.yaml"),
    (["send", "nothere.jsonl"], {}, "input nothere.jsonl"),
    (["--config", "nothere.toml", "topics", "list"], {}, "--config nothere.toml"),
    (["schemas", "check", "--directory", "nothere"], {}, "--directory nothere"),
    (["topics", "list"], {"FORETHOUGHT_TOPICS_FILE": "nothere.yaml"}, "FORETHOUGHT_TOPICS_FILE nothere.yaml"),
    (["topics", "create"], {"FORETHOUGHT_TOPICS_FILE": "nothere.yaml"}, "FORETHOUGHT_TOPICS_FILE nothere.yaml"),
    (["worker"], {"FORETHOUGHT_PLAYBOOKS_FILE": "nothere.yaml"}, "FORETHOUGHT_PLAYBOOKS_FILE nothere.yaml"),
    (["replay", "events.jsonl"], {"FORETHOUGHT_PLAYBOOKS_FILE": "nothere.yaml"}, "FORETHOUGHT_PLAYBOOKS_FILE"),
    (["senders", "run", "--channel", "email"], {"FORETHOUGHT_SENDER__TEMPLATES_DIR": "nothere"},
     "FORETHOUGHT_SENDER__TEMPLATES_DIR nothere"),
    (["senders", "run", "--channel", "email"], {"FORETHOUGHT_PLAYBOOKS_FILE": "nothere.yaml"},
     "FORETHOUGHT_PLAYBOOKS_FILE nothere.yaml"),
    (["topics", "list"], {"FORETHOUGHT_CONFIG_FILE": "nothere.toml"}, "config file nothere.toml"),
]


@pytest.mark.parametrize(("verb", "env", "named"), MISSING_INPUTS, ids=lambda v: " ".join(v) if isinstance(v, list)
                         else None)
def test_a_missing_input_file_is_one_line_naming_it(verb: list[str], env: dict[str, str], named: str,
                                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    closed_port: int) -> None:
    jsonl(tmp_path)
    monkeypatch.setenv("FORETHOUGHT_KAFKA_BOOTSTRAP", f"127.0.0.1:{closed_port}")  # never reached
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert_one_line(*invoke(*verb), INPUT_MISSING, named, "does not exist")


# (c) an output that cannot be written: refused before any work, nothing created
def test_replay_refuses_an_unwritable_report_before_reading_any_input(tmp_path: Path) -> None:
    events = jsonl(tmp_path)
    code, out, err = invoke("replay", str(events), "--triggers-out", "triggers.jsonl", "--report", "nodir/r.json")
    assert_one_line(code, out, err, OUTPUT_UNWRITABLE, "--report nodir/r.json", "directory nodir does not exist")
    assert not (tmp_path / "triggers.jsonl").exists()  # the earlier output was not even opened
    assert "records" not in out + err  # no progress, no summary: the replay did not run


@pytest.mark.parametrize("option", ["--triggers-out", "--deadletter-out", "--snapshot-out", "--html"])
def test_replay_refuses_every_unwritable_output(option: str, tmp_path: Path) -> None:
    extra = ["--snapshot-at", "2026-09-08T00:00:00Z"] if option == "--snapshot-out" else []
    code, out, err = invoke("replay", str(jsonl(tmp_path)), option, "nodir/x.jsonl", *extra)
    assert_one_line(code, out, err, OUTPUT_UNWRITABLE, option, "nodir")


def test_replay_refuses_a_directory_as_an_output_file(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    code, out, err = invoke("replay", str(jsonl(tmp_path)), "--report", "adir")
    assert_one_line(code, out, err, OUTPUT_UNWRITABLE, "--report adir", "is a directory")


def test_simulate_refuses_an_unwritable_truth_file_before_writing_the_records(tmp_path: Path) -> None:
    code, out, err = invoke("simulate", "--customers", "20", "--days", "2", "--output", "out.jsonl",
                            "--truth", "nodir/truth.jsonl")
    assert_one_line(code, out, err, OUTPUT_UNWRITABLE, "--truth nodir/truth.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_schemas_export_refuses_a_folder_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    code, out, err = invoke("schemas", "export", "--out", "plain/schemas")
    assert_one_line(code, out, err, OUTPUT_UNWRITABLE, "--out plain/schemas", "plain is not a directory")
    assert out == ""  # no "wrote ..." line


def test_the_worker_refuses_a_data_dir_it_cannot_create_before_contacting_kafka(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closed_port: int) -> None:
    (tmp_path / "plain").write_text("")
    monkeypatch.setenv("FORETHOUGHT_DATA_DIR", "plain/state")
    monkeypatch.setenv("FORETHOUGHT_KAFKA_BOOTSTRAP", f"127.0.0.1:{closed_port}")
    assert_one_line(*invoke("worker"), OUTPUT_UNWRITABLE, "FORETHOUGHT_DATA_DIR plain/state")


# (d) a misspelt setting: refused by every verb that reads settings, with the closest name
SETTING_VERBS = [
    ["worker"], ["topics", "create"], ["topics", "list"], ["simulate-traffic", "--seconds", "1"],
    ["simulate", "--to-kafka", "--customers", "10"], ["replay", "events.jsonl"], ["send", "events.jsonl"],
    ["senders", "run", "--channel", "console"], ["demo", "--seconds", "1"], ["kafka", "fetch"], ["kafka", "check"],
]


@pytest.mark.parametrize("verb", SETTING_VERBS, ids=" ".join)
def test_a_misspelt_engine_setting_is_refused_with_a_suggestion(verb: list[str], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    jsonl(tmp_path)
    monkeypatch.setenv("FORETHOUGHT_ENGINE__SILENCE_ZZ", "3")
    assert_one_line(*invoke(*verb), BAD_SETTING, "unknown setting FORETHOUGHT_ENGINE__SILENCE_ZZ",
                    "did you mean FORETHOUGHT_ENGINE__SILENCE_Z?")


@pytest.mark.parametrize(("variable", "suggested"), [
    ("FORETHOUGHT_WEB_PROT", "FORETHOUGHT_WEB_PORT"),
    ("FORETHOUGHT_KAFKA_BOOTSTRAPS", "FORETHOUGHT_KAFKA_BOOTSTRAP"),
    ("FORETHOUGHT_ENGNE__BURST_Z", "FORETHOUGHT_ENGINE__BURST_Z"),
])
def test_a_misspelt_worker_setting_is_refused_with_a_suggestion(variable: str, suggested: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, "1")
    assert_one_line(*invoke("topics", "list"), BAD_SETTING, variable, f"did you mean {suggested}?")


def test_a_misspelt_sender_setting_is_refused_by_the_senders_and_left_alone_by_the_worker(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORETHOUGHT_SENDER__WEBHOOK_URLL", "http://127.0.0.1:9/hook")
    assert_one_line(*invoke("senders", "run", "--channel", "console"), BAD_SETTING,
                    "FORETHOUGHT_SENDER__WEBHOOK_URLL", "did you mean FORETHOUGHT_SENDER__WEBHOOK_URL?")
    code, out, _ = invoke("topics", "list")  # one environment can serve worker and senders
    assert code == 0 and "events.clickstream" in out


def test_an_invalid_engine_value_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORETHOUGHT_ENGINE__BURST_Z", "-1")
    assert_one_line(*invoke("topics", "list"), BAD_SETTING, "FORETHOUGHT_ENGINE", "burst_z must be > 0")


def test_variables_that_are_not_settings_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORETHOUGHT_CACHE_DIR", "/tmp/nowhere")
    monkeypatch.setenv("FORETHOUGHT_BENCH_LONG", "1")
    code, out, _ = invoke("topics", "list")
    assert code == 0 and "events.clickstream" in out


def test_a_usage_mistake_is_one_line_pointing_at_the_help() -> None:
    assert_one_line(*invoke("replay", "--no-such-option"), 2, "--no-such-option", "forethought replay --help")
    assert_one_line(*invoke("no-such-verb"), 2, "no-such-verb", "forethought --help")


# the real process
def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("FORETHOUGHT_")}
    return subprocess.run([sys.executable, "-m", "forethought.cli", *args], env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def test_the_installed_cli_answers_an_unreachable_broker_in_one_line(closed_port: int) -> None:
    env = {"FORETHOUGHT_KAFKA_BOOTSTRAP": f"127.0.0.1:{closed_port}", "FORETHOUGHT_KAFKA_WAIT_SECONDS": "0.3"}
    for verb in (["topics", "create"], ["worker"]):
        done = run_cli(*verb, env=env)
        assert_one_line(done.returncode, done.stdout, done.stderr, BROKER_UNAVAILABLE, f"127.0.0.1:{closed_port}")


def test_the_installed_cli_refuses_a_misspelt_engine_setting() -> None:
    done = run_cli("topics", "list", env={"FORETHOUGHT_ENGINE__SILENCE_ZZ": "3"})
    assert_one_line(done.returncode, done.stdout, done.stderr, BAD_SETTING, "FORETHOUGHT_ENGINE__SILENCE_Z?")


def test_version_comes_from_the_installed_package() -> None:
    from importlib.metadata import version

    done = run_cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"forethought {version('forethought')}"


def unexpected_failure(tmp_path: Path) -> Path:
    """A schemas folder where one schema's file is a directory: reading it fails in a way no check expects."""
    from forethought.contracts.schemas import render

    folder = tmp_path / "schemas"
    (folder / next(iter(render()))).mkdir(parents=True)
    return folder


def test_an_unexpected_error_is_one_line_and_its_traceback_comes_with_debug(tmp_path: Path) -> None:
    folder = str(unexpected_failure(tmp_path))
    done = run_cli("schemas", "check", "--directory", folder)
    line = assert_one_line(done.returncode, done.stdout, done.stderr, BUG, "IsADirectoryError", "--debug")
    assert "FORETHOUGHT_DEBUG=1" in line
    for debug in (run_cli("--debug", "schemas", "check", "--directory", folder),
                  run_cli("schemas", "check", "--directory", folder, env={"FORETHOUGHT_DEBUG": "1"})):
        assert debug.returncode != 0 and "Traceback" in debug.stderr and "IsADirectoryError" in debug.stderr


@pytest.mark.parametrize("verb", [["worker"], ["replay", "events.jsonl", "--quiet"]], ids=" ".join)
def test_builtin_playbooks_are_not_a_missing_file(verb: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  closed_port: int) -> None:
    jsonl(tmp_path)
    monkeypatch.setenv("FORETHOUGHT_PLAYBOOKS_FILE", "builtin")
    monkeypatch.setenv("FORETHOUGHT_KAFKA_BOOTSTRAP", f"127.0.0.1:{closed_port}")
    monkeypatch.setenv("FORETHOUGHT_KAFKA_WAIT_SECONDS", "0")
    code, out, err = invoke(*verb)
    if verb[0] == "worker":  # past the file checks, up to the broker
        assert_one_line(code, out, err, BROKER_UNAVAILABLE, f"127.0.0.1:{closed_port}")
    else:
        assert code == 0, (out, err)
