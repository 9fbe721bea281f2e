"""What the wheel promises its users: the package is typed (PEP 561)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "forethought"


def test_the_package_is_marked_typed_and_the_marker_goes_into_the_wheel() -> None:
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert (PACKAGE / "py.typed").is_file()
    assert "py.typed" in package_data["forethought"]

