"""The programs deploy/k8s runs, run the way its pods run them, against the real broker.

Each container's args and environment come from the rendered base kustomization; the process runs
in a mount namespace of its own where every file system is read-only (``readOnlyRootFilesystem``)
except a fresh tmpfs at each of the container's volume mounts (``/tmp``, the worker's data volume),
as uid/gid 10001 (``runAsUser``, the image's user). A write anywhere else fails as in the pod.
Only the addresses differ: the test's broker, a topic prefix, loopback ports.

Needs root and util-linux ``unshare``/``setpriv`` (CI runs as root); elsewhere it skips, and fails
under ``CI=true``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import unavailable

from forethought.ops.process import free_port, stop_process

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
import k8s_kit  # noqa: E402 - the contract tests' kit renders the manifests

UID = 10001
BIN = Path(sys.executable).parent
# what the pod's command needs to see: the venv and the checkout (the project is installed editable)
KEEP = sorted({BIN.parent.resolve(), Path(__file__).resolve().parents[2]}, key=lambda p: len(p.parts))
CHECK_READ_ONLY = "touch .read-only-probe 2>/dev/null && { rm -f .read-only-probe; exit 97; }"


@pytest.fixture(scope="module")
def base() -> list[k8s_kit.Obj]:
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("setpriv")):
        unavailable("running as a pod does (read-only root, uid 10001) needs root, unshare and setpriv")
    try:
        return k8s_kit.render(k8s_kit.K8S_DIR / "base")
    except k8s_kit.ToolMissing as exc:
        unavailable(str(exc))


def pod_command(container: k8s_kit.Obj) -> list[str]:
    """``forethought <args>`` in a read-only mount namespace with the container's volumes writable."""
    script = ["set -e", "for m in $(awk '{print $2}' /proc/self/mounts | grep -v -E '^/(proc|sys|dev)(/|$)'); do",
              "  mount -o remount,bind,ro \"$m\"; done"]
    for mount in container["volumeMounts"]:
        path = Path(mount["mountPath"])
        existing = next(p for p in [path, *path.parents] if p.exists())
        # the project and its venv stay visible (read-only) when they live under a volume's path, as a
        # checkout under /tmp does: held aside on /dev/shm, then bound back into the fresh tmpfs
        hidden = [keep for keep in KEEP if keep.is_relative_to(existing)]
        script += [f"mkdir -p /dev/shm/pod-hold{i} && mount --bind {shlex.quote(str(keep))} /dev/shm/pod-hold{i}"
                   for i, keep in enumerate(hidden)]
        if existing != path:  # make room for the mount point without touching the real file system
            script += [f"mount -t tmpfs -o mode=755 tmpfs {shlex.quote(str(existing))}",
                       f"mkdir -p {shlex.quote(str(path))}"]
        script.append(f"mount -t tmpfs -o uid={UID},gid={UID},mode=700 tmpfs {shlex.quote(str(path))}")
        for i, keep in enumerate(hidden):
            script += [f"mkdir -p {shlex.quote(str(keep))}",
                       f"mount --bind /dev/shm/pod-hold{i} {shlex.quote(str(keep))}",
                       f"mount -o remount,bind,ro {shlex.quote(str(keep))}"]
    script += [CHECK_READ_ONLY, f"exec setpriv --reuid {UID} --regid {UID} --clear-groups "
               + shlex.join([str(BIN / "forethought"), *container["args"]])]
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(script)]


def pod_env(objects: list[k8s_kit.Obj], container: k8s_kit.Obj, overrides: dict[str, str]) -> dict[str, str]:
    env = k8s_kit.environment(objects, container)
    assert not set(overrides) - set(env) - {"FORETHOUGHT_TOPIC_PREFIX"}, "override only what the manifest sets"
    return {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": "/nonexistent", "PYTHONDONTWRITEBYTECODE": "1",
            **env, **overrides}


@contextmanager
def running(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        yield proc
    finally:
        stop_process(proc)


def status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def wait_until_ready(urls: list[str], procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if any(proc.poll() is not None for proc in procs):
            break
        if all(status(url) == 200 for url in urls):
            return
        time.sleep(0.5)
    tails = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in logs)
    raise AssertionError(f"not ready: {[(u, status(u)) for u in urls]}, exits {[p.poll() for p in procs]}\n{tails}")


def test_topics_worker_and_senders_run_as_their_pods_do(
    base: list[k8s_kit.Obj], kafka_bootstrap: str, topic_prefix: str, tmp_path: Path,
) -> None:
    (worker_set,) = k8s_kit.of_kind(base, "StatefulSet")
    (senders_set,) = k8s_kit.of_kind(base, "Deployment")
    (topics,) = worker_set["spec"]["template"]["spec"]["initContainers"]
    (worker,) = worker_set["spec"]["template"]["spec"]["containers"]
    (senders,) = senders_set["spec"]["template"]["spec"]["containers"]
    worker_port, senders_port = free_port(), free_port()
    shared = {"FORETHOUGHT_KAFKA_BOOTSTRAP": kafka_bootstrap, "FORETHOUGHT_TOPIC_PREFIX": topic_prefix,
              "FORETHOUGHT_APP_ID": f"k8s-{topic_prefix.strip('.')}"}
    logs = [tmp_path / f"{name}.log" for name in ("topics", "worker", "senders")]

    created = subprocess.run(pod_command(topics), env=pod_env(base, topics, shared), capture_output=True,
                             text=True, timeout=120)
    assert created.returncode == 0, created.stdout + created.stderr  # 97: the root was writable
    assert f"{topic_prefix}events.clickstream" in created.stdout

    worker_env = pod_env(base, worker, {**shared, "FORETHOUGHT_WEB_HOST": "127.0.0.1",
                                        "FORETHOUGHT_WEB_PORT": str(worker_port)})
    senders_env = pod_env(base, senders, {**shared, "FORETHOUGHT_SENDER__WEB_HOST": "127.0.0.1",
                                          "FORETHOUGHT_SENDER__WEB_PORT": str(senders_port)})
    with running(pod_command(worker), worker_env, logs[1]) as worker_proc, \
            running(pod_command(senders), senders_env, logs[2]) as senders_proc:
        urls = [f"http://127.0.0.1:{worker_port}/ready", f"http://127.0.0.1:{senders_port}/ready"]
        wait_until_ready(urls, [worker_proc, senders_proc], logs[1:])
        assert status(f"http://127.0.0.1:{worker_port}/health") == 200
        assert status(f"http://127.0.0.1:{senders_port}/health") == 200
        assert status(f"http://127.0.0.1:{worker_port}/customers/x") == 401  # the Secret's token is in force
        exits = [stop_process(worker_proc), stop_process(senders_proc)]
    assert exits == [0, 0], "\n".join(log.read_text(errors="replace")[-3000:] for log in logs[1:])
    for log in logs[1:]:
        text = log.read_text(errors="replace")
        assert "Read-only file system" not in text and "Permission denied" not in text, log.name
