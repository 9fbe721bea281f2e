"""The image's HEALTHCHECK (deploy/Dockerfile), run as Docker runs it against a real HTTP server.

No Docker engine here: the command itself is executed with this Python, in the environment a
container of the image would give it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml

from forethought.ops.settings import Settings

DOCKERFILE = Path(__file__).resolve().parents[2] / "deploy" / "Dockerfile"


def healthcheck_command() -> list[str]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    (line,) = [line for line in text.splitlines() if line.startswith("HEALTHCHECK ")]
    return yaml.safe_load(line.split(" CMD ", 1)[1])  # the exec form is a JSON array


class _Answer(BaseHTTPRequestHandler):
    status = 200
    paths: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).paths.append(self.path)
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _run_healthcheck(port: int) -> int:
    """The HEALTHCHECK command as Docker runs it, in a container whose FORETHOUGHT_WEB_PORT is ``port``."""
    command = healthcheck_command()
    assert command[0] == "python"
    env = {**os.environ, "FORETHOUGHT_WEB_PORT": str(port)}
    return subprocess.run([sys.executable, *command[1:]], capture_output=True, timeout=60, env=env).returncode


def test_the_image_healthcheck_defaults_to_the_worker_port() -> None:
    assert f"'{Settings.model_fields['web_port'].default}'" in " ".join(healthcheck_command())


@pytest.mark.parametrize("status, healthy", [(200, True), (503, False)])
def test_the_image_healthcheck_asks_health_and_fails_on_an_error(status: int, healthy: bool) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Answer)
    _Answer.status, _Answer.paths = status, []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert (_run_healthcheck(server.server_address[1]) == 0) is healthy
    finally:
        server.shutdown()
        server.server_close()
    assert _Answer.paths == ["/health"]


def test_the_image_healthcheck_fails_when_nothing_listens() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Answer)
    port = server.server_address[1]
    server.server_close()  # the port is free again: nothing answers there
    assert _run_healthcheck(port) != 0

