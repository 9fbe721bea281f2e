"""Was this virtual environment made with the Python running this script? (stdlib only)

`make install` runs it with $(PYTHON) before installing: a venv made with another Python (another
version, or another interpreter of the same version) is removed and made anew, rather than kept until
someone deletes it by hand. It reads the venv's pyvenv.cfg (`version`, and `executable` or `home`) and
checks that the venv's own python still starts (its base interpreter may have been removed).

    python tools/venv_check.py .venv     # exit 0: keep it; exit 1: one line saying why not; 2: no venv

>>> mismatch({"version": "3.12.1", "executable": "/x/python3.12"}, ("3.11", "/x/python3.11"))
'made with Python 3.12 (/x/python3.12), not 3.11 (/x/python3.11)'
>>> mismatch({"version": "3.11.2", "home": "/usr/bin"}, ("3.11", "/opt/py/bin/python3.11"))
'made with Python 3.11 (/usr/bin), not 3.11 (/opt/py/bin/python3.11)'
>>> mismatch({"version": "3.11.9", "executable": "/x/python3.11"}, ("3.11", "/x/python3.11")) is None
True
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def read_cfg(path: Path) -> dict[str, str]:
    """pyvenv.cfg's `key = value` lines (virtualenv's `version_info` read as `version`)."""
    cfg: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            cfg[key.strip()] = value.strip()
    if "version" not in cfg and "version_info" in cfg:
        cfg["version"] = cfg["version_info"]
    return cfg


def this_python() -> tuple[str, str]:
    """(major.minor, real path of the base interpreter) of the Python running this."""
    base = getattr(sys, "_base_executable", sys.executable)
    return f"{sys.version_info[0]}.{sys.version_info[1]}", os.path.realpath(base)


def mismatch(cfg: dict[str, str], want: tuple[str, str]) -> str | None:
    """Why a venv with this pyvenv.cfg was not made with `want` (version, interpreter); None if it was."""
    version = ".".join(cfg.get("version", "unknown").split(".")[:2])
    made_with = cfg.get("executable") or cfg.get("home", "")
    want_version, want_exe = want
    if "executable" in cfg:
        same_interpreter = os.path.realpath(made_with) == want_exe
    else:  # older venvs record only the interpreter's folder
        same_interpreter = os.path.realpath(made_with) == os.path.dirname(want_exe) or made_with == os.path.dirname(
            want_exe
        )
    if version == want_version and same_interpreter:
        return None
    return f"made with Python {version} ({made_with}), not {want_version} ({want_exe})"


def problem(venv: Path) -> str | None:
    """Why `venv` must be made anew for this Python, or None when it can stay."""
    cfg_path = venv / "pyvenv.cfg"
    if not cfg_path.exists():
        return "has no pyvenv.cfg (not a virtual environment)"
    reason = mismatch(read_cfg(cfg_path), this_python())
    if reason:
        return reason
    try:
        subprocess.run([str(venv / "bin" / "python"), "-c", ""], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return "has a python that does not start (its interpreter was removed?)"
    return None


def main(argv: list[str]) -> int:
    """Exit 0 when the venv fits this Python, 1 (and say why) when it does not, 2 when there is none."""
    venv = Path(argv[1] if len(argv) > 1 else ".venv")
    if not venv.exists():
        return 2
    reason = problem(venv)
    if reason:
        print(f"{venv} was {reason}" if reason.startswith("made") else f"{venv} {reason}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
