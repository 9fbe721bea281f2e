"""Customer-facing wording: e-mail (subject, text, HTML) and short messages, from jinja2 templates per playbook.

Templates live in ``senders/templates/<playbook>/`` (``subject.txt``, ``body.txt``, ``body.html`` for
e-mail; ``message.txt`` for the short channels ``in_app``, ``sms`` and ``push``), with ``default/`` as
a customer-safe fallback; ``templates_dir`` (``FORETHOUGHT_SENDER__TEMPLATES_DIR``) overrides them
part by part. Guide: docs/email-templates.md.

A template gets the trigger as *data* (:func:`variables`): the customer's name and address, the
playbook's ``context``, and the scoring ``reasons`` without their analyst sentence. The scores,
the reasons' text and the whole trigger are not available, so a template cannot show them to
the customer; :meth:`Renderer.check` refuses a template that asks for any other variable.

>>> from forethought.contracts.schemas import EXAMPLES
>>> from forethought.contracts.records import Trigger
>>> mail = Renderer().render(Trigger.model_validate(EXAMPLES["trigger"]), Customer("cust-42", name="Ana"))
>>> mail.subject
'Ana, we have missed you'
>>> "this customer" in mail.text or "12.0 h" in mail.html
False
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, TemplateError, TemplateNotFound, meta, select_autoescape

from forethought.contracts.records import Trigger
from forethought.ops.logs import get_logger
from forethought.ops.playbooks import PlaybookFileError, load_rules

log = get_logger("senders.templates")
PACKAGE_TEMPLATES = Path(__file__).parent / "templates"
PARTS = ("subject.txt", "body.txt", "body.html")
MESSAGE = "message.txt"
MESSAGE_CHANNELS = ("in_app", "sms", "push")  # customer-facing channels rendered from message.txt
VARIABLES = frozenset({"customer", "playbook", "channel", "trigger_id", "account_id", "context", "signals",
                       "reasons", "fired_at", "expires_at"})
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_REASON_TEXT = re.compile(r"(?<!context)\.text\b|\[\s*['\"]text['\"]\s*\]")  # an older template's reason.text


@dataclass(frozen=True, slots=True)
class Customer:
    """Who the wording is for: ``name`` and ``email`` come from the customer's latest profile."""

    id: str
    email: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """What one trigger's email says, and which template folder said it (the body's)."""

    subject: str
    text: str
    html: str
    template: str


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """A short customer-facing message (in-app, SMS, push) and the template folder it came from."""

    text: str
    template: str


def variables(trigger: Trigger, customer: Customer | None = None) -> dict[str, Any]:
    """What a template may use; the scores and the reasons' sentences are deliberately absent.

    >>> from forethought.contracts.schemas import EXAMPLES
    >>> found = variables(Trigger.model_validate(EXAMPLES["trigger"]))
    >>> sorted(found) == sorted(VARIABLES), found["signals"], found["customer"].name
    (True, ['silence_seconds'], None)
    >>> found["reasons"][0]
    {'signal': 'silence_seconds', 'observed': 259200.0, 'baseline': 43200.0, 'unit': 'seconds'}
    """
    return {
        "customer": customer or Customer(trigger.customer_id), "playbook": trigger.playbook,
        "channel": trigger.channel, "trigger_id": trigger.trigger_id, "account_id": trigger.account_id,
        "context": dict(trigger.context), "signals": [r.signal for r in trigger.reasons],
        "reasons": [{"signal": r.signal, "observed": r.observed, "baseline": r.baseline, "unit": r.unit}
                    for r in trigger.reasons],
        "fired_at": trigger.fired_at, "expires_at": trigger.expires_at,
    }


def playbooks_using(path: Path, channels: Iterable[str]) -> list[str]:
    """The playbooks of the file at ``path`` (read as the worker reads it) that can use any of ``channels``.

    ``ValueError`` when the file cannot be read or is invalid: the email sender checks its templates
    against the playbooks it will be asked to send.
    """
    try:
        rules = load_rules(path)
    except PlaybookFileError as error:
        raise ValueError(f"{error} (the email sender reads FORETHOUGHT_PLAYBOOKS_FILE to check that every "
                         "playbook that can send e-mail has its templates)") from None
    wanted = set(channels)
    return [p.name for p in rules.playbooks if wanted & set(p.channels)]


class Renderer:
    """A jinja2 environment over the override folder (if any), then the packaged templates."""

    def __init__(self, templates_dir: Path | None = None, warn_fallback: bool = True) -> None:
        folders = [templates_dir, PACKAGE_TEMPLATES] if templates_dir else [PACKAGE_TEMPLATES]
        self.searched = folders
        self.env = Environment(
            loader=ChoiceLoader([FileSystemLoader(str(f)) for f in folders]),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            keep_trailing_newline=True,
        )
        self.warn_fallback = warn_fallback  # log ``template_missing`` once per playbook that uses default/
        self.fallbacks_logged: set[str] = set()

    def check(self, email_playbooks: Iterable[str] = ()) -> None:
        """Fail fast (``ValueError`` naming every problem) before anything is sent.

        The ``default/`` parts must load; every playbook of ``email_playbooks`` needs its own
        subject, text and HTML; every template found must parse and use only :data:`VARIABLES`.
        """
        problems = [self._problem(f"default/{part}", required=True) for part in (*PARTS, MESSAGE)]
        for playbook in sorted(set(email_playbooks)):
            if not _SAFE_NAME.match(playbook):
                problems.append(f"playbook {playbook!r} cannot name a template folder")
                continue
            problems += [self._problem(f"{playbook}/{part}", required=True) for part in PARTS]
        problems += [self._problem(name) for name in self.env.list_templates(extensions=("txt", "html"))]
        found = sorted({p for p in problems if p})
        if found:
            raise ValueError(f"email templates unusable (looked in {', '.join(str(s) for s in self.searched)}): "
                             + "; ".join(found))

    def _problem(self, name: str, required: bool = False) -> str | None:
        """Why template ``name`` cannot be used (missing when ``required``, unparsable, unknown variables)."""
        try:
            source = self.env.loader.get_source(self.env, name)[0]  # type: ignore[union-attr]
            unknown = sorted(meta.find_undeclared_variables(self.env.parse(source)) - VARIABLES)
        except TemplateNotFound:
            return f"{name} is missing" if required else None
        except TemplateError as exc:
            return f"{name} unusable ({exc!r})"
        if unknown:
            return f"{name} uses unknown variable(s) {', '.join(unknown)} (available: {', '.join(sorted(VARIABLES))})"
        if _REASON_TEXT.search(source):
            return f"{name} prints a reason's text, which is for the team: templates get reasons as data only"
        return None

    def render(self, trigger: Trigger, customer: Customer | None = None) -> RenderedEmail:
        """Subject, text and HTML; each part falls back on ``default/`` (customer-safe), with a warning."""
        values = variables(trigger, customer)
        rendered, used = [], []
        for part in PARTS:
            template = self.env.select_template(self._candidates(trigger.playbook, part))
            rendered.append(template.render(values))
            used.append((template.name or part).split("/")[0])
        self._warn_fallback(trigger.playbook, used)
        subject = " ".join(rendered[0].split())  # one line: no header injection via context or names
        return RenderedEmail(subject, rendered[1].strip() + "\n", rendered[2], used[1])

    def render_message(self, trigger: Trigger, customer: Customer | None = None) -> RenderedMessage:
        """The short message for ``in_app``, ``sms`` or ``push``: ``<playbook>/message.txt``, on one line."""
        template = self.env.select_template(self._candidates(trigger.playbook, MESSAGE))
        folder = (template.name or MESSAGE).split("/")[0]
        self._warn_fallback(trigger.playbook, [folder])
        return RenderedMessage(" ".join(template.render(variables(trigger, customer)).split()), folder)

    def _warn_fallback(self, playbook: str, used: list[str]) -> None:
        if self.warn_fallback and "default" in used and playbook not in self.fallbacks_logged:
            self.fallbacks_logged.add(playbook)
            log.warning("template_missing", playbook=playbook, parts_from_default=used.count("default"),
                        effect="the generic customer-safe default wording is sent; add the playbook's own "
                               "templates (docs/email-templates.md)")

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
