"""Template mechanics: per-playbook parts, a customer-safe default, start-up checks, escaping, overrides.

What each shipped playbook actually says to a customer is tested in test_customer_wording.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import structlog
import structlog.testing
from typer.testing import CliRunner

from forethought.cli import app
from forethought.contracts.records import Trigger
from forethought.contracts.schemas import EXAMPLES
from forethought.ops.settings import DEFAULT_PLAYBOOKS_FILE
from forethought.senders.addresses import AddressBook
from forethought.senders.service import SenderService
from forethought.senders.settings import SenderAppSettings
from forethought.senders.templates import Customer, Renderer, build_message, playbooks_using

ANALYST = EXAMPLES["trigger"]["reasons"][0]["text"]  # "No activity for 3.0 d; this customer usually returns..."
ANA = Customer("cust-42", "ana@customers.example", "Ana")
EMAIL_PLAYBOOK = """
playbooks:
  - name: win_back
    on: [silence]
    channels: [email]
    priority: 50
"""


def trigger(**changes: Any) -> Trigger:
    return Trigger.model_validate({**EXAMPLES["trigger"], **changes})


def test_the_shipped_templates_pass_the_start_up_check_for_every_shipped_email_playbook() -> None:
    email_playbooks = playbooks_using(DEFAULT_PLAYBOOKS_FILE, ["email"])
    assert set(email_playbooks) == {"error_burst", "dropoff_risk_high", "long_inactivity", "onboarding_stalled",
                                    "key_feature_unused", "renewal_at_risk", "long_inactivity_learning"}
    Renderer().check(email_playbooks + playbooks_using(Path("builtin"), ["email"]))


def test_an_email_playbook_without_templates_stops_the_email_sender_at_start(tmp_path: Path) -> None:
    playbooks = tmp_path / "playbooks.yaml"
    playbooks.write_text(EMAIL_PLAYBOOK)
    settings = SenderAppSettings(playbooks_file=playbooks)
    missing = "win_back/body.html is missing; win_back/body.txt is missing; win_back/subject.txt is missing"
    with pytest.raises(ValueError, match=missing):
        SenderService(settings, ["email"])
    SenderService(settings, ["console"])  # the console stand-in does not need e-mail templates
    (tmp_path / "templates" / "win_back").mkdir(parents=True)
    for part, text in {"subject.txt": "Hello again", "body.txt": "Hi {{ customer.name or 'there' }}",
                       "body.html": "<p>Hi {{ customer.name or 'there' }}</p>"}.items():
        (tmp_path / "templates" / "win_back" / part).write_text(text)
    SenderService(SenderAppSettings(playbooks_file=playbooks, sender={"templates_dir": tmp_path / "templates"}),
                  ["email"])


def test_the_cli_says_which_template_is_missing_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    playbooks = tmp_path / "playbooks.yaml"
    playbooks.write_text(EMAIL_PLAYBOOK)
    monkeypatch.setenv("FORETHOUGHT_PLAYBOOKS_FILE", str(playbooks))
    result = CliRunner().invoke(app, ["senders", "run", "--channel", "email"], prog_name="forethought")
    assert result.exit_code == 2, result.output
    (line,) = [x for x in result.stderr.splitlines() if x.strip()]
    assert line.startswith("error: invalid configuration: email templates unusable") and "win_back/body.html" in line


def test_a_template_asking_for_scores_or_the_trigger_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "long_inactivity").mkdir()
    (tmp_path / "long_inactivity" / "body.txt").write_text("Your risk: {{ scores.dropoff }} {{ trigger.reasons }}")
    with pytest.raises(ValueError, match=r"long_inactivity/body.txt uses unknown variable\(s\) scores, trigger"):
        Renderer(tmp_path).check(["long_inactivity"])


def test_an_older_template_printing_the_reasons_text_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "default").mkdir()
    (tmp_path / "default" / "body.html").write_text("{% for r in reasons %}<li>{{ r.text }}</li>{% endfor %}")
    (tmp_path / "default" / "message.txt").write_text("{{ context.text }}")  # a context key may be called text
    with pytest.raises(ValueError, match=r"default/body.html prints a reason's text") as refused:
        Renderer(tmp_path).check()
    assert "message.txt" not in str(refused.value)


def test_missing_or_broken_default_templates_are_reported_at_start(tmp_path: Path) -> None:
    (tmp_path / "default").mkdir()
    (tmp_path / "default" / "body.txt").write_text("{% for %}")
    with pytest.raises(ValueError, match="default/body.txt unusable"):
        Renderer(tmp_path).check()


def test_an_unknown_playbook_gets_the_customer_safe_default_and_a_warning_once() -> None:
    renderer = Renderer()
    with structlog.testing.capture_logs() as logged:  # whatever the logging set-up other tests left behind
        mail = renderer.render(trigger(playbook="added_after_start"), ANA)
        assert mail.template == "default" and mail.subject == "A quick note from the team"
        assert mail.text.startswith("Hi Ana,") and ANALYST not in mail.text + mail.html
        renderer.render(trigger(playbook="added_after_start"), ANA)
    assert [entry["event"] for entry in logged].count("template_missing") == 1


def test_a_playbook_name_cannot_reach_outside_the_template_folders() -> None:
    assert Renderer().render(trigger(playbook="../error_burst")).template == "default"


def test_html_is_escaped_and_text_is_not() -> None:
    hostile = Customer("cust-42", name="<b>Ana</b> & co")
    mail = Renderer().render(trigger(), hostile)
    assert "Hi &lt;b&gt;Ana&lt;/b&gt; &amp; co," in mail.html and "<b>Ana</b>" not in mail.html
    assert "Hi <b>Ana</b> & co," in mail.text


def test_an_override_folder_wins_part_by_part(tmp_path: Path) -> None:
    (tmp_path / "long_inactivity").mkdir()
    (tmp_path / "long_inactivity" / "subject.txt").write_text("Come back, {{ customer.name }}")
    mail = Renderer(tmp_path).render(trigger(playbook="long_inactivity"), ANA)
    assert mail.subject == "Come back, Ana"
    assert "since your last visit" in mail.text  # the body still from the packaged template


def test_a_multiline_value_cannot_add_a_header_to_the_subject() -> None:
    subject = Renderer().render(trigger(playbook="key_feature_unused", context={"feature": "x\nBcc: x@evil.example"}),
                                ANA).subject
    assert "\n" not in subject and subject == "Have you tried X Bcc: X@evil.example yet?"


def test_the_message_has_text_and_html_alternatives_and_a_stable_id() -> None:
    t = trigger()
    message = build_message(Renderer().render(t, ANA), "Forethought <noreply@f.example>", "ana@customers.example", t)
    assert message["To"] == "ana@customers.example"
    assert message["Message-ID"] == f"<{t.trigger_id}@forethought.local>"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert message.get_body(("plain",)).get_content().startswith("Hi Ana,")  # type: ignore[union-attr]


def test_the_greeting_name_comes_from_the_profile_and_stays_one_short_line() -> None:
    book = AddressBook()
    book.apply(b'{"type":"profile","customer_id":"c1","updated_at":"2026-11-22T10:00:00Z","email":"a@x.example",'
               b'"attributes":{"name":"Ana\\nBcc: x@evil.example","first_name":"  "}}')
    book.apply(b'{"type":"profile","customer_id":"c2","updated_at":"2026-11-22T10:00:00Z","attributes":{"name":7}}')
    assert book.name_of("c1") == "Ana Bcc: x@evil.example"  # blank first_name skipped; folded to one line
    assert book.name_of("c2") is None and book.name_of("nobody") is None


def preview(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["senders", "preview", *args], prog_name="forethought", env=env)
    return result.exit_code, result.stdout, result.stderr


def test_preview_prints_what_the_customer_would_receive() -> None:
    code, out, _ = preview("--playbook", "renewal_at_risk", "--name", "Ana")
    assert code == 0, out
    assert out.startswith("[renewal_at_risk template]\nSubject: Ana, your renewal is coming up: can we help?\n")
    assert "Hi Ana," in out and "on 2026-12-20" in out and "this customer" not in out
    code, out, _ = preview("--playbook", "key_feature_unused", "--html")
    assert code == 0 and "<strong>Reports</strong>" in out and "Hi there," in out
    code, out, _ = preview("--playbook", "feature_welcome", "--channel", "in_app")
    assert (code, out) == (0, "[feature_welcome template]\nNice, you found Reports! Here are a few tips to get the "
                              "most out of it.\n")


def test_preview_names_the_playbooks_and_channels_it_knows(tmp_path: Path) -> None:
    code, _, err = preview("--playbook", "nope")
    assert code == 2 and err.startswith("error: no playbook 'nope'") and "long_inactivity" in err
    code, _, err = preview("--playbook", "feature_welcome")
    assert code == 2 and "feature_welcome does not use email: its channels are in_app" in err
    code, _, err = preview("--playbook", "usage_anomaly", "--channel", "cs_outreach")
    assert code == 2 and "'cs_outreach' has no customer wording" in err
    playbooks = tmp_path / "playbooks.yaml"
    playbooks.write_text(EMAIL_PLAYBOOK)
    code, out, err = preview("--playbook", "win_back", env={"FORETHOUGHT_PLAYBOOKS_FILE": str(playbooks)})
    assert code == 0 and out.startswith("[default template]\nSubject: A quick note from the team")
    assert "win_back has no email templates of its own" in err
