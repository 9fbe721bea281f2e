"""Read JSON-lines inputs (optionally gzip) and return their records in event-time order.

Inputs may come in any order. Lines are sorted in chunks held in memory; when a run has more
than one chunk, sorted chunks spill to temporary files and are merged, so memory stays bounded
however large the input is. A line whose time cannot be read is returned at once, as invalid.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "in.jsonl"
>>> _ = path.write_text('{"occurred_at":"2026-01-02T00:00:00Z"}\\nnot json\\n{"occurred_at":"2026-01-01T00:00:00Z"}\\n')
>>> [(line.line_no, line.invalid) for line in sorted_lines([path])]
[(2, 'not_json'), (3, None), (1, None)]
"""

from __future__ import annotations

import gzip
import heapq
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path
from typing import IO, Any

import orjson

from forethought.contracts.decode import TIME_FIELDS, event_time  # noqa: F401 - re-exported for callers


@dataclass(frozen=True, slots=True)
class Line:
    """One input line: where it came from, its event time and bytes, or why it is unusable."""

    ts: float
    source: int
    line_no: int
    raw: bytes
    invalid: str | None = None
    detail: str = ""


def open_input(path: Path) -> gzip.GzipFile | BufferedReader:
    """Open ``path`` for reading bytes, transparently un-gzipping ``*.gz``."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def sorted_lines(paths: list[Path], chunk: int = 250_000, on_bytes: Callable[[int], None] | None = None,
                 on_scanned: Callable[[int], None] | None = None) -> Iterator[Line]:
    """Every line of ``paths``: invalid ones as met, valid ones merged in (time, file, line) order.

    ``on_bytes(n)``: ``n`` more bytes of the files *as stored* were read (compressed bytes of a ``.gz``),
    so progress over the sum of the files' sizes ends at 100 %. ``on_scanned(lines)``: every file has
    been read, ``lines`` lines (blank ones aside) will have been returned in all.
    """
    with tempfile.TemporaryDirectory(prefix="forethought-replay-") as spill:
        runs: list[Path] = []
        buffer: list[Line] = []
        scanned = 0
        for line in _scan(paths, on_bytes):
            scanned += 1
            if line.invalid is not None:
                yield line
                continue
            buffer.append(line)
            if len(buffer) >= chunk:
                runs.append(_spill(buffer, Path(spill), len(runs)))
                buffer = []
        buffer.sort(key=_order)
        if on_scanned is not None:
            on_scanned(scanned)
        if not runs:
            yield from buffer
            return
        yield from heapq.merge(*(_read_run(run) for run in runs), iter(buffer), key=_order)


def _scan(paths: list[Path], on_bytes: Callable[[int], None] | None) -> Iterator[Line]:
    for source, path in enumerate(paths):
        with open_input(path) as handle:
            stored: Any = handle.fileobj if isinstance(handle, gzip.GzipFile) else handle  # at: bytes as stored
            told = 0
            for line_no, raw in enumerate(handle, start=1):
                if on_bytes is not None and not line_no % 1024:
                    told = _tell(stored, told, on_bytes)
                raw = raw.strip()
                if not raw:
                    continue
                try:
                    yield Line(event_time(raw), source, line_no, raw)
                except orjson.JSONDecodeError as exc:
                    yield Line(0.0, source, line_no, raw, "not_json", str(exc))
                except (ValueError, TypeError) as exc:
                    yield Line(0.0, source, line_no, raw, "schema", str(exc))
            if on_bytes is not None:
                on_bytes(max(0, path.stat().st_size - told))


def _tell(stored: IO[bytes], told: int, on_bytes: Callable[[int], None]) -> int:
    position = stored.tell()
    if position > told:
        on_bytes(position - told)
    return max(position, told)


def _order(line: Line) -> tuple[float, int, int]:
    return (line.ts, line.source, line.line_no)


def _spill(buffer: list[Line], folder: Path, index: int) -> Path:
    buffer.sort(key=_order)
    path = folder / f"run-{index}.jsonl"
    with open(path, "wb") as out:
        for line in buffer:
            out.write(orjson.dumps([line.ts, line.source, line.line_no, line.raw.decode()]) + b"\n")
    return path


def _read_run(path: Path) -> Iterator[Line]:
    with open(path, "rb") as handle:
        for raw in handle:
            ts, source, line_no, text = orjson.loads(raw)
            yield Line(ts, source, line_no, text.encode())
