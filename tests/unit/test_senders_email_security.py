"""The email channel's recipient and TLS rules against a real SMTP server (aiosmtpd), no Kafka.

The recipient is only ever the profile's single, checked address; a login only ever happens over
TLS; outcome details name the recipient by a digest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from forethought.contracts.records import Trigger
from forethought.contracts.schemas import EXAMPLES
from forethought.senders.addresses import AddressBook
from forethought.senders.channels import EmailChannel
from forethought.senders.recipients import recipient_ref
from forethought.senders.retry import HostRateLimiter
from forethought.senders.settings import SenderSettings
from forethought.testing_smtp import Mailbox, self_signed_cert, smtp_server

HOSTILE_ID = "attacker@evil.example, cust-42"
TRIGGER = Trigger.model_validate({**EXAMPLES["trigger"], "customer_id": HOSTILE_ID})
BODY = TRIGGER.model_dump_json().encode()
REAL = "Real.Person@example.org"
FAST = {"backoff_base_seconds": 0.01, "backoff_max_seconds": 0.05, "max_attempts": 2}
# aiosmtpd warns about its own plain server that takes a login: the case the sender must never use.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


async def no_wait(seconds: float) -> None:
    return None


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


def channel(port: int, book: dict[str, str], **settings: Any) -> EmailChannel:
    config = SenderSettings(smtp_host="127.0.0.1", smtp_port=port, smtp_timeout_seconds=5, **{**FAST, **settings})
    return EmailChannel(config, HostRateLimiter(1000, 1000), AddressBook.of(book), sleep=no_wait)


@pytest.fixture
def server(request: pytest.FixtureRequest, mailbox: Mailbox, cert: tuple[Path, Path]) -> Iterator[int]:
    mode, login = request.param
    controller = smtp_server(mailbox, mode, cert, login=login)
    try:
        yield controller.port
    finally:
        controller.stop()


@pytest.mark.parametrize("server", [("starttls", True)], indirect=True)
async def test_starttls_login_and_the_mail_goes_to_the_profile_address_only(
    server: int, mailbox: Mailbox, cert: tuple[Path, Path],
) -> None:
    mail = channel(server, {HOSTILE_ID: REAL}, smtp_starttls=True, smtp_ca_file=cert[0],
                   smtp_username=mailbox.username, smtp_password=mailbox.password)
    result = await mail.deliver(TRIGGER, BODY)
    assert result.status == "delivered", result.detail
    ((envelope, message),) = mailbox.messages
    assert envelope == [REAL], "exactly the profile's address: nothing built from the customer id"
    assert message["To"] == REAL and message["Bcc"] is None and message["Cc"] is None
    assert [over_tls for _, over_tls in mailbox.logins] == [True]
    assert recipient_ref(REAL) in result.detail
    assert "example.org" not in result.detail.lower() and "evil.example" not in result.detail


@pytest.mark.parametrize("server", [("tls", True)], indirect=True)
async def test_implicit_tls_login_works_too(server: int, mailbox: Mailbox, cert: tuple[Path, Path]) -> None:
    mail = channel(server, {HOSTILE_ID: REAL}, smtp_tls=True, smtp_ca_file=cert[0],
                   smtp_username=mailbox.username, smtp_password=mailbox.password)
    result = await mail.deliver(TRIGGER, BODY)
    assert result.status == "delivered", result.detail
    assert [envelope for envelope, _ in mailbox.messages] == [[REAL]] and mailbox.logins[0][1] is True


@pytest.mark.parametrize("server", [("starttls", False)], indirect=True)
async def test_an_untrusted_certificate_is_not_talked_to(server: int, mailbox: Mailbox) -> None:
    result = await channel(server, {HOSTILE_ID: REAL}, smtp_starttls=True).deliver(TRIGGER, BODY)
    assert result.status == "failed" and "TLS" in result.detail and mailbox.messages == []


@pytest.mark.parametrize("server", [("plain", True)], indirect=True)
async def test_no_login_when_the_server_does_not_offer_starttls(server: int, mailbox: Mailbox) -> None:
    """The server would take the password in clear; the sender never offers it."""
    mail = channel(server, {HOSTILE_ID: REAL}, smtp_starttls=True,
                   smtp_username=mailbox.username, smtp_password=mailbox.password)
    result = await mail.deliver(TRIGGER, BODY)
    assert result.status == "failed" and "STARTTLS" in result.detail.upper()
    assert mailbox.logins == [] and mailbox.messages == []
    assert mailbox.password not in result.detail


HOSTILE_ADDRESSES = {
    "a comma list": ("victim@example.org, attacker@evil.example", "','"),
    "two addresses": ("victim@example.org;attacker@evil.example", "';'"),
    "a display name": ("Victim <victim@example.org>", "'<'"),
    "a header injection": ("victim@example.org\r\nBcc: attacker@evil.example", "line break"),
    "a bare LF": ("victim@example.org\nBcc: attacker@evil.example", "line break"),
    "no at sign": ("victim.example.org", "no '@'"),
    "two at signs": ("victim@evil.example@example.org", "2 '@'"),
    "a quoted local part": ('"victim attacker"@example.org', "'\"'"),
    "a comment": ("victim@example.org(attacker@evil.example)", "'('"),
    "a space": ("victim @example.org", "space"),
    "empty": ("", "empty"),
}


@pytest.mark.parametrize("server", [("plain", False)], indirect=True)
@pytest.mark.parametrize("case", sorted(HOSTILE_ADDRESSES))
async def test_a_hostile_profile_address_is_refused_and_nothing_is_sent(
    server: int, mailbox: Mailbox, case: str,
) -> None:
    address, why = HOSTILE_ADDRESSES[case]
    result = await channel(server, {HOSTILE_ID: address}).deliver(TRIGGER, BODY)
    assert result.status == "failed" and result.attempts == 0
    assert "refused" in result.detail and why in result.detail and "not sent" in result.detail
    assert "example.org" not in result.detail and "evil.example" not in result.detail
    assert mailbox.messages == []


@pytest.mark.parametrize("server", [("plain", False)], indirect=True)
async def test_no_address_in_the_profile_means_no_mail(server: int, mailbox: Mailbox) -> None:
    result = await channel(server, {"someone-else": REAL}).deliver(TRIGGER, BODY)
    assert (result.status, result.attempts) == ("failed", 0) and "no e-mail address" in result.detail
    assert mailbox.messages == []


@pytest.mark.parametrize("server", [("plain", False)], indirect=True)
async def test_a_server_quoting_the_address_back_is_scrubbed_and_a_key_makes_it_an_hmac(
    server: int, mailbox: Mailbox,
) -> None:
    gone = "Gone.Person@Nobody.example"
    result = await channel(server, {HOSTILE_ID: gone}, recipient_hash_key="corr-key").deliver(TRIGGER, BODY)
    assert result.status == "bounced" and "550" in result.detail
    assert "nobody.example" not in result.detail.lower()
    assert recipient_ref(gone, b"corr-key") in result.detail and recipient_ref(gone) not in result.detail


def test_a_password_without_tls_is_refused_by_the_settings() -> None:
    for credentials in ({"smtp_password": "pw-in-clear"}, {"smtp_username": "u", "smtp_password": "pw-in-clear"}):
        with pytest.raises(ValidationError, match="SMTP login needs TLS") as refused:
            SenderSettings(**credentials)  # type: ignore[arg-type]
        assert "pw-in-clear" not in str(refused.value)
    assert SenderSettings(smtp_username="u", smtp_password="pw", smtp_starttls=True).smtp_starttls
    assert SenderSettings(smtp_username="u", smtp_password="pw", smtp_tls=True, smtp_port=465).smtp_tls


def test_the_email_sender_will_not_start_with_a_password_and_no_tls() -> None:
    env = {**os.environ, "FORETHOUGHT_SENDER__SMTP_USERNAME": "u", "FORETHOUGHT_SENDER__SMTP_PASSWORD": "pw-in-clear"}
    done = subprocess.run([sys.executable, "-m", "forethought.cli", "senders", "run", "--channel", "email"],
                          env=env, capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "SMTP login needs TLS" in " ".join(output.split()) and "pw-in-clear" not in output


def test_the_old_recipient_template_setting_is_refused_with_its_replacement_named() -> None:
    with pytest.raises(ValidationError, match="only to the address in the customer's profile"):
        SenderSettings(email_to="{customer_id}@customers.example")  # type: ignore[call-arg]
