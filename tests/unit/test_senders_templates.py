"""Email rendering: per-playbook templates with a default fallback, reasons and customer id in every part."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from forethought.contracts.records import Trigger
from forethought.contracts.schemas import EXAMPLES
from forethought.senders.templates import PACKAGE_TEMPLATES, Renderer, build_message


def trigger(**changes: Any) -> Trigger:
    return Trigger.model_validate({**EXAMPLES["trigger"], **changes})


REASON = {"signal": "error_rate", "observed": 12.0, "baseline": 0.5, "unit": "errors/h",
          "text": "12 errors in the last hour; usually 0.5."}


@pytest.mark.parametrize("playbook", ["silence_dropoff", "error_burst", "default"])
def test_every_shipped_playbook_has_all_three_parts(playbook: str) -> None:
    for part in ("subject.txt", "body.txt", "body.html"):
        assert (PACKAGE_TEMPLATES / playbook / part).is_file()


def test_silence_dropoff_mail_carries_the_reason_the_customer_and_the_context() -> None:
    mail = Renderer().render(trigger())
    assert mail.template == "silence_dropoff"
    assert "cust-42" in mail.subject and "\n" not in mail.subject
    for body in (mail.text, mail.html):
        assert "cust-42" in body
        assert "No activity for 3.0 d; this customer usually returns within 12.0 h (41 visits seen)." in body
        assert "2026-11-19T09:30:00+00:00" in body  # context.last_seen_at


def test_error_burst_mail_names_the_error_code() -> None:
    mail = Renderer().render(trigger(playbook="error_burst", reasons=[REASON],
                                     context={"error_code": "PAYMENT_DECLINED", "severity": "error"}))
    assert mail.template == "error_burst"
    assert "PAYMENT_DECLINED" in mail.subject
    assert REASON["text"] in mail.text and REASON["text"] in mail.html
    assert "PAYMENT_DECLINED" in mail.html


def test_an_unknown_playbook_falls_back_to_default() -> None:
    mail = Renderer().render(trigger(playbook="renewal_risk", reasons=[REASON]))
    assert mail.template == "default"
    assert "cust-42" in mail.subject and REASON["text"] in mail.text and REASON["text"] in mail.html


def test_a_playbook_name_cannot_reach_outside_the_template_folders() -> None:
    assert Renderer().render(trigger(playbook="../error_burst")).template == "default"


def test_html_is_escaped_and_text_is_not() -> None:
    mail = Renderer().render(trigger(reasons=[{**REASON, "text": "<b>5 errors</b> & more"}]))
    assert "&lt;b&gt;5 errors&lt;/b&gt; &amp; more" in mail.html
    assert "<b>5 errors</b> & more" in mail.text


def test_an_override_folder_wins_part_by_part(tmp_path: Path) -> None:
    (tmp_path / "silence_dropoff").mkdir()
    (tmp_path / "silence_dropoff" / "subject.txt").write_text("Come back, {{ customer_id }}")
    mail = Renderer(tmp_path).render(trigger())
    assert mail.subject == "Come back, cust-42"
    assert "No activity for 3.0 d" in mail.text  # body still from the packaged template


def test_a_multiline_subject_is_folded_to_one_line() -> None:
    subject = Renderer().render(trigger(customer_id="c\nBcc: x@evil.example")).subject
    assert "\n" not in subject and subject.startswith("We miss you, c Bcc: x@evil.example")


def test_the_message_has_text_and_html_alternatives_and_a_stable_id() -> None:
    t = trigger()
    mail = Renderer().render(t)
    message = build_message(mail, "Forethought <noreply@f.example>", "ana@customers.example", t)
    assert message["To"] == "ana@customers.example"
    assert message["Message-ID"] == f"<{t.trigger_id}@forethought.local>"
    assert message.get_content_type() == "multipart/alternative"
    kinds = [part.get_content_type() for part in message.iter_parts()]
    assert kinds == ["text/plain", "text/html"]
    assert "No activity for 3.0 d" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_missing_or_broken_default_templates_are_reported_at_start(tmp_path: Path) -> None:
    Renderer().check()  # the packaged ones load
    (tmp_path / "default").mkdir()
    (tmp_path / "default" / "body.txt").write_text("{% for %}")
    with pytest.raises(ValueError, match="default/body.txt"):
        Renderer(tmp_path).check()
