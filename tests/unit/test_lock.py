"""The committed locks (requirements/*.lock) are what `make install`, CI and the image install.

They must be current with pyproject.toml (a dependency added without `make lock` fails here, naming the
command), pin every package exactly with hashes, agree with each other on shared packages, and keep the
versions the tests pass with (typer below 0.27: tests/unit/test_cli_help.py).
"""

from __future__ import annotations

import doctest
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import lock as lock_tool  # noqa: E402  (tools/ is not a package)
import venv_check  # noqa: E402

PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+?)(?: ;.*?)? \\$", re.M)


def pins(name: str) -> dict[str, str]:
    """{normalised package name: version} of requirements/<name>.lock."""
    text = (ROOT / "requirements" / f"{name}.lock").read_text()
    return {re.sub(r"[-_.]+", "-", m[1]).lower(): m[2] for m in PIN.finditer(text)}


def test_the_locks_were_made_from_pyproject_dependencies() -> None:
    result = subprocess.run([sys.executable, "tools/lock.py", "check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_dependency_change_makes_the_locks_stale(tmp_path: Path) -> None:
    (tmp_path / "requirements").mkdir()
    for name in ("runtime", "dev", "eval"):
        (tmp_path / "requirements" / f"{name}.lock").write_text((ROOT / "requirements" / f"{name}.lock").read_text())
    pyproject = (ROOT / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(pyproject)
    assert lock_tool.stale_locks(tmp_path) == []
    (tmp_path / "pyproject.toml").write_text(pyproject.replace('"tzdata>=2024.1",', '"tzdata>=2024.1",\n  "six",'))
    assert sorted(lock_tool.stale_locks(tmp_path)) == [
        f"requirements/{n}.lock was made from other dependencies than pyproject.toml's" for n in ("dev", "eval",
                                                                                                   "runtime")]
    (tmp_path / "pyproject.toml").write_text(pyproject.replace('line-length = 120', 'line-length = 100'))
    assert lock_tool.stale_locks(tmp_path) == [], "a tool setting is not a dependency"
    (tmp_path / "requirements" / "eval.lock").unlink()
    assert lock_tool.stale_locks(tmp_path) == [
        "requirements/eval.lock is missing or has no '# inputs-sha256:' line"]


@pytest.mark.parametrize("name", ["runtime", "dev", "eval"])
def test_every_locked_package_is_exact_and_hashed(name: str) -> None:
    text = (ROOT / "requirements" / f"{name}.lock").read_text()
    entries = [e for e in re.split(r"\n(?=\S)", text) if not e.startswith("#")]
    assert len(entries) == len(pins(name)) > 10
    for entry in entries:
        assert "==" in entry.splitlines()[0] and "--hash=sha256:" in entry, entry.splitlines()[0]


def test_the_image_and_the_tests_get_the_same_versions() -> None:
    runtime, dev, evaluation = pins("runtime"), pins("dev"), pins("eval")
    assert {k: dev[k] for k in runtime} == runtime
    assert {k: evaluation[k] for k in dev} == dev
    assert {"faust-streaming", "river", "typer", "setuptools"} <= runtime.keys()
    assert {"pytest", "mypy", "ruff"} <= dev.keys() - runtime.keys()
    assert {"lifetimes"} <= evaluation.keys() - dev.keys()


def test_typer_is_locked_below_the_release_that_renders_types_in_help() -> None:
    major, minor = (int(x) for x in pins("runtime")["typer"].split(".")[:2])
    assert (major, minor) < (0, 27)


@pytest.mark.parametrize("python", ["3.11", "3.12", "3.13"])
def test_the_locks_cover_every_supported_python(python: str) -> None:
    """Universal locks: on Linux with each supported Python, every dependency pyproject.toml names gets
    exactly one locked version (a lock made for one Python only would leave some out or pin some twice)."""
    project = lock_tool.read_pyproject()["project"]
    assert project["requires-python"] == ">=3.11,<3.14"
    env = {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
           "platform_python_implementation": "CPython", "os_name": "posix"}
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    text = (ROOT / "requirements" / "dev.lock").read_text()
    chosen: dict[str, list[str]] = {}
    for line in re.findall(r"^[A-Za-z0-9].*$", text, re.M):
        requirement = Requirement(line.rstrip(" \\"))
        if requirement.marker is None or requirement.marker.evaluate(env):
            chosen.setdefault(canonicalize_name(requirement.name), []).append(str(requirement.specifier))
    assert all(len(versions) == 1 for versions in chosen.values()), chosen
    for dependency in wanted:
        requirement = Requirement(dependency)
        version = chosen[canonicalize_name(requirement.name)][0].removeprefix("==")
        assert requirement.specifier.contains(version), (dependency, version)


@pytest.mark.parametrize("module", [lock_tool, venv_check], ids=lambda m: m.__name__)
def test_the_tools_doctests(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0 and result.failed == 0
