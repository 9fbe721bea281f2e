"""A ~900 KB invalid record on the triggers topic cannot stop a sender (real broker, real HTTP receiver).

Its whole body in base64 would be > 1 MiB: the producer's MessageSizeTooLargeError, no commit, and
the same record again at every restart. Dead-lettered bounded (a prefix, its size and sha256), the
sender goes on to the next trigger, and a restart — in the same group, or in one that reads the
topic from the start, as a crash before the commit would — neither crashes nor sends twice.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from test_senders import SECRET, Receiver, committed, eventually, make_trigger, metric_is, produce, running, settings_for
from worker_kit import Deployment

from forethought.ops.process import free_port
from forethought.senders.records import SenderDeadLetter
from forethought.senders.settings import SenderAppSettings


@pytest.fixture
async def deployment(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Deployment:
    return await Deployment.create(kafka_bootstrap, topic_prefix, tmp_path)


async def letters(deployment: Deployment) -> list[SenderDeadLetter]:
    records = await deployment.read_all("senders.deadletter")
    for record in records:
        assert len(record.value) <= SenderAppSettings().deadletter_max_bytes
    return [SenderDeadLetter.model_validate_json(r.value) for r in records]


async def delivered(settings: SenderAppSettings, receiver: Receiver, trigger: object) -> None:
    async with running(settings, "webhook"):
        await eventually(lambda: receiver.posts(trigger),  # type: ignore[arg-type]
                         60, "the valid trigger after the huge record was delivered")
        await eventually(lambda: metric_is(settings.sender.web_port, "forethought_sender_sends_total", 1,
                                           channel="webhook", status="delivered"), what="its outcome published")


async def test_a_900_kb_invalid_trigger_is_dead_lettered_bounded_and_the_sender_goes_on(
    deployment: Deployment,
) -> None:
    huge = b'{"type": "trigger", "customer_id": "big", "junk": "' + "€".encode() * 300_000 + b'"}'
    first, second = make_trigger("wh-after-1"), make_trigger("wh-after-2")
    await deployment.produce("engagement.triggers", [(b"big-1", huge)])
    await produce(deployment, first)
    async with Receiver() as receiver:
        settings = settings_for(deployment, webhook_url=receiver.url, webhook_secret=SECRET)
        await delivered(settings, receiver, first)
        (letter,) = await letters(deployment)
        assert letter.truncated and letter.trigger is None and "not a valid trigger" in letter.error
        kept = base64.b64decode(letter.value_b64 or "")
        assert huge.startswith(kept) and len(kept) > 100_000
        assert (letter.original_value_bytes, letter.original_value_sha256) == (len(huge), hashlib.sha256(huge).hexdigest())
        assert (letter.source_topic, letter.source_offset) == (deployment.topic("engagement.triggers"), 0)
        assert await committed(deployment, settings.consumer_group(["webhook"])) == 2, "both records committed"

        # A restart in the same group starts after them and delivers the next trigger.
        await produce(deployment, second)
        again = settings_for(deployment, webhook_url=receiver.url, webhook_secret=SECRET)
        await delivered(again, receiver, second)
        assert len(await letters(deployment)) == 1, "the huge record was not read again"

        # A group reading from the start meets the huge record again: bounded again, nothing sent twice.
        fresh = again.model_copy(update={"app_id": again.app_id + "-fresh",
                                         "sender": again.sender.model_copy(update={"web_port": free_port()})})
        async with running(fresh, "webhook"):
            await eventually(lambda: _count(deployment, 2), 60, "the huge record dead-lettered again")
        assert len(receiver.posts(first)) == 1 and len(receiver.posts(second)) == 1, "the ledger dedupes"
    assert [x.source_offset for x in await letters(deployment)] == [0, 0]


async def _count(deployment: Deployment, n: int) -> bool:
    return len(await letters(deployment)) == n
