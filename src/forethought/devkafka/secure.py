"""The local broker's secured listeners: a test PKI made with ``openssl``, SASL_SSL and SSL listeners,
and SCRAM users created through Kafka's admin API.

``LocalBroker(secure=True)`` keeps its PLAINTEXT listener (tests and tools use it unchanged) and adds:

* ``SASL_SSL`` on 127.0.0.1 (TLS, server certificate only) with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512;
* ``SSL`` on 127.0.0.1 with client certificates *required* (mutual TLS).

Everything is made fresh per broker under ``<data dir>/tls``: a throw-away CA, a broker certificate
for ``localhost`` / ``127.0.0.1``, a client certificate whose key is encrypted with a password, and
one random password for the user ``forethought``. It exists so that the integration suite proves
the clients' TLS and SASL settings against a real broker; it is not a production setup.

>>> sorted(secure_properties(9092, 9093, 9094, 9095, Path("/t"), "pw")["listener.security.protocol.map"].split(","))
['CONTROLLER:PLAINTEXT', 'PLAINTEXT:PLAINTEXT', 'SASL_SSL:SASL_SSL', 'SSL:SSL']
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from forethought.devkafka.jars import BrokerError, major_version

USER = "forethought"
SCRAM = ("SCRAM-SHA-256", "SCRAM-SHA-512")
MECHANISMS = ("PLAIN", *SCRAM)


@dataclass(frozen=True)
class SecuredAccess:
    """How a client reaches the secured listeners of a running ``LocalBroker(secure=True)``."""

    sasl_ssl_bootstrap: str
    ssl_bootstrap: str
    ca_file: Path
    client_cert: Path
    client_key: Path
    client_key_password: str = field(repr=False)
    user: str = USER
    password: str = field(default="", repr=False)

    def env(self, mechanism: str = "SCRAM-SHA-512", password: str | None = None) -> dict[str, str]:
        """``FORETHOUGHT_KAFKA_*`` variables for a SASL_SSL client of this broker (``password``
        overrides the real one, e.g. to prove that a wrong one is refused)."""
        return {
            "FORETHOUGHT_KAFKA_BOOTSTRAP": self.sasl_ssl_bootstrap,
            "FORETHOUGHT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "FORETHOUGHT_KAFKA_SSL_CAFILE": str(self.ca_file),
            "FORETHOUGHT_KAFKA_SASL_MECHANISM": mechanism,
            "FORETHOUGHT_KAFKA_SASL_USERNAME": self.user,
            "FORETHOUGHT_KAFKA_SASL_PASSWORD": self.password if password is None else password,
        }


def _openssl(*args: str, cwd: Path) -> None:
    tool = shutil.which("openssl")
    if tool is None:
        raise BrokerError("cannot make the local broker's test certificates: openssl not found")
    done = subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise BrokerError(f"openssl {args[0]} failed: {done.stderr.strip()[-500:]}")


def _leaf(tls: Path, name: str, cn: str, ext: str) -> None:
    """A key and a CA-signed certificate ``<name>.pem`` / ``<name>.key`` (unencrypted PKCS#8)."""
    (tls / f"{name}.ext").write_text(ext)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={cn}", cwd=tls)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", "2", "-sha256", "-extfile", f"{name}.ext", cwd=tls)


def make_pki(tls: Path) -> str:
    """CA, broker and client certificates under ``tls``; returns the client key's password.

    Files: ``ca.pem``; ``broker.pem`` + ``broker.key`` (SAN localhost, 127.0.0.1); ``client.pem``
    + ``client.key`` (PKCS#8, encrypted with the returned password).
    """
    tls.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-sha256", "-subj", "/CN=forethought-test-ca",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=tls)
    _leaf(tls, "broker", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
          "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    _leaf(tls, "client", USER, "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n")
    password = secrets.token_urlsafe(12)
    _openssl("pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", "client.key", "-out", "client.enc.key",
             "-passout", f"pass:{password}", cwd=tls)
    (tls / "client.enc.key").replace(tls / "client.key")
    # Kafka's PEM keystore: the private key followed by the certificate chain, one file.
    (tls / "broker.keystore.pem").write_text((tls / "broker.key").read_text() + (tls / "broker.pem").read_text())
    return password


def secure_properties(port: int, cport: int, sasl_port: int, ssl_port: int, tls: Path, password: str) -> dict[str, str]:
    """server.properties entries for the PLAINTEXT + SASL_SSL + SSL listeners (controller unchanged)."""
    scram_login = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    plain_login = (f'org.apache.kafka.common.security.plain.PlainLoginModule required '
                   f'user_{USER}="{password}";')
    props = {
        "listeners": (f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport},"
                      f"SASL_SSL://127.0.0.1:{sasl_port},SSL://127.0.0.1:{ssl_port}"),
        "advertised.listeners": (f"PLAINTEXT://127.0.0.1:{port},SASL_SSL://127.0.0.1:{sasl_port},"
                                 f"SSL://127.0.0.1:{ssl_port}"),
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL",
        "sasl.enabled.mechanisms": ",".join(MECHANISMS),
        "listener.name.sasl_ssl.plain.sasl.jaas.config": plain_login,
        "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": scram_login,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram_login,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(tls / "broker.keystore.pem"),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(tls / "ca.pem"),
        "listener.name.ssl.ssl.client.auth": "required",
        "listener.name.sasl_ssl.ssl.client.auth": "none",
    }
    return props


def create_scram_users(java: str, classpath: str, version: str, bootstrap: str, password: str,
                       timeout: float = 30) -> None:
    """Give ``USER`` SCRAM-SHA-256 and -512 credentials through the admin API
    (``AlterUserScramCredentials``, via Kafka's own ``ConfigCommand`` over the PLAINTEXT listener)."""
    tool = "kafka.admin.ConfigCommand" if major_version(version) < 4 else "org.apache.kafka.tools.ConfigCommand"
    for mechanism in SCRAM:  # one request per mechanism: Kafka refuses two alterations of one user at once
        config = f"{mechanism}=[iterations=4096,password={password}]"
        cmd = [java, "-Xmx128m", "-cp", classpath, tool, "--bootstrap-server", bootstrap, "--alter",
               "--add-config", config, "--entity-type", "users", "--entity-name", USER]
        deadline = time.monotonic() + timeout
        while (done := subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)).returncode != 0:
            if time.monotonic() > deadline:
                tail = "\n".join((done.stdout + done.stderr).replace(password, "***").splitlines()[-15:])
                raise BrokerError(f"creating SCRAM users failed ({done.returncode}):\n{tail}")
            time.sleep(1)
