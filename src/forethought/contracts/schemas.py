"""The published contract files of ``schemas/``: the JSON Schemas (tolerant and strict variants of the
inputs), an example per record kind and the AsyncAPI document (``asyncapi.yaml``).

``forethought schemas export`` writes :func:`render` into ``schemas/``; ``forethought schemas check``
and a test fail when the files drift from the models and the catalogue or an example stops validating.

>>> files = render()
>>> sorted(name for name in files if not name.startswith("examples/"))[:3]
['asyncapi.yaml', 'deadletter.schema.json', 'inbound-event.schema.json']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from forethought.contracts import asyncapi
from forethought.contracts.wire_schemas import EXAMPLES, INPUTS, SCHEMAS, schema_for, schema_name_for_kind

__all__ = ["EXAMPLES", "drift", "export", "render", "schema_for", "schema_name_for_kind"]


def render() -> dict[str, str]:
    """Every file of ``schemas/``: relative path → text (the JSON Schemas, examples and ``asyncapi.yaml``)."""
    files = {f"{name}.schema.json": _dump(schema_for(name)) for name in SCHEMAS}
    files.update({f"{name}.strict.schema.json": _dump(schema_for(name, strict=True)) for name in INPUTS})
    files.update({f"examples/{kind}.json": _dump(example) for kind, example in EXAMPLES.items()})
    files[asyncapi.ASYNCAPI_FILE] = asyncapi.render()
    return files


def export(directory: Path) -> list[Path]:
    """Write :func:`render` into ``directory``; returns the paths written."""
    written = []
    for relative, text in render().items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def drift(directory: Path) -> list[str]:
    """Files in ``directory`` that differ from (or are missing against) the models."""
    return [rel for rel, text in render().items()
            if not (directory / rel).exists() or (directory / rel).read_text() != text]


def _dump(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
