"""Who an e-mail goes to: one strictly checked address from the customer's profile, never logged.

The recipient is the ``email`` field of the customer's latest profile (see
:mod:`forethought.senders.addresses`), never anything derived from ``customer_id``. It must be one
plain ``local@domain`` address: no display name, no list, no comment, no quoting, no line break.

>>> check_address("Ana.Lima+news@Mail.Example.org")
'Ana.Lima+news@Mail.Example.org'
>>> for hostile in ["attacker@evil.example, cust-42@x.example", "a@x.example\\r\\nBcc: b@y.example",
...                 "Boss <boss@x.example>", "no-at-sign", "a@b@c.example", '"a b"@x.example', "a@localhost"]:
...     try:
...         check_address(hostile)
...     except RecipientError as refused:
...         print(refused)
contains ',' (a list or display-name syntax): only one plain address is accepted
contains a line break or a control character
contains '<' (a list or display-name syntax): only one plain address is accepted
has no '@'
has 2 '@' (exactly one is allowed)
contains '"' (a list or display-name syntax): only one plain address is accepted
has a domain without a dot (a public domain name is expected)

Outcomes and logs name a recipient by a digest, so deliveries to one address can be correlated
without publishing it (HMAC-SHA256 when ``FORETHOUGHT_SENDER__RECIPIENT_HASH_KEY`` is set):

>>> recipient_ref("Ana@Example.org") == recipient_ref("ana@example.org")
True
>>> recipient_ref("ana@example.org")[:15], recipient_ref("ana@example.org", b"k")[:12]
('sha256:86b9260a', 'hmac-sha256:')
>>> scrub("550 <ANA@example.org> unknown", "ana@example.org", "sha256:1d1a")
'550 <sha256:1d1a> unknown'
"""

from __future__ import annotations

import hashlib
import hmac
import re
from email.headerregistry import Address
from email.utils import parseaddr

MAX_ADDRESS = 254  # RFC 5321's path limit minus the angle brackets
MAX_LOCAL = 64
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"^{_ATEXT}(\.{_ATEXT})*$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_SPECIALS = ',;:<>()[]"\\'


class RecipientError(ValueError):
    """An address that will not be used; the message says why without repeating the address."""


def check_address(text: str) -> str:
    """``text`` when it is exactly one plain ASCII ``local@domain`` address, else :class:`RecipientError`."""
    if not text:
        raise RecipientError("is empty")
    if len(text) > MAX_ADDRESS:
        raise RecipientError(f"is longer than {MAX_ADDRESS} characters")
    if any(ord(c) < 32 or ord(c) == 127 or c in "\x85\u2028\u2029" for c in text):
        raise RecipientError("contains a line break or a control character")
    for special in _SPECIALS:
        if special in text:
            raise RecipientError(f"contains {special!r} (a list or display-name syntax): only one plain address "
                                 "is accepted")
    if any(c.isspace() for c in text):
        raise RecipientError("contains a space")
    if not text.isascii():
        raise RecipientError("has non-ASCII characters (internationalised addresses are not supported)")
    if text.count("@") != 1:
        raise RecipientError("has no '@'" if "@" not in text else f"has {text.count('@')} '@' (exactly one is allowed)")
    local, domain = text.split("@")
    if not local or len(local) > MAX_LOCAL or not _LOCAL.match(local):
        raise RecipientError("has an empty, over-long or malformed part before the '@'")
    labels = domain.split(".")
    if len(labels) < 2:
        raise RecipientError("has a domain without a dot (a public domain name is expected)")
    if not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise RecipientError("has a malformed domain")
    return _agreed_by_stdlib(text)


def _agreed_by_stdlib(text: str) -> str:
    """The standard library's parsers must read the same single address back (defence in depth)."""
    name, parsed = parseaddr(text, strict=True) if _strict_parseaddr() else parseaddr(text)
    try:
        spec = Address(addr_spec=text).addr_spec
    except (ValueError, IndexError):  # email.errors.HeaderParseError is a ValueError
        spec = ""
    if name or parsed != text or spec != text:
        raise RecipientError("is not read back as the same single address by the e-mail parser")
    return text


def _strict_parseaddr() -> bool:
    """Whether this Python's ``parseaddr`` has ``strict`` (3.11.10+, 3.12.6+: CVE-2023-27043)."""
    try:
        parseaddr("a@b.example", strict=True)
    except TypeError:
        return False
    return True


def recipient_ref(address: str, key: bytes = b"") -> str:
    """A stable digest of the lower-cased address: ``sha256:<hex>``, or ``hmac-sha256:<hex>`` with ``key``."""
    data = address.lower().encode()
    if key:
        return "hmac-sha256:" + hmac.new(key, data, hashlib.sha256).hexdigest()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def scrub(text: str, address: str, ref: str) -> str:
    """``text`` (an SMTP server's answer, say) with every spelling of ``address`` replaced by ``ref``."""
    return re.sub(re.escape(address), ref, text, flags=re.IGNORECASE)
