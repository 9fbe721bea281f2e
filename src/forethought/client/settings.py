"""``ClientSettings``: the producer SDK's own settings, never the worker's.

Read from code first, then from the environment; nothing else (no config file). The client reads only
the names it shares with the worker, with the same meaning and bounds, and its own section
``FORETHOUGHT_CLIENT__*``; every other ``FORETHOUGHT_*`` variable (say a bad ``FORETHOUGHT_WEB_PORT``)
is ignored, so one environment can serve a worker and the apps that produce to it.

========================================  =============================  ==========================
variable                                  field                          default
========================================  =============================  ==========================
``FORETHOUGHT_KAFKA_BOOTSTRAP``           ``kafka_bootstrap``            ``127.0.0.1:9092``
``FORETHOUGHT_TOPIC_PREFIX``              ``topic_prefix``               ``""``
``FORETHOUGHT_TOPICS_FILE``               ``topics_file``                the packaged catalogue
``FORETHOUGHT_MAX_EVENT_BYTES``           ``max_event_bytes``            65536
``FORETHOUGHT_KAFKA_COMPRESSION``         ``kafka_compression``          ``none``
``FORETHOUGHT_KAFKA_SECURITY_PROTOCOL``,  TLS and SASL (as the worker)   ``PLAINTEXT``
``FORETHOUGHT_KAFKA_SSL_*``, ``_SASL_*``
``FORETHOUGHT_CLIENT__ID``                ``client.id``                  ``forethought-client``
``FORETHOUGHT_CLIENT__LINGER_MS``         ``client.linger_ms``           5
``FORETHOUGHT_CLIENT__REQUEST_TIMEOUT_MS`` ``client.request_timeout_ms`` 30000
========================================  =============================  ==========================

>>> s = ClientSettings(topic_prefix="staging.", client={"id": "billing"})
>>> s.topic_prefix, s.client.id, s.kafka_compression
('staging.', 'billing', 'none')
>>> ClientSettings(topic_prefix="no spaces")
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for ClientSettings
topic_prefix
  String should match pattern '^[A-Za-z0-9._-]*$' ...
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from forethought.contracts.catalogue import DEFAULT_TOPICS_FILE
from forethought.contracts.decode import DEFAULT_MAX_BYTES, MaxEventBytes
from forethought.ops.compression import Compression
from forethought.ops.kafka_security import KafkaSecurity

__all__ = ["ClientOptions", "ClientSettings"]


class ClientOptions(BaseModel):
    """Settings only the client has (``FORETHOUGHT_CLIENT__<NAME>``; the worker leaves them alone)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field("forethought-client", min_length=1, max_length=255)  # Kafka's client.id (broker logs, quotas)
    linger_ms: int = Field(5, ge=0, le=1000)  # how long a record may wait to fill a batch
    request_timeout_ms: int = Field(30_000, ge=100, le=600_000)  # metadata or acknowledgement, then it fails


class ClientSettings(BaseSettings, KafkaSecurity):
    """Where and how the SDK produces: broker, topic prefix, catalogue, size limit, codec, TLS/SASL."""

    model_config = SettingsConfigDict(
        env_prefix="FORETHOUGHT_", env_nested_delimiter="__", frozen=True, extra="ignore",
        hide_input_in_errors=True,  # a rejected password must not be echoed into an app's logs
    )

    kafka_bootstrap: str = Field("127.0.0.1:9092", min_length=3)
    topic_prefix: str = Field("", pattern=r"^[A-Za-z0-9._-]*$")
    topics_file: Path = DEFAULT_TOPICS_FILE
    max_event_bytes: MaxEventBytes = DEFAULT_MAX_BYTES
    kafka_compression: Compression = "none"
    client: ClientOptions = ClientOptions()

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Code, then the environment: no ``.env`` and no config file (they belong to the app)."""
        return init_settings, env_settings
