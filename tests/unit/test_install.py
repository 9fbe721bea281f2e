"""`make install` as a user meets it: the venv follows the lock and the Python, never a stale one.

Each test runs the project's real Makefile and tools/ on a tiny project in a temporary folder whose lock
holds the build backend only (setuptools, wheel and packaging, with the hashes from requirements/dev.lock), so an
install takes seconds. A venv "made with another Python" is faked where the machine has no second
interpreter: a real venv whose pyvenv.cfg names another version or another interpreter, which is all
`make install` reads to decide (tools/venv_check.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import lock as lock_tool  # noqa: E402  (tools/ is not a package)

pytestmark = pytest.mark.skipif(shutil.which("make") is None and not os.environ.get("CI"),
                                reason="make is not installed")
BASE_PYTHON = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
TINY_PYPROJECT = """\
[build-system]
requires = ["setuptools>=69", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "tiny"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = []

[tool.setuptools]
py-modules = ["tiny"]
"""


def locked_entries(names: set[str]) -> str:
    """The entries (with their hash lines) of `names` in the real requirements/dev.lock."""
    entries = re.split(r"\n(?=\S)", (ROOT / "requirements" / "dev.lock").read_text())
    kept = [e for e in entries if e.split("==")[0].lower() in names]
    assert len(kept) == len(names), f"{names} not all in requirements/dev.lock"
    return "\n".join(kept) + "\n"


def write_locks(project: Path, body: str) -> None:
    """requirements/{runtime,dev,eval}.lock for the tiny project, with the digest `make install` checks."""
    digest = lock_tool.inputs_digest(lock_tool.read_pyproject(project))
    for name in ("runtime", "dev", "eval"):
        (project / "requirements" / f"{name}.lock").write_text(f"{lock_tool.DIGEST_PREFIX}{digest}\n{body}")


def new_project(folder: Path) -> Path:
    """A copy of the Makefile and tools/ around a one-module project locked to the build backend."""
    (folder / "requirements").mkdir(parents=True)
    shutil.copy(ROOT / "Makefile", folder / "Makefile")
    shutil.copytree(ROOT / "tools", folder / "tools", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "pyproject.toml").write_text(TINY_PYPROJECT)
    (folder / "tiny.py").write_text("ANSWER = 42\n")
    write_locks(folder, locked_entries({"setuptools", "wheel", "packaging"}))
    return folder


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny project after its first `make install` (made once; each test works on a copy)."""
    folder = new_project(tmp_path_factory.mktemp("install") / "tiny")
    (folder / "first-install.out").write_text(installed(folder).stdout)
    return folder


@pytest.fixture()
def project(template: Path, tmp_path: Path) -> Path:
    """A copy of the installed tiny project (the venv's paths are absolute, so a copy still works)."""
    return Path(shutil.copytree(template, tmp_path / "tiny", symlinks=True))


def make_install(project: Path, python: str = BASE_PYTHON) -> subprocess.CompletedProcess[str]:
    """`make install` in the project, as a user runs it (no venv of ours active)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "MAKEFLAGS")}
    return subprocess.run(["make", "--no-print-directory", "install", f"PYTHON={python}"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600)


def installed(project: Path) -> subprocess.CompletedProcess[str]:
    """Make a first install and check it worked: the project imports from the venv, the stamp is there."""
    result = make_install(project)
    assert result.returncode == 0, result.stdout + result.stderr
    probe = subprocess.run([str(project / ".venv/bin/python"), "-c", "import tiny; print(tiny.ANSWER)"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "42"
    assert list((project / ".venv").glob(".lock-*")) and list((project / ".venv").glob(".project-*"))
    return result


def set_cfg(project: Path, **values: str) -> None:
    """Rewrite keys of .venv/pyvenv.cfg (how a venv made by another Python looks)."""
    cfg = project / ".venv" / "pyvenv.cfg"
    lines = [line for line in cfg.read_text().splitlines() if line.partition("=")[0].strip() not in values]
    cfg.write_text("\n".join(lines + [f"{k} = {v}" for k, v in values.items()]) + "\n")


def marker(project: Path) -> Path:
    """A file put into the venv: gone after `make install` only if the venv was made anew."""
    path = project / ".venv" / "marker"
    path.write_text("old venv")
    return path


def test_a_first_install_makes_the_venv_from_the_lock(template: Path) -> None:
    said = (template / "first-install.out").read_text()
    assert said.strip() == f".venv: requirements/dev.lock installed with Python {sys.version.split()[0]}"


def test_a_second_install_changes_nothing(project: Path) -> None:
    kept = marker(project)
    again = make_install(project)
    assert again.returncode == 0, again.stderr
    assert again.stdout == "" and kept.exists()


def test_a_venv_made_with_another_python_version_is_made_anew(project: Path) -> None:
    other = "3.12" if sys.version_info[:2] != (3, 12) else "3.13"  # any supported version but this one
    set_cfg(project, version=f"{other}.1")
    old = marker(project)
    result = make_install(project)
    assert result.returncode == 0, result.stderr
    assert f"was made with Python {other}" in result.stdout and "recreating .venv" in result.stdout
    assert not old.exists()
    cfg = lock_tool_cfg(project)
    assert cfg["version"].startswith(f"{sys.version_info[0]}.{sys.version_info[1]}.")


def test_a_venv_made_with_another_interpreter_of_the_same_version_is_made_anew(project: Path) -> None:
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    set_cfg(project, home="/opt/elsewhere/bin", executable=f"/opt/elsewhere/bin/python{version}")
    old = marker(project)
    result = make_install(project)
    assert result.returncode == 0, result.stderr
    assert "/opt/elsewhere" in result.stdout and "recreating" in result.stdout
    assert not old.exists()
    assert os.path.realpath(lock_tool_cfg(project)["executable"]) == BASE_PYTHON


def test_a_venv_whose_python_is_gone_is_made_anew(project: Path) -> None:
    python = project / ".venv" / "bin" / "python"
    python.unlink()
    python.symlink_to(project / "no-such-python")
    result = make_install(project)
    assert result.returncode == 0, result.stderr
    assert "does not start" in result.stdout
    assert subprocess.run([str(python), "-c", "import tiny"]).returncode == 0


def test_a_changed_lock_is_installed_again(project: Path) -> None:
    old = marker(project)
    lock = project / "requirements" / "dev.lock"
    lock.write_text(lock.read_text() + "# a re-lock that changed nothing but this line\n")
    result = make_install(project)
    assert result.returncode == 0, result.stderr
    assert "requirements/dev.lock installed" in result.stdout
    assert not old.exists()


def test_a_project_change_outside_the_dependencies_reinstalls_only_the_project(project: Path) -> None:
    kept = marker(project)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', 'version = "0.2.0"'))
    result = make_install(project)
    assert result.returncode == 0, result.stderr
    assert kept.exists() and "installed with" not in result.stdout
    version = subprocess.run([str(project / ".venv/bin/python"), "-c",
                              "import importlib.metadata as m; print(m.version('tiny'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == "0.2.0"


def test_a_dependency_added_without_relocking_stops_the_install(tmp_path: Path) -> None:
    project = new_project(tmp_path / "tiny")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("dependencies = []", 'dependencies = ["six>=1.16"]'))
    result = make_install(project)
    assert result.returncode != 0
    assert "run `make lock`" in result.stderr and "requirements/dev.lock" in result.stderr
    assert not (project / ".venv").exists()


def test_a_python_that_is_not_there_is_named(tmp_path: Path) -> None:
    project = new_project(tmp_path / "tiny")
    result = make_install(project, python="python3.99")
    assert result.returncode != 0
    assert "PYTHON=python3.99 is not a Python 3.11+ interpreter" in result.stdout
    assert not (project / ".venv").exists()


def lock_tool_cfg(project: Path) -> dict[str, str]:
    """The venv's pyvenv.cfg as tools/venv_check.py reads it."""
    import venv_check

    return venv_check.read_cfg(project / ".venv" / "pyvenv.cfg")
