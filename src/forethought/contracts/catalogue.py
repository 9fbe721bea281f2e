"""The topic catalogue (``streams/topics.yaml``): names, partitions, retention, key, schema and the
record kinds each topic carries. A wire contract shared by the worker, the senders and the producer SDK;
applying it to a broker is :mod:`forethought.ops.topics`.

>>> catalogue = load_catalogue()
>>> catalogue.by_name["customers.profile"].config()
{'cleanup.policy': 'compact'}
>>> catalogue.by_name["events.errors"].config()["retention.ms"]
'604800000'
>>> catalogue.partitions == catalogue.by_name["events.usage"].partitions
True
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

REPO_ROOT = Path(__file__).resolve().parents[3]
REPO_TOPICS_FILE = REPO_ROOT / "streams" / "topics.yaml"
# Package data (pyproject's [tool.setuptools.package-data]): in the repository a symlink to
# streams/topics.yaml, in a built wheel a copy of it. So an installed client finds its catalogue.
PACKAGED_TOPICS_FILE = Path(__file__).resolve().parent / "topics.yaml"
INBOUND = ("events.clickstream", "events.errors", "events.usage")
BEHAVIOUR_INPUTS = (*INBOUND, "customers.profile", "engagement.outcomes", "forethought.rekeyed")
STRICT_ABLE = BEHAVIOUR_INPUTS[:-1]  # the re-key topic carries records already accepted by a tolerant topic


def default_topics_file() -> Path:
    """The catalogue's file: ``streams/topics.yaml`` in a checkout, the packaged copy once installed.

    >>> default_topics_file().read_bytes() == PACKAGED_TOPICS_FILE.read_bytes()
    True
    """
    return REPO_TOPICS_FILE if REPO_TOPICS_FILE.is_file() else PACKAGED_TOPICS_FILE


DEFAULT_TOPICS_FILE = default_topics_file()
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class TopicSpec(BaseModel):
    """One topic of the catalogue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9._-]+$")
    partitions: int = Field(ge=1, le=1024)
    retention: str
    key: str
    value_schema: str
    kinds: list[str] = Field(min_length=1)
    description: str
    strict: bool = Field(False, description="Reject (dead-letter as unknown_field) a record with a field the"
                         " contract does not know, instead of ignoring and counting it. Inputs only.")

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        if value != "compact" and not re.fullmatch(r"\d+(ms|s|m|h|d)", value):
            raise ValueError(f"expected 'compact' or a duration like 7d, 12h, 30m; got {value!r}")
        return value

    def config(self) -> dict[str, str]:
        """Kafka topic-level configuration for this spec."""
        if self.retention == "compact":
            return {"cleanup.policy": "compact"}
        number, unit = re.fullmatch(r"(\d+)(ms|s|m|h|d)", self.retention).groups()  # type: ignore[union-attr]
        return {"retention.ms": str(int(number) * _UNITS[unit])}


class Catalogue(BaseModel):
    """All topics; the behaviour agent's inputs must share one partition count."""

    model_config = ConfigDict(frozen=True)

    topics: list[TopicSpec]

    @model_validator(mode="after")
    def _co_partitioned(self) -> Catalogue:
        names = {t.name for t in self.topics}
        missing = [n for n in BEHAVIOUR_INPUTS if n not in names]
        if missing:
            raise ValueError(f"catalogue lacks required topics {missing}")
        loose = [t.name for t in self.topics if t.strict and t.name not in STRICT_ABLE]
        if loose:
            raise ValueError(f"strict applies to the topics the worker reads from producers {list(STRICT_ABLE)},"
                             f" not {loose}")
        counts = {t.name: t.partitions for t in self.topics if t.name in BEHAVIOUR_INPUTS}
        if len(set(counts.values())) != 1:
            raise ValueError(f"behaviour inputs must share one partition count, got {counts}")
        return self

    @property
    def by_name(self) -> dict[str, TopicSpec]:
        return {t.name: t for t in self.topics}

    @property
    def strict_topics(self) -> frozenset[str]:
        """The topics marked ``strict: true`` (catalogue names, without a deployment's prefix)."""
        return frozenset(t.name for t in self.topics if t.strict)

    @property
    def partitions(self) -> int:
        """The partition count shared by the behaviour agent's inputs (and its table)."""
        return self.by_name[INBOUND[0]].partitions


class CatalogueError(ValueError):
    """The catalogue file is unreadable or invalid; the message names file and field."""


def load_catalogue(path: Path = DEFAULT_TOPICS_FILE) -> Catalogue:
    """Read and validate the catalogue, failing with the file and field in the message."""
    try:
        return Catalogue.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueError(f"{path}: {exc}") from exc
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise CatalogueError(f"{path}: {fields}") from exc
