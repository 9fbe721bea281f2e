"""How every Kafka client of the project connects: TLS, SASL, and the replication of the topics it creates.

:class:`KafkaSecurity` holds the fields (``Settings`` inherits them, so they read from
``FORETHOUGHT_KAFKA_*``); the functions below turn them into what each library wants:

* :func:`aiokafka_options` — keyword arguments for ``AIOKafkaProducer/Consumer/AdminClient``;
* :func:`faust_options` — ``broker_credentials`` for ``faust.App`` (SCRAM included: faust passes
  ``SASLCredentials.mechanism`` straight to aiokafka);
* :func:`topic_options` — ``min.insync.replicas`` for topic configs, when set;
* :func:`preflight` — one connection per bootstrap server, so that a wrong password or an
  untrusted certificate is one clear :class:`KafkaAccessError`, not a retry loop.

Secrets are ``SecretStr``: neither ``repr`` nor a log line shows them::

    >>> s = KafkaSecurity(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-512",
    ...                   kafka_sasl_username="svc", kafka_sasl_password="hunter2")
    >>> "hunter2" in repr(s), s.kafka_sasl_password
    (False, SecretStr('**********'))
    >>> sorted(aiokafka_options(s))
    ['sasl_mechanism', 'sasl_plain_password', 'sasl_plain_username', 'security_protocol']
    >>> aiokafka_options(KafkaSecurity())
    {}
    >>> KafkaSecurity(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="PLAIN", kafka_sasl_username="svc")
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for KafkaSecurity
      Value error, kafka_sasl_password is required with kafka_security_protocol=SASL_SSL ...
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field, FilePath, SecretStr, model_validator

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
BROKER_DEFAULT = -1  # replication factor "as the broker's default.replication.factor" (CreateTopics, Kafka >= 2.4)


class KafkaAccessError(RuntimeError):
    """The broker refused us (authentication, TLS) or cannot be reached; the message is one line."""


class KafkaUnreachable(KafkaAccessError):
    """No bootstrap server answered (down, wrong address): maybe transient, unlike a refusal."""


class KafkaSecurity(BaseModel):
    """TLS and SASL of every Kafka client, and the replication of the topics the project creates."""

    kafka_security_protocol: Protocol = "PLAINTEXT"
    # TLS (protocols SSL and SASL_SSL). Without a CA file the system's trusted CAs are used.
    kafka_ssl_cafile: FilePath | None = None
    kafka_ssl_certfile: FilePath | None = None  # client certificate (PEM), for brokers requiring mutual TLS
    kafka_ssl_keyfile: FilePath | None = None  # its private key (PEM), when not inside the certificate file
    kafka_ssl_key_password: SecretStr | None = None
    kafka_ssl_check_hostname: bool = True
    # SASL (protocols SASL_PLAINTEXT and SASL_SSL).
    kafka_sasl_mechanism: Mechanism | None = None
    kafka_sasl_username: str | None = Field(None, min_length=1)
    kafka_sasl_password: SecretStr | None = None
    # Topics the project creates (catalogue topics, table changelogs). -1: the broker's default.
    kafka_replication_factor: int = Field(BROKER_DEFAULT, ge=-1, le=32767)
    kafka_min_insync_replicas: int | None = Field(None, ge=1, le=32767)  # None: the broker's default

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecurity:
        protocol = self.kafka_security_protocol
        tls, sasl = protocol in ("SSL", "SASL_SSL"), protocol.startswith("SASL_")
        if not tls:
            _forbid(self, ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile", "kafka_ssl_key_password"),
                    "SSL or SASL_SSL")
        if not sasl:
            _forbid(self, ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password"),
                    "SASL_SSL or SASL_PLAINTEXT")
        else:
            for name in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password"):
                value = getattr(self, name)
                if value is None or (isinstance(value, SecretStr) and not value.get_secret_value()):
                    raise ValueError(f"{name} is required with kafka_security_protocol={protocol} "
                                     f"(env FORETHOUGHT_{name.upper()})")
        if self.kafka_ssl_keyfile is not None and self.kafka_ssl_certfile is None:
            raise ValueError("kafka_ssl_keyfile needs kafka_ssl_certfile (the client certificate)")
        if self.kafka_ssl_key_password is not None and self.kafka_ssl_certfile is None:
            raise ValueError("kafka_ssl_key_password needs kafka_ssl_certfile (the client certificate)")
        if self.kafka_replication_factor == 0:
            raise ValueError("kafka_replication_factor must be -1 (the broker's default) or >= 1")
        rf, isr = self.kafka_replication_factor, self.kafka_min_insync_replicas
        if isr is not None and rf > 0 and isr > rf:
            raise ValueError(f"kafka_min_insync_replicas ({isr}) cannot exceed kafka_replication_factor ({rf}): "
                             "no write could ever be acknowledged")
        return self

    def kafka_principal(self) -> str:
        """Who we are to the broker, for messages: ``user 'svc' (SCRAM-SHA-512)`` or the protocol.

        >>> KafkaSecurity().kafka_principal()
        'PLAINTEXT (no authentication)'
        """
        if self.kafka_sasl_mechanism:
            return f"user {self.kafka_sasl_username!r} ({self.kafka_sasl_mechanism})"
        if self.kafka_ssl_certfile:
            return f"client certificate {self.kafka_ssl_certfile}"
        return f"{self.kafka_security_protocol} (no authentication)"


def _forbid(settings: KafkaSecurity, names: tuple[str, ...], protocols: str) -> None:
    for name in names:
        if getattr(settings, name) is not None:
            raise ValueError(f"{name} is set but kafka_security_protocol={settings.kafka_security_protocol} "
                             f"does not use it (set FORETHOUGHT_KAFKA_SECURITY_PROTOCOL to {protocols})")


def ssl_context(settings: KafkaSecurity) -> ssl.SSLContext | None:
    """The TLS context of ``settings`` (CA, client certificate, hostname check), None without TLS."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    from aiokafka.helpers import create_ssl_context

    password = settings.kafka_ssl_key_password.get_secret_value() if settings.kafka_ssl_key_password else None
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=settings.kafka_ssl_cafile, certfile=settings.kafka_ssl_certfile, keyfile=settings.kafka_ssl_keyfile,
            password=password)
    except ssl.SSLError as exc:  # a key that does not match, a wrong key password, a file that is not PEM
        raise KafkaAccessError(f"Kafka TLS files unusable ({exc.reason or exc}): check FORETHOUGHT_KAFKA_SSL_* "
                               "(CA, certificate, key and key password)") from None
    context.check_hostname = settings.kafka_ssl_check_hostname
    return context


def aiokafka_options(settings: KafkaSecurity) -> dict[str, Any]:
    """Security keyword arguments for aiokafka's clients; ``{}`` for PLAINTEXT (aiokafka's default)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if (context := ssl_context(settings)) is not None:
        options["ssl_context"] = context
    if settings.kafka_sasl_mechanism is not None:
        assert settings.kafka_sasl_password is not None  # validated
        options.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                       sasl_plain_username=settings.kafka_sasl_username,
                       sasl_plain_password=settings.kafka_sasl_password.get_secret_value())
    return options


def faust_options(settings: KafkaSecurity) -> dict[str, Any]:
    """``faust.App`` keyword arguments: ``broker_credentials`` (none for PLAINTEXT)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    import faust

    context = ssl_context(settings)
    if protocol == "SSL":
        return {"broker_credentials": faust.SSLCredentials(context)}
    assert settings.kafka_sasl_password is not None  # validated
    credentials = faust.SASLCredentials(  # ssl_context given: SASL_SSL; None: SASL_PLAINTEXT
        username=settings.kafka_sasl_username, password=settings.kafka_sasl_password.get_secret_value(),
        ssl_context=context, mechanism=settings.kafka_sasl_mechanism)
    return {"broker_credentials": credentials}


def configure_changelogs(tables: Iterable[Any], settings: KafkaSecurity) -> None:
    """Give Faust tables' changelog topics the configured replication factor and ``min.insync.replicas``.

    Set on each changelog topic rather than through ``faust.App(topic_replication_factor=...)``,
    which is an unsigned int and so cannot say -1 (the broker's default); a topic's own ``replicas``
    goes as it is into Faust's CreateTopics request.
    """
    for table in tables:
        topic = table.changelog_topic
        topic.replicas = settings.kafka_replication_factor
        topic.config = {**(topic.config or {}), **topic_options(settings)}


def topic_options(settings: KafkaSecurity) -> dict[str, str]:
    """Topic configuration the settings add to every topic the project creates.

    >>> topic_options(KafkaSecurity(kafka_min_insync_replicas=2)), topic_options(KafkaSecurity())
    ({'min.insync.replicas': '2'}, {})
    """
    isr = settings.kafka_min_insync_replicas
    return {} if isr is None else {"min.insync.replicas": str(isr)}


async def preflight(bootstrap: str, settings: KafkaSecurity, timeout: float = 30.0) -> None:
    """Open (and close) one authenticated connection to a bootstrap server.

    Raises :class:`KafkaAccessError` with one line naming the cause when no server accepts us:
    authentication failure (mechanism and user named), TLS verification, or no server reachable.
    """
    from aiokafka.conn import create_conn
    from aiokafka.errors import (
        IllegalSaslStateError,
        KafkaError,
        SaslAuthenticationFailed,
        UnsupportedSaslMechanismError,
    )

    options = aiokafka_options(settings)
    problems: list[str] = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(host, int(port), request_timeout_ms=int(timeout * 1000), **options), timeout)
        except (SaslAuthenticationFailed, UnsupportedSaslMechanismError, IllegalSaslStateError) as exc:
            raise KafkaAccessError(f"Kafka authentication failed at {server.strip()} for "
                                   f"{settings.kafka_principal()}: {_reason(exc)}") from None
        except ssl.SSLError as exc:
            raise KafkaAccessError(f"Kafka TLS handshake with {server.strip()} failed: {_reason(exc)} "
                                   "(check FORETHOUGHT_KAFKA_SSL_CAFILE and the broker's certificate)") from None
        except (TimeoutError, OSError, KafkaError) as exc:
            problems.append(f"{server.strip()}: {_reason(exc) or type(exc).__name__}")
            continue
        conn.close()
        return
    raise KafkaUnreachable(f"cannot reach Kafka ({settings.kafka_security_protocol}): {'; '.join(problems)}")


def _reason(exc: BaseException) -> str:
    """One line of an exception's message (aiokafka's errors repeat their class name)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    text = " ".join(str(getattr(exc, "reason", None) or exc).split())
    return text.replace("[Error 58] SaslAuthenticationFailed: ", "")
