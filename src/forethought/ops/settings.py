"""Runtime settings: one frozen model, read from ``FORETHOUGHT_*`` environment variables and an optional
TOML config file (ops/settings_sources.py; docs/configuration.md).

Bad configuration fails fast at start-up with a message naming the field, and so does an unknown one
(``extra="forbid"``, the engine's section included)::

    >>> Settings(web_port=0)
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for Settings
    web_port
    ...
    >>> Settings(engine={"silence_zz": 3})
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for Settings
    engine
      Value error, unknown engine setting silence_zz (did you mean silence_z?) ...

Nested engine settings use ``__``: ``FORETHOUGHT_ENGINE__BURST_MIN_ERRORS=8``.
Kafka TLS/SASL and topic replication fields come from :class:`~forethought.ops.kafka_security.KafkaSecurity`
(``FORETHOUGHT_KAFKA_SECURITY_PROTOCOL``, ``FORETHOUGHT_KAFKA_SASL_PASSWORD``...; docs/security/kafka.md).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from forethought.contracts.catalogue import DEFAULT_TOPICS_FILE, REPO_ROOT
from forethought.contracts.decode import (
    DEFAULT_DEADLETTER_MAX_BYTES,
    DEFAULT_MAX_BYTES,
    MIN_DEADLETTER_MAX_BYTES,
    MaxEventBytes,
)
from forethought.core.config import EngineConfig, setting_types
from forethought.ops.compression import Compression
from forethought.ops.kafka_security import KafkaSecurity
from forethought.ops.settings_sources import StrictFileSource, engine_keys, unknown_section_key

DEFAULT_PLAYBOOKS_FILE = REPO_ROOT / "streams" / "playbooks.yaml"
MIN_TOKEN_CHARS = 16


def engine_config(value: Any) -> EngineConfig:
    """The engine's settings from ``FORETHOUGHT_ENGINE__<NAME>`` variables (text, coerced to each
    setting's declared type) or a mapping; an unknown name is refused with the closest known one.

    >>> engine_config({"burst_z": "7", "decline_enabled": "true"}).burst_z
    7.0
    >>> engine_config({"silence_zz": "3"})
    Traceback (most recent call last):
    ...
    ValueError: unknown engine setting 'silence_zz' (did you mean 'silence_z'?)
    """
    if isinstance(value, EngineConfig):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"expected engine settings by name, got {type(value).__name__}")
    types = setting_types()
    typed = {name: _coerce(types[name], raw) if name in types else raw for name, raw in value.items()}
    return EngineConfig(**{name.lower(): v for name, v in typed.items()})


def _coerce(kind: Any, raw: Any) -> Any:
    """``raw`` (text from the environment or a file) as the setting's declared type ``kind``."""
    return TypeAdapter(kind).validate_python(raw, strict=False)


class Settings(BaseSettings, KafkaSecurity):
    """Everything the worker, the CLI and the demo need to know about their surroundings."""

    model_config = SettingsConfigDict(
        env_prefix="FORETHOUGHT_", env_nested_delimiter="__", frozen=True, extra="forbid",
        hide_input_in_errors=True,  # a rejected secret (token, password) must not be echoed into logs
    )

    kafka_bootstrap: str = Field("127.0.0.1:9092", min_length=3)
    kafka_wait_seconds: float = Field(
        5.0, ge=0, le=3600, description="How long a command waits at start for a bootstrap server to answer before"
                                        " it gives up with one line naming the address.")
    # Codec of every batch the project produces (worker, senders, SDK, simulator); any codec is read.
    kafka_compression: Compression = "none"
    kafka_version: str = Field("3.9.1", pattern=r"^\d+\.\d+\.\d+$")
    app_id: str = Field("forethought", pattern=r"^[A-Za-z0-9._-]+$")
    topic_prefix: str = Field("", pattern=r"^[A-Za-z0-9._-]*$")
    topics_file: Path = DEFAULT_TOPICS_FILE
    playbooks_file: Path = DEFAULT_PLAYBOOKS_FILE
    playbook_reload_seconds: float = Field(5.0, gt=0, le=3600)
    web_host: str = "127.0.0.1"
    web_port: int = Field(6066, ge=1, le=65535)
    web_advertised_url: str | None = Field(
        None, pattern=r"^https?://[^/\s]+/?$",
        description="How the group's other workers reach this one's web server (/customers/{id} asked of any"
                    " worker is forwarded to the one holding the customer); unset: http://WEB_HOST:WEB_PORT, with"
                    " this host's address when WEB_HOST is a wildcard (0.0.0.0, ::).")
    web_token: SecretStr | None = Field(
        None, description="Bearer token for the views that show customer data (/customers); unset: open.")
    data_dir: Path = Path("var/worker")  # the worker's local state (RocksDB): keep it across restarts
    state_store: Literal["rocksdb", "memory"] = Field(
        "rocksdb", description="Where the worker keeps its tables: rocksdb (on FORETHOUGHT_DATA_DIR; a restart"
                               " replays only the changelog's tail) or memory (the whole changelog at every start).")
    rocksdb_cache_mb: int = Field(16, ge=1, le=4096)  # block cache of each table partition's RocksDB database
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    max_event_bytes: MaxEventBytes = DEFAULT_MAX_BYTES
    deadletter_max_bytes: int = Field(
        DEFAULT_DEADLETTER_MAX_BYTES, ge=MIN_DEADLETTER_MAX_BYTES, le=900_000,
        description="Largest dead letter (UTF-8 JSON bytes) the worker, replay and the senders write; a larger"
                    " original is kept as a prefix plus its size and sha256. Below the producer's 1 MB request limit.")
    batch_size: int = Field(500, ge=1, le=10_000)
    batch_within_seconds: float = Field(0.05, gt=0, le=5)
    sweep_interval_seconds: float = Field(5.0, gt=0, le=3600)
    idle_grace_seconds: float | None = Field(
        None, ge=0, description="How long input may idle before the event clock follows the wall clock (silence"
                                " noticed with no events at all); unset: twice the sweep interval, at least 2 s. The"
                                " chaos harness sets it far beyond a run so the clock follows events only.")
    max_task_idle_seconds: float = Field(
        1.0, ge=0, le=60,
        description="Longest wait for an input topic-partition with records on the broker that the worker has not"
                    " received yet, before records of the same partition number from other topics go to the engine"
                    " ahead of them (Kafka Streams' max.task.idle.ms); 0: never wait (arrival order).")
    commit_interval_seconds: float = Field(1.0, gt=0, le=60)
    # group membership: how soon a dead worker's partitions move (docs/durability.md)
    kafka_session_timeout_seconds: float = Field(
        10.0, ge=1, le=300, description="A worker that sends no heartbeat for this long is dropped from the group"
        " and its partitions move (within the broker's group.min/max.session.timeout.ms: 6-1800 s by default).")
    kafka_heartbeat_seconds: float = Field(2.0, gt=0, le=100, description="How often the worker heartbeats to its"
                                           " group coordinator; below the session timeout (a third or less).")
    kafka_group_instance_id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9._-]{1,200}$",
        description="Static group membership (KIP-345): a stable id unique in the group (a StatefulSet pod's name);"
                    " a worker restarted with the same id takes its partitions back at once, without waiting for the"
                    " session timeout. Unset: dynamic membership.")
    broker_check_seconds: float = Field(
        2.0, gt=0, le=60, description="How often the worker asks the cluster for metadata; /ready is false after two"
                                      " checks in a row without an answer, until one is answered.")
    state_flush_seconds: float | None = Field(None, gt=0, le=600)  # write-behind of state; None: commit interval
    producer_linger_ms: int = Field(5, ge=0, le=1000)  # how long the worker's producer waits to fill a batch
    state_cache_customers: int = Field(10_000, ge=100)  # live customer states in memory per partition (~4.4 KiB each)
    model_checkpoint_seconds: float = Field(0.0, ge=0, le=86_400)  # at flushes; 0: every flush (exact after a crash)
    model_signing_key: SecretStr | None = Field(None, min_length=32)  # HMAC key: sign checkpoints, load only signed
    engine: Annotated[EngineConfig, PlainValidator(engine_config), PlainSerializer(dict)] = EngineConfig()

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Code, then the environment, then the config file (both checked for unknown names)."""
        return init_settings, env_settings, StrictFileSource(settings_cls)

    @field_validator("engine", mode="before")
    @classmethod
    def _engine_keys_known(cls, value: object) -> object:
        """The engine section is a plain dataclass (which would drop unknown keys): refuse them here."""
        if isinstance(value, dict) and (unknown := unknown_section_key(value, engine_keys())):
            raise ValueError(f"unknown engine setting {unknown}")
        return value

    @model_validator(mode="after")
    def _heartbeat_below_session(self) -> Settings:
        if self.kafka_heartbeat_seconds >= self.kafka_session_timeout_seconds:
            raise ValueError("FORETHOUGHT_KAFKA_HEARTBEAT_SECONDS must be below"
                             " FORETHOUGHT_KAFKA_SESSION_TIMEOUT_SECONDS")
        return self

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return value

    @field_validator("web_token", mode="before")
    @classmethod
    def _token_strong_enough(cls, value: object) -> object:
        """An empty token means none; a set one must be at least 16 characters (never echoed back)."""
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str) or len(raw) < MIN_TOKEN_CHARS:
            raise ValueError(f"FORETHOUGHT_WEB_TOKEN must be at least {MIN_TOKEN_CHARS} characters")
        return value

    def topic(self, name: str) -> str:
        """The physical name of catalogue topic ``name`` (prefix applied).

        >>> Settings(topic_prefix="t1.").topic("events.errors")
        't1.events.errors'
        """
        return f"{self.topic_prefix}{name}"

    @property
    def idle_grace(self) -> float:
        """Seconds of idle input before the event clock follows the wall clock.

        >>> Settings(sweep_interval_seconds=5).idle_grace, Settings(idle_grace_seconds=86400).idle_grace
        (10.0, 86400.0)
        """
        if self.idle_grace_seconds is not None:
            return self.idle_grace_seconds
        return max(2 * self.sweep_interval_seconds, 2.0)

    @property
    def web_url(self) -> str:
        """Base URL of the worker's web server (metrics, health, customers)."""
        return f"http://{self.web_host}:{self.web_port}"

    @property
    def web_canonical_url(self) -> str:
        """The URL this worker advertises to its group (Faust's ``canonical_url``).

        >>> Settings(web_port=7001).web_canonical_url, Settings(web_advertised_url="http://w-1:6066").web_canonical_url
        ('http://127.0.0.1:7001', 'http://w-1:6066')
        """
        if self.web_advertised_url:
            return self.web_advertised_url.rstrip("/")
        if self.web_host in ("0.0.0.0", "::", ""):  # noqa: S104 - a wildcard bind: this host's own address
            return f"http://{_own_address()}:{self.web_port}"
        return self.web_url


def _own_address() -> str:
    """This host's address as its name resolves here (a pod's IP in Kubernetes, a container's in
    compose: reachable by the other workers), else its name."""
    name = socket.gethostname()
    try:
        return socket.gethostbyname(name)
    except OSError:
        return name


def validation_message(exc: ValidationError) -> str:
    """One line naming each invalid variable (``FORETHOUGHT_<FIELD>``) and why; checks across
    fields (no single location) are given by their message alone.

    >>> try:
    ...     Settings(web_port=0, kafka_security_protocol="SASL_SSL")
    ... except ValidationError as exc:
    ...     print(validation_message(exc))
    FORETHOUGHT_WEB_PORT: Input should be greater than or equal to 1
    """
    parts = []
    for error in exc.errors():
        where = f"FORETHOUGHT_{'__'.join(map(str, error['loc'])).upper()}: " if error["loc"] else ""
        parts.append(where + error["msg"].removeprefix("Value error, "))
    return "; ".join(parts)
