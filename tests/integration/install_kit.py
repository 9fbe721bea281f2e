"""Build a wheel and install it, as a user would, into a fresh virtual environment: offline.

The fresh venv has no pip install of the wheel's dependencies (that would need the network); instead
it sees exactly the *closure of the wheel's declared dependencies* (Requires-Dist, extras and markers
evaluated), taken from the project's venv: each of those distributions' top-level files is linked into
one folder that a ``.pth`` file puts on the fresh venv's path. Nothing else of the project's venv is
visible, so a module the wheel imports without declaring it fails to import, and ``pip check`` in the
fresh venv proves the declared closure complete.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from email.parser import Parser
from importlib import metadata
from pathlib import Path
from zipfile import ZipFile

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]


def build_wheel(project: Path, out: Path) -> Path:
    """``pip wheel PROJECT --no-deps`` without build isolation (the venv has setuptools): the wheel."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(project), "--no-deps", "--no-build-isolation",
                    "--no-index", "-q", "-w", str(out)], check=True, cwd=project)
    [wheel] = out.glob("*.whl")
    return wheel


def wheel_metadata(wheel: Path) -> tuple[list[str], list[Requirement]]:
    """The wheel's file names and its declared requirements."""
    with ZipFile(wheel) as archive:
        names = archive.namelist()
        [meta] = [n for n in names if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(archive.read(meta).decode())
    return names, [Requirement(r) for r in message.get_all("Requires-Dist") or []]


def closure(requirements: list[Requirement]) -> set[str]:
    """Every distribution (canonical name) the requirements pull in, as installed in this venv."""
    seen: set[str] = set()
    todo = [(r, frozenset(r.extras)) for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})]
    while todo:
        requirement, extras = todo.pop()
        name = canonicalize_name(requirement.name)
        key = name + "[" + ",".join(sorted(extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        for text in metadata.distribution(name).requires or []:
            inner = Requirement(text)
            if inner.marker is None or any(inner.marker.evaluate({"extra": e}) for e in ("", *extras)):
                todo.append((inner, frozenset(inner.extras)))
    return {key.split("[")[0] for key in seen}


def link_distributions(names: set[str], into: Path) -> None:
    """Symlink each distribution's top-level files and folders (and its dist-info) into ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    for name in sorted(names):
        dist = metadata.distribution(name)
        base = Path(str(dist.locate_file("")))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in sorted(tops):
            if top.endswith(".pth") or top == "__pycache__":
                continue
            target = into / top
            if not target.exists() and (base / top).exists():
                target.symlink_to(base / top)


def fresh_venv(where: Path, wheel: Path) -> Path:
    """A new venv with ``wheel`` installed (``--no-deps``) and only its dependency closure visible."""
    venv.EnvBuilder(with_pip=False).create(where)
    python = where / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                    "-q", str(wheel)], check=True)
    deps = where / "deps"
    link_distributions(closure(wheel_metadata(wheel)[1]), deps)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    (Path(purelib) / "_forethought_test_deps.pth").write_text(f"{deps}\n")
    return python


def pip_check(python: Path) -> subprocess.CompletedProcess[str]:
    """``pip check`` of the venv of ``python``: every declared requirement satisfied?"""
    return subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "check"],
                          capture_output=True, text=True)


def run_in(python: Path, script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``script`` isolated (-I: no PYTHONPATH, no script folder on the path) from ``cwd``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FORETHOUGHT_", "PYTHON"))}
    return subprocess.run([str(python), "-I", "-c", script], env={**clean, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


__all__ = ["REPO", "build_wheel", "closure", "fresh_venv", "pip_check", "run_in", "wheel_metadata"]
