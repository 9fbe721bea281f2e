"""Model checkpoints are data: a forged record can never run code, and a signing key stops forgery.

The checkpoint changelog is a Kafka topic: anyone with write access can put bytes there. These
tests play that attacker against the same restore path the worker uses.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import pytest
import river
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_learned_dropoff import trained

from forethought.core import snapshots
from forethought.core.checkpoint import HEAD, MAGIC, CheckpointError, seal
from forethought.core.models import PartitionModels

KEY = b"a 32-byte signing key for tests."
PROBES = [dict.fromkeys(snapshots.NAMES, v / 10) for v in range(11)]


class Exploit:
    """What an attacker pickles: unpickling it runs a command (here: it creates a file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def pickled_checkpoint(marker: Path, version: int) -> bytes:
    """A checkpoint in the old pickle formats, with a valid header and digest (as a forger makes it)."""
    import hashlib

    payload = pickle.dumps({"dropoff": Exploit(marker)}, protocol=5)
    header = json.dumps({"partition": 0, "river": "0.26.1", "features": list(snapshots.NAMES), "labels": 500,
                         "dropped": 50, "sha256": hashlib.sha256(payload).hexdigest()}).encode()
    return HEAD.pack(MAGIC, version, len(header)) + header + payload


@pytest.mark.parametrize("version", [1, 2])
def test_a_forged_pickle_checkpoint_is_refused_without_running_it(tmp_path: Path, version: int) -> None:
    marker = tmp_path / "pwned"
    models = PartitionModels.restore(pickled_checkpoint(marker, version), partition=0, min_labels=4)
    assert not marker.exists(), "the pickle was never loaded"
    assert (models.origin, models.labels, models.warm) == ("failed", 0, False)
    assert models.problem == (f"incompatible model checkpoint: format {version} is a pickle, which this worker"
                              " never loads (it reads format 3)")


def test_a_restored_checkpoint_learns_on_exactly_like_the_original() -> None:
    models = trained()
    for key in (None, KEY):
        restored = PartitionModels.restore(models.to_bytes(key), partition=2, min_labels=4, key=key)
        assert (restored.origin, restored.problem) == ("restored", None)
        assert restored.to_bytes() == models.to_bytes(), "every parameter came back, bit for bit"
    restored = PartitionModels.restore(models.to_bytes(), partition=2, min_labels=4)
    for m in (models, restored):
        for i, probe in enumerate(PROBES):
            m.learn_dropoff(probe, i % 3 == 0)
    assert [restored.dropoff(p) for p in PROBES] == [models.dropoff(p) for p in PROBES]


def test_with_a_signing_key_only_checkpoints_signed_with_it_are_used() -> None:
    models = trained()
    signed = models.to_bytes(KEY)
    assert PartitionModels.restore(signed, partition=2, min_labels=4, key=KEY).origin == "restored"
    assert PartitionModels.restore(signed, partition=2, min_labels=4).origin == "restored", "readable without a key"

    unsigned = PartitionModels.restore(models.to_bytes(), partition=2, min_labels=4, key=KEY)
    assert (unsigned.origin, unsigned.problem) == ("failed", "unsigned or forged model checkpoint: its signature"
                                                              " does not match this deployment's key")
    other = PartitionModels.restore(models.to_bytes(b"someone else's key, 32 bytes...."), partition=2, key=KEY)
    assert other.origin == "failed" and "signature does not match" in (other.problem or "")


def test_a_signed_checkpoint_whose_counters_were_raised_is_refused() -> None:
    signed = trained().to_bytes(KEY)
    (length,) = struct.unpack_from(">I", signed, 5)
    header = json.loads(signed[HEAD.size:HEAD.size + length])
    header["labels"] = 10**9  # a forger makes a cold model look warm
    forged_header = json.dumps(header, separators=(",", ":")).encode()
    forged = HEAD.pack(MAGIC, 3, len(forged_header)) + forged_header + signed[HEAD.size + length:]
    models = PartitionModels.restore(forged, partition=2, min_labels=4, key=KEY)
    assert models.origin == "failed" and models.labels == 0
    assert "signature does not match" in (models.problem or "")


@pytest.mark.parametrize(("payload", "problem"), [
    ([1, 2], "the payload is not a map"),
    ({"dropoff": "x"}, "the drop-off model is not a map"),
    ({"dropoff": {"counts": {"a": "1"}}}, "scaler counts is not a map of numbers"),
    ({"dropoff": {"counts": {"a": -1}}}, "scaler counts are not counts"),
    ({"dropoff": {"counts": {}, "means": {}, "vars": {}, "weights": {"a": [1]}}}, "weights is not a map of numbers"),
])
def test_a_checkpoint_of_the_wrong_shape_is_refused_with_its_reason(payload: object, problem: str) -> None:
    header = {"partition": 0, "river": river.__version__, "features": list(snapshots.NAMES), "labels": 0, "dropped": 0}
    models = PartitionModels.restore(seal(header, payload), partition=0)
    assert (models.origin, models.problem) == ("failed", f"corrupt model checkpoint: {problem}")


def test_behaviour_masses_of_the_wrong_size_are_refused() -> None:
    raw = trained().to_bytes()
    (length,) = struct.unpack_from(">I", raw, 5)
    header, payload = json.loads(raw[HEAD.size:HEAD.size + length]), json.loads(raw[HEAD.size + length:])
    window = next(iter(payload["behaviour"].values()))
    window["mass"] = window["mass"][:8]
    header.pop("sha256")
    models = PartitionModels.restore(seal(header, payload), partition=2)
    assert models.origin == "failed" and "behaviour masses hold 6 bytes" in (models.problem or "")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400), st.integers(0, 255))
def test_no_bytes_make_restore_raise_or_load_anything(tail: bytes, version: int) -> None:
    """Whatever follows the magic, restore answers with models (fresh when the bytes are no good)."""
    for raw in (MAGIC + bytes([version]) + tail, MAGIC + bytes([3]) + struct.pack(">I", len(tail)) + tail):
        models = PartitionModels.restore(raw, partition=0)
        assert models.origin == "failed" and models.problem


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20))
def test_any_json_payload_is_restored_or_refused_never_raised(payload: object) -> None:
    header = {"partition": 0, "river": river.__version__, "features": list(snapshots.NAMES), "labels": 0, "dropped": 0}
    try:
        PartitionModels.from_bytes(seal(header, payload), partition=0)
    except CheckpointError:
        pass


def forged(edit: object) -> bytes:
    """A trained model's checkpoint, its payload changed by ``edit(payload)`` and re-sealed unsigned."""
    raw = trained().to_bytes()
    (length,) = struct.unpack_from(">I", raw, 5)
    header, payload = json.loads(raw[HEAD.size:HEAD.size + length]), json.loads(raw[HEAD.size + length:])
    edit(payload)  # type: ignore[operator]
    header.pop("sha256")
    return seal(header, payload)


def first_window(payload: dict) -> dict:
    return next(iter(payload["behaviour"].values()))


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda p: p["dropoff"]["counts"].update(x=float("inf")), "scaler counts is not a map of numbers"),
    (lambda p: p["dropoff"]["weights"].update(x=float("nan")), "weights is not a map of numbers"),
    (lambda p: p["population"].update({"²": [1, 2, 3, 4]}), "a population window index is not an integer"),
    (lambda p: p["population"].update({"1" * 5000: [1, 2, 3, 4]}), "a population window index is not an integer"),
    (lambda p: p["population"].update({"3": [1, 10**400, 3, 4]}), "population sums is not a list of integers"),
    (lambda p: first_window(p)["scores"].update({"-1000000": 1}), "a behaviour score bin is out of range"),
    (lambda p: first_window(p)["sums"].__setitem__(0, 10**15), "behaviour sums do not fit their count"),
])
def test_forged_values_that_would_overflow_later_are_refused_at_restore(edit: object, problem: str) -> None:
    """Values of the right type but impossible size: each would have raised later (int(inf), a float
    overflow in the threshold) and taken the partition's records down with it."""
    models = PartitionModels.restore(forged(edit), partition=2)
    assert (models.origin, models.problem) == ("failed", f"corrupt model checkpoint: {problem}")


def test_with_a_key_nothing_of_an_unsigned_checkpoint_is_parsed() -> None:
    """A header of 100,000 brackets makes a JSON parser recurse until it fails: with a key it is never read."""
    header = b"[" * 100_000
    raw = HEAD.pack(MAGIC, 3, len(header)) + header + b"{}"
    for key in (KEY, None):
        models = PartitionModels.restore(raw, partition=0, key=key)
        assert models.origin == "failed"
    assert PartitionModels.restore(raw, partition=0, key=KEY).problem.startswith("unsigned or forged")
    assert PartitionModels.restore(raw, partition=0).problem == "corrupt model checkpoint: unreadable header"
