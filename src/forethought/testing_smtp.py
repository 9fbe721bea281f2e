"""A real SMTP server for tests (aiosmtpd): plain, STARTTLS or implicit TLS, with or without a login.

The certificate is self-signed and made at test time with ``openssl`` (for ``127.0.0.1`` and
``localhost``); the sender trusts it through ``FORETHOUGHT_SENDER__SMTP_CA_FILE``.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from forethought.ops.process import free_port


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """``(cert.pem, key.pem)`` valid for 127.0.0.1 and localhost for one day."""
    if shutil.which("openssl") is None:
        raise RuntimeError("openssl is needed to make a test certificate")
    cert, key = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@dataclass
class Mailbox:
    """An aiosmtpd handler: keeps messages with their envelope recipients, and the logins tried."""

    username: str = "forethought"
    password: str = "smtp-pass-0f3a"
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (mechanism, over TLS)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.lower().endswith("@nobody.example"):
            return f"550 5.1.1 <{address}>: no such mailbox"  # quotes the address back, as servers do
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = BytesParser(policy=policy.default).parsebytes(envelope.content)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        over_tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        self.logins.append((mechanism, over_tls))
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (
            self.username, self.password)
        return AuthResult(success=ok, handled=False)


def smtp_server(mailbox: Mailbox, mode: str, cert: tuple[Path, Path] | None = None,
                login: bool = False) -> Controller:
    """A started server: ``mode`` is ``plain``, ``starttls`` or ``tls``; stop it with ``.stop()``."""
    kwargs: dict[str, Any] = {}
    if mode != "plain":
        assert cert is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert[0]), str(cert[1]))
        kwargs["ssl_context" if mode == "tls" else "tls_context"] = context
        if mode == "starttls":
            kwargs["require_starttls"] = True
    if login:
        # plain: a server that would take a password in clear (the case the sender must never use);
        # tls: aiosmtpd does not know an implicit-TLS session is encrypted, so it must not ask for STARTTLS.
        kwargs.update(authenticator=mailbox.authenticate, auth_required=True, auth_require_tls=mode == "starttls")
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), server_hostname="localhost", **kwargs)
    controller.start()
    return controller
