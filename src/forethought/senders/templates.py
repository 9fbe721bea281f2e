"""Email rendering: subject, plain text and HTML from jinja2 templates chosen by playbook.

Templates live in ``senders/templates/<playbook>/{subject.txt,body.txt,body.html}``, with
``default/`` as the fallback; ``templates_dir`` (``FORETHOUGHT_SENDER__TEMPLATES_DIR``) overrides them.

>>> from forethought.contracts.schemas import EXAMPLES
>>> from forethought.contracts.records import Trigger
>>> mail = Renderer().render(Trigger.model_validate(EXAMPLES["trigger"]))
>>> mail.subject
'We miss you, cust-42: anything we can help with?'
>>> "No activity for 3.0 d" in mail.text and "No activity for 3.0 d" in mail.html
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, TemplateError, select_autoescape

from forethought.contracts.records import Trigger

PACKAGE_TEMPLATES = Path(__file__).parent / "templates"
PARTS = ("subject.txt", "body.txt", "body.html")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """What one trigger's email says, and which templates said it."""

    subject: str
    text: str
    html: str
    template: str


class Renderer:
    """A jinja2 environment over the override folder (if any), then the packaged templates."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        folders = [templates_dir, PACKAGE_TEMPLATES] if templates_dir else [PACKAGE_TEMPLATES]
        self.searched = folders
        self.env = Environment(
            loader=ChoiceLoader([FileSystemLoader(str(f)) for f in folders]),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            keep_trailing_newline=True,
        )

    def check(self) -> None:
        """Fail fast (``ValueError``) when the ``default/`` templates cannot be loaded or parsed."""
        for part in PARTS:
            try:
                self.env.get_template(f"default/{part}")
            except TemplateError as exc:
                raise ValueError(f"email template default/{part} unusable ({exc!r}); looked in "
                                 f"{[str(s) for s in self.searched]}") from exc

    def render(self, trigger: Trigger) -> RenderedEmail:
        """Render all three parts; each falls back to ``default/`` when the playbook lacks it."""
        variables = {
            "trigger": trigger, "customer_id": trigger.customer_id, "account_id": trigger.account_id,
            "playbook": trigger.playbook, "reasons": trigger.reasons, "context": trigger.context,
            "scores": trigger.scores, "fired_at": trigger.fired_at, "expires_at": trigger.expires_at,
        }
        rendered, used = [], []
        for part in PARTS:
            template = self.env.select_template(self._candidates(trigger.playbook, part))
            rendered.append(template.render(variables))
            used.append(template.name or part)
        subject = " ".join(rendered[0].split())  # one line: no header injection via reasons/context
        return RenderedEmail(subject, rendered[1], rendered[2], used[1].split("/")[0])

    @staticmethod
    def _candidates(playbook: str, part: str) -> list[str]:
        names = [f"{playbook}/{part}"] if _SAFE_NAME.match(playbook) else []
        return [*names, f"default/{part}"]


def build_message(mail: RenderedEmail, sender: str, to: str, trigger: Trigger) -> EmailMessage:
    """A multipart/alternative message (plain text first, HTML preferred by mail clients).

    ``to`` is one address already checked by :func:`forethought.senders.recipients.check_address`;
    it is set as an address object, not parsed from text, so it can only ever be that one address.
    """
    message = EmailMessage()
    message["Subject"] = mail.subject
    message["From"] = sender
    message["To"] = Address(addr_spec=to)
    message["Message-ID"] = f"<{trigger.trigger_id}@forethought.local>"  # the same on a resend
    message["X-Forethought-Trigger-Id"] = trigger.trigger_id
    message["X-Forethought-Playbook"] = trigger.playbook
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    return message
