"""The ports the demo, tests and benchmarks give their workers: never one an outgoing connection can take.

A worker whose web port was taken between the pick and its own bind exits with code 1 before it is
ready (a fresh-clone CI run failed so); these tests pin the two properties that prevent it.
"""

from __future__ import annotations

import random
import socket

import pytest

from forethought.ops import process
from forethought.ops.process import ephemeral_low, free_port


def test_a_picked_port_lies_below_the_range_outgoing_connections_take_their_ports_from(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server, socket.create_connection(server.getsockname()) as client:
        assert client.getsockname()[1] >= ephemeral_low(), "an outgoing connection's port is in the ephemeral range"
    monkeypatch.setattr(process, "ephemeral_low", lambda: 32_768)  # Linux's default range, whatever this kernel's
    ports = [free_port() for _ in range(50)]
    assert all(process.LOWEST_PORT <= port < 32_768 for port in ports)
    assert len(set(ports)) == len(ports), "no port is handed out twice"


def test_a_port_something_listens_on_or_already_handed_out_is_never_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    handed, spare = free_port(), free_port()
    monkeypatch.setattr(process, "_handed_out", {handed})
    monkeypatch.setattr(process, "ephemeral_low", lambda: 65_000)
    with socket.create_server(("127.0.0.1", 0)) as busy:
        taken = busy.getsockname()[1]
        draws = iter([taken, handed, taken, spare])
        monkeypatch.setattr(process._picker, "randrange", lambda *_: next(draws))
        picked = free_port()
    assert picked == spare
    with socket.create_server(("127.0.0.1", picked)):
        pass  # and a server can bind it


def test_a_seeded_global_generator_does_not_make_two_processes_pick_the_same_ports() -> None:
    random.seed(7)
    first = process._picker.random()
    random.seed(7)
    assert process._picker.random() != first
