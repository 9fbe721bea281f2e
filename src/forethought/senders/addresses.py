"""The email sender's address book: each customer's ``email`` (and name) from the compacted profile topic.

The worker's triggers carry no address (they travel through topics many readers can see); the
email sender reads ``customers.profile`` itself and keeps only ``customer_id → email`` of each
customer's latest profile, plus the name to greet them by (``attributes.first_name``, else
``attributes.name``, when the profile has one). It reads the topic to its end before every batch of triggers: a trigger
is published after the worker has read the profile it acted on, so that profile is already in the
topic and is seen before the trigger is sent.

>>> book = AddressBook()
>>> book.apply(b'{"type":"profile","customer_id":"c1","updated_at":"2026-11-22T10:00:00Z","email":"a@x.example"}')
>>> book.apply(b'{"type":"profile","customer_id":"c1","updated_at":"2026-11-22T09:00:00Z","email":"old@x.example"}')
>>> book.address_of("c1"), book.address_of("c2")
('a@x.example', None)
>>> book.apply(b'{"type":"profile","customer_id":"c1","updated_at":"2026-11-22T11:00:00Z"}')  # address removed
>>> book.address_of("c1") is None
True
>>> book.apply(b'{"type":"profile","customer_id":"c3","updated_at":"2026-11-22T11:00:00Z",'
...            b'"email":"ana@x.example","attributes":{"first_name":"Ana"}}')
>>> book.name_of("c3"), book.name_of("c1")
('Ana', None)
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from forethought.contracts.records import Profile
from forethought.ops.logs import get_logger
from forethought.senders.mirror import TopicMirror

log = get_logger("senders.addresses")


NAME_ATTRIBUTES = ("first_name", "name")  # profile attributes a greeting may use, first found wins
MAX_NAME_CHARS = 64


class AddressBook:
    """``customer_id → (email or None, updated_at, name or None)`` of the latest profile seen per customer."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[str | None, float, str | None]] = {}
        self.unreadable = 0

    @classmethod
    def of(cls, addresses: Mapping[str, str], names: Mapping[str, str] | None = None) -> AddressBook:
        """A fixed book (tests, tools): customer id → address (and, optionally, customer id → name)."""
        book, names = cls(), names or {}
        book.entries = {customer: (address, 0.0, names.get(customer)) for customer, address in addresses.items()}
        return book

    def address_of(self, customer_id: str) -> str | None:
        """The address in the customer's latest profile, as written there (the sender checks it)."""
        found = self.entries.get(customer_id)
        return None if found is None else found[0]

    def name_of(self, customer_id: str) -> str | None:
        """The name to greet the customer by, from their latest profile; None when it has none."""
        found = self.entries.get(customer_id)
        return None if found is None else found[2]

    def __len__(self) -> int:
        return sum(1 for address, _, _ in self.entries.values() if address is not None)

    def apply(self, value: bytes | None, key: bytes | None = None) -> None:
        """One record of the profile topic: a profile (the newest wins) or a tombstone (forget the key)."""
        if value is None:
            if key is not None:
                self.entries.pop(key.decode(errors="replace"), None)
            return
        try:
            profile = Profile.model_validate_json(value)
        except (ValidationError, ValueError):
            self.unreadable += 1  # the worker dead-letters it; nothing of it is logged here
            return
        at = profile.updated_at.timestamp()
        held = self.entries.get(profile.customer_id)
        if held is None or at >= held[1]:
            self.entries[profile.customer_id] = (profile.email, at, _greeting_name(profile.attributes))


def _greeting_name(attributes: Mapping[str, object]) -> str | None:
    """The first non-blank text of :data:`NAME_ATTRIBUTES`, on one line and at most 64 characters."""
    for key in NAME_ATTRIBUTES:
        value = attributes.get(key)
        if isinstance(value, str) and (name := " ".join(value.split())[:MAX_NAME_CHARS]):
            return name
    return None


class KafkaAddressBook(AddressBook):
    """An :class:`AddressBook` mirroring a profile topic: :meth:`load` once, :meth:`catch_up` per batch."""

    def __init__(self, bootstrap: str, topic: str, **client: object) -> None:
        super().__init__()
        self.topic = topic
        self.mirror = TopicMirror(bootstrap, topic, lambda key, value: self.apply(value, key), **client)

    async def load(self) -> int:
        """Read the whole topic; returns how many customers have an address."""
        read = await self.mirror.open("profile")
        log.info("address book loaded", topic=self.topic, records=read, addresses=len(self))
        return len(self)

    async def catch_up(self) -> int:
        """Read to the topic's current end; returns the records read."""
        return await self.mirror.catch_up()

    async def close(self) -> None:
        await self.mirror.close()
