"""The lock files under requirements/: made with uv, checked against pyproject.toml (stdlib only).

Three locks, each a pip requirements file with exact versions and sha256 hashes, valid for every
supported Python (uv's universal resolution over `requires-python`):

- ``eval.lock``: everything: the dependencies, the ``dev`` and ``eval`` extras and the build backend
  (``make eval-real``); resolved first, so one consistent set of versions exists for all three;
- ``dev.lock``: runtime + the ``dev`` extra (``make install``, CI), constrained by eval.lock;
- ``runtime.lock``: the dependencies and the build backend (the image), constrained by dev.lock,
  so the runtime packages are the same versions in the image and under the tests.

Resolving the largest set first means a dev tool that needs a newer shared package moves that package
for all three locks at once, instead of failing against a runtime lock made without it.

Each lock starts with ``# inputs-sha256: <digest>`` of the dependency tables it was made from; ``check``
compares that digest with pyproject.toml's, so a dependency added without ``make lock`` is named.

    python tools/lock.py compile --uv PATH [--upgrade] [-- extra uv args]
    python tools/lock.py check

>>> inputs_digest({"project": {"dependencies": ["a>=1"]}}) == inputs_digest({"project": {"dependencies": ["a>=1"]}})
True
>>> inputs_digest({"project": {"dependencies": ["a>=1"]}}) == inputs_digest({"project": {"dependencies": ["a>=2"]}})
False
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOCK_DIR = ROOT / "requirements"
DIGEST_PREFIX = "# inputs-sha256: "


@dataclass(frozen=True)
class LockSet:
    """One lock file: the extras it covers and the lock that constrains it (None for the base)."""

    name: str
    extras: tuple[str, ...]
    constrained_by: str | None

    @property
    def path(self) -> Path:
        """requirements/<name>.lock"""
        return LOCK_DIR / f"{self.name}.lock"


LOCKS = (
    LockSet("eval", ("dev", "eval"), None),
    LockSet("dev", ("dev",), "eval"),
    LockSet("runtime", (), "dev"),
)


def inputs_digest(pyproject: dict[str, Any]) -> str:
    """sha256 of what a lock is made from: requires-python, dependencies, extras, build requirements.

    Any other change to pyproject.toml (tool settings, the version) leaves it as it is.
    """
    project = pyproject.get("project", {})
    inputs = {
        "requires-python": project.get("requires-python", ""),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "build-requires": pyproject.get("build-system", {}).get("requires", []),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def read_pyproject(root: Path = ROOT) -> dict[str, Any]:
    """pyproject.toml as a dict."""
    with (root / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def lock_digest(path: Path) -> str | None:
    """The digest written at the top of a lock file, None when absent."""
    if not path.exists():
        return None
    for line in path.read_text().splitlines()[:5]:
        if line.startswith(DIGEST_PREFIX):
            return line[len(DIGEST_PREFIX):].strip()
    return None


def stale_locks(root: Path = ROOT) -> list[str]:
    """Problems that make the locks unusable with this pyproject.toml, one line each (empty: all good)."""
    want = inputs_digest(read_pyproject(root))
    problems = []
    for lock in LOCKS:
        path = root / "requirements" / f"{lock.name}.lock"
        have = lock_digest(path)
        if have is None:
            problems.append(f"{path.relative_to(root)} is missing or has no '{DIGEST_PREFIX.strip()}' line")
        elif have != want:
            problems.append(f"{path.relative_to(root)} was made from other dependencies than pyproject.toml's")
    return problems


def uv_command(uv: str, lock: LockSet, build_in: str, upgrade: bool, extra: list[str]) -> list[str]:
    """The `uv pip compile` call for one lock (the existing lock, if any, is uv's preference: minimal change).

    Paths are relative to the repository, so the locks' `# via` comments name no machine's folders.
    """
    cmd = [uv, "pip", "compile", "--quiet", "--universal", "--generate-hashes", "--no-header",
           "--native-tls", "--python-version", "3.11", "--output-file", f"requirements/{lock.name}.lock",
           "pyproject.toml", build_in]
    for extra_name in lock.extras:
        cmd += ["--extra", extra_name]
    if lock.constrained_by:
        cmd += ["--constraint", f"requirements/{lock.constrained_by}.lock"]
    if upgrade:
        cmd.append("--upgrade")
    return cmd + extra


def header(lock: LockSet, digest: str) -> str:
    """The comment block a lock starts with."""
    covers = " + ".join(["runtime", *lock.extras])
    return (f"{DIGEST_PREFIX}{digest}\n"
            f"# {lock.name}.lock: {covers} (and the build backend): exact versions with sha256 hashes, valid for\n"
            "# every Python in requires-python. Made by `make lock` (tools/lock.py, uv); do not edit by hand.\n")


def compile_locks(uv: str, upgrade: bool, extra: list[str]) -> None:
    """Write every lock under requirements/, each with its inputs digest on top."""
    pyproject = read_pyproject()
    digest = inputs_digest(pyproject)
    LOCK_DIR.mkdir(exist_ok=True)
    build_in = LOCK_DIR / "build-system.requires"  # a temporary input, named as the locks' comments show it
    build_in.write_text("\n".join(pyproject.get("build-system", {}).get("requires", [])) + "\n")
    try:
        for lock in LOCKS:
            subprocess.run(uv_command(uv, lock, "requirements/build-system.requires", upgrade, extra),
                           check=True, cwd=ROOT)
            lock.path.write_text(header(lock, digest) + lock.path.read_text())
            print(f"requirements/{lock.name}.lock: {count_pins(lock.path)} packages")
    finally:
        build_in.unlink()


def count_pins(path: Path) -> int:
    """How many `name==version` lines a lock holds."""
    return sum(1 for line in path.read_text().splitlines() if "==" in line and not line.startswith((" ", "#")))


def main(argv: list[str] | None = None) -> int:
    """Command line: `compile` or `check`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    comp = sub.add_parser("compile", help="write requirements/*.lock with uv")
    comp.add_argument("--uv", required=True, help="the uv executable")
    comp.add_argument("--upgrade", action="store_true", help="newest versions within pyproject's ranges")
    comp.add_argument("uv_args", nargs="*", help="passed to uv pip compile (after --)")
    sub.add_parser("check", help="exit 1 when a lock was not made from pyproject.toml's dependencies")
    args = parser.parse_args(argv)
    if args.command == "compile":
        compile_locks(args.uv, args.upgrade, args.uv_args)
        return 0
    problems = stale_locks()
    for problem in problems:
        print(f"{problem}: run `make lock`", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
