"""The undisturbed run: the workload replayed in-process through the core's runtime, as ``forethought
replay`` does (:class:`~forethought.replay.runner.Replayer`: one ``PartitionRuntime`` per partition, the
worker's settings, playbooks and partition count), giving the triggers and the final customer states a
worker must end with whatever happened to it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from forethought.contracts.records import Trigger
from forethought.core.state import CustomerState
from forethought.ops.playbooks import load_rules
from forethought.ops.settings import Settings
from forethought.ops.topics import load_catalogue
from forethought.replay.reader import Line
from forethought.replay.runner import Replayer

from .workload import Workload


@dataclass(frozen=True, slots=True)
class Expected:
    """What the undisturbed run gives: live triggers by id and each customer's final state."""

    triggers: dict[str, Trigger]
    states: dict[str, CustomerState]


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``env`` added for the block (settings are read from the environment)."""
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def worker_settings(env: Mapping[str, str]) -> Settings:
    """The settings a worker started with ``env`` reads."""
    with environment(env):
        return Settings()


def undisturbed(workload: Workload, env: Mapping[str, str]) -> Expected:
    """Replay ``workload`` with the settings of a worker started with ``env``."""
    settings = worker_settings(env)
    fired: list[Trigger] = []
    replayer = Replayer(settings.engine, on_trigger=fired.append, rules=load_rules(settings.playbooks_file),
                        partitions=load_catalogue(settings.topics_file).partitions)
    for n, record in enumerate(workload.records):
        replayer.feed(Line(record.at, 0, n, record.value))
    replayer.finish()
    assert replayer.counts.valid == len(workload.records), f"the workload has invalid records: {replayer.counts}"
    return Expected({t.trigger_id: t for t in fired}, dict(replayer.states))
