"""The optional TOML config file beside the environment: precedence, and the same strictness.

Precedence, highest first: a command-line option, an environment variable, the config file, the default.
An unknown key in the file is refused with one line naming the file and the key (docs/configuration.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from forethought.cli import app
from forethought.ops.failures import BadSetting, InputMissing
from forethought.ops.settings import Settings
from forethought.ops.startup import load_settings
from forethought.senders.settings import SenderAppSettings

CONFIG = """\
kafka_bootstrap = "file-broker:9092"
app_id = "from-file"
log_format = "console"

[engine]
silence_z = 3.0
burst_z = 5.0

[sender]
webhook_url = "http://127.0.0.1:9/from-file"
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.upper().startswith("FORETHOUGHT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FORETHOUGHT_CONFIG_FILE", "")  # undone after the test, whatever --config set
    monkeypatch.chdir(tmp_path)
    yield


def config(tmp_path: Path, text: str = CONFIG, monkeypatch: pytest.MonkeyPatch | None = None) -> Path:
    path = tmp_path / "forethought.toml"
    path.write_text(text)
    if monkeypatch is not None:
        monkeypatch.setenv("FORETHOUGHT_CONFIG_FILE", str(path))
    return path


def test_the_file_fills_in_what_the_environment_leaves_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config(tmp_path, monkeypatch=monkeypatch)
    monkeypatch.setenv("FORETHOUGHT_KAFKA_BOOTSTRAP", "env-broker:9092")
    monkeypatch.setenv("FORETHOUGHT_ENGINE__BURST_Z", "6.5")
    settings = Settings()
    assert settings.kafka_bootstrap == "env-broker:9092"  # the environment wins
    assert settings.app_id == "from-file" and settings.log_format == "console"  # the file beats the defaults
    assert settings.engine.silence_z == 3.0  # a section merges key by key: file ...
    assert settings.engine.burst_z == 6.5  # ... and environment
    assert settings.engine.burst_min_errors == 5  # ... and the default
    assert settings.web_port == 6066


def test_a_command_line_option_beats_environment_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config(tmp_path, monkeypatch=monkeypatch)
    monkeypatch.setenv("FORETHOUGHT_KAFKA_BOOTSTRAP", "env-broker:9092")
    assert load_settings(kafka_bootstrap="option-broker:9092").kafka_bootstrap == "option-broker:9092"


def test_without_a_file_the_defaults_hold() -> None:
    assert Settings().app_id == "forethought"


def test_the_senders_read_their_section_and_the_worker_leaves_it(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    config(tmp_path, monkeypatch=monkeypatch)
    assert SenderAppSettings().sender.webhook_url == "http://127.0.0.1:9/from-file"
    assert not hasattr(Settings(), "sender")


@pytest.mark.parametrize(("text", "key"), [
    ('kafka_bootsrap = "x:1"\n', "unknown key kafka_bootsrap (did you mean kafka_bootstrap?)"),
    ("[engine]\nsilence_zz = 3.0\n", "unknown key engine.silence_zz (did you mean engine.silence_z?)"),
    ("[engnie]\nsilence_z = 3.0\n", "unknown key engnie.silence_z (did you mean engine.silence_z?)"),
    ('KAFKA_BOOTSTRAP = "x:1"\n', "unknown key KAFKA_BOOTSTRAP"),
])
def test_an_unknown_key_names_the_file_and_the_key(text: str, key: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = config(tmp_path, text, monkeypatch)
    with pytest.raises(BadSetting) as refused:
        Settings()
    assert str(refused.value) == f"config file {path}: {key}"


def test_an_unknown_sender_key_is_refused_by_the_senders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = config(tmp_path, '[sender]\nwebhook_urll = "http://h/x"\n', monkeypatch)
    with pytest.raises(BadSetting, match="unknown key sender.webhook_urll \\(did you mean sender.webhook_url\\?\\)"):
        SenderAppSettings()
    assert Settings().app_id == "forethought", path  # not the worker's business


def test_a_bad_value_in_the_file_is_refused_like_one_in_the_environment(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    config(tmp_path, "web_port = 0\n", monkeypatch)
    with pytest.raises(ValidationError, match="web_port"):
        Settings()


def test_a_file_that_is_not_toml_or_not_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = config(tmp_path, "kafka_bootstrap = \n", monkeypatch)
    with pytest.raises(BadSetting, match=f"config file {path}: not valid TOML"):
        Settings()
    monkeypatch.setenv("FORETHOUGHT_CONFIG_FILE", str(tmp_path / "gone.toml"))
    with pytest.raises(InputMissing, match="gone.toml does not exist"):
        Settings()


def test_unknown_keys_given_in_code_are_refused_too() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Settings(web_prot=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="unknown engine setting silence_zz \\(did you mean silence_z\\?\\)"):
        Settings(engine={"silence_zz": 3})  # type: ignore[arg-type]


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), prog_name="forethought")
    return result.exit_code, result.stdout, result.stderr


def test_the_cli_takes_the_file_from_the_option_or_the_variable(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = config(tmp_path, 'topic_prefix = "staging."\n')
    code, out, err = run("--config", str(path), "send", "--dry-run", str(events(tmp_path)))
    assert code == 0 and "staging.events.clickstream" in out, (out, err)
    monkeypatch.setenv("FORETHOUGHT_CONFIG_FILE", str(path))
    code, out, _ = run("send", "--dry-run", str(events(tmp_path)))
    assert code == 0 and "staging.events.clickstream" in out


def test_the_cli_answers_an_unknown_key_in_one_line(tmp_path: Path) -> None:
    path = config(tmp_path, "[engine]\nsilence_zz = 3.0\n")
    code, out, err = run("--config", str(path), "topics", "list")
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.strip().splitlines() == [f"error: config file {path}: unknown key engine.silence_zz "
                                        "(did you mean engine.silence_z?)"]


def events(tmp_path: Path) -> Path:
    path = tmp_path / "one.jsonl"
    path.write_text('{"type": "page_view", "event_id": "e1", "customer_id": "c1", "occurred_at": '
                    '"2026-09-07T00:00:00Z", "page": "/home"}\n')
    return path


DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_the_documented_example_file_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = DOCS.read_text().split("```toml\n", 1)[1].split("```", 1)[0]
    config(tmp_path, example, monkeypatch)
    senders = SenderAppSettings()
    assert senders.kafka_wait_seconds == 30 and senders.engine.silence_z == 2.5
    assert senders.sender.smtp_starttls and senders.sender.smtp_port == 587
    assert Settings().topic_prefix == "prod."


def test_every_setting_is_documented() -> None:
    from forethought.senders.settings import SenderSettings

    text = DOCS.read_text()
    names = [f"FORETHOUGHT_{name.upper()}" for name in Settings.model_fields if name != "engine"]
    names += [f"FORETHOUGHT_SENDER__{name.upper()}" for name in SenderSettings.model_fields]
    assert [name for name in names if f"`{name}`" not in text and f" {name}`" not in text] == []


def test_every_variable_the_deployments_set_is_a_known_one() -> None:
    """A misspelt name in docker-compose.yml or deploy/ would stop the service at start: catch it here."""
    import re

    from forethought.ops.settings_sources import ENV_PREFIX, OTHER_VARIABLES, known_keys

    root = DOCS.parents[1]
    known = {ENV_PREFIX + key.upper() for key in known_keys(SenderAppSettings)} | OTHER_VARIABLES
    files = [root / "docker-compose.yml", *(p for p in (root / "deploy").rglob("*") if p.is_file())]
    used = {(path.name, name) for path in files
            for name in re.findall(r"\bFORETHOUGHT_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(errors="replace"))}
    assert used and [(file, name) for file, name in sorted(used) if name not in known] == []
