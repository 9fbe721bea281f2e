"""Reading playbook files: YAML in, compiled :class:`Rules` out, errors with file, line and field.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "playbooks.yaml"
>>> _ = path.write_text("playbooks:\\n  - name: burst\\n    on: [error_burst]\\n"
...                     "    channels: [in_app]\\n    priority: 170\\n")
>>> load_rules(path)
Traceback (most recent call last):
...
forethought.ops.playbooks.PlaybookFileError: ...playbooks.yaml, line 5, playbooks.0.priority: Input should be ... 100
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from forethought.contracts.playbooks import PlaybookFile
from forethought.core.policy.rules import RuleError, Rules, builtin_rules, compile_rules


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false, so a key named ``on`` stays the string "on"."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


class PlaybookFileError(ValueError):
    """A playbook file that cannot be used; the message names the file, line and field."""


BUILTIN = "builtin"


def load_rules(path: Path) -> Rules:
    """Read, validate and compile ``path``; raises :class:`PlaybookFileError`.

    The name ``builtin`` gives one pass-through playbook per detector with no suppression
    (what detection-quality runs and detector tests want).
    """
    if str(path) == BUILTIN:
        return builtin_rules()
    try:
        text = path.read_text()
    except OSError as error:
        raise PlaybookFileError(f"{path}: cannot read playbooks: {error.strerror or error}") from None
    return parse_rules(text, str(path))


def parse_rules(text: str, name: str = "<playbooks>") -> Rules:
    """Validate and compile playbook YAML ``text`` (``name`` is used in messages)."""
    try:
        data, root = yaml.load(text, Loader=_Loader), yaml.compose(text, Loader=_Loader)  # noqa: S506 - safe subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise PlaybookFileError(f"{name}{where}: not valid YAML: {getattr(error, 'problem', error)}") from None
    if not isinstance(data, dict):
        raise PlaybookFileError(f"{name}: expected a mapping with 'playbooks:' at the top")
    try:
        return compile_rules(PlaybookFile.model_validate(data))
    except ValidationError as error:
        problems = [_locate(name, root, tuple(e["loc"]), e["msg"]) for e in error.errors()]
        raise PlaybookFileError("; ".join(problems)) from None
    except RuleError as error:
        raise PlaybookFileError(_locate(name, root, error.path, error.message)) from None


def _locate(name: str, root: yaml.Node | None, loc: tuple[Any, ...], message: str) -> str:
    """``file, line N, a.b.c: message``: the line of the deepest node that ``loc`` reaches."""
    node, line = root, None
    for part in loc:
        child = _child(node, part)
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    if line is None and node is not None:
        line = node.start_mark.line + 1
    path = ".".join(str(p) for p in loc)
    return f"{name}{f', line {line}' if line else ''}{f', {path}' if path else ''}: {message}"


def _child(node: yaml.Node | None, part: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        return next((value for key, value in node.value if key.value == str(part)), None)
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        child: yaml.Node = node.value[part]
        return child
    return None


@dataclass
class PlaybookSource:
    """The playbooks a worker runs, and the file they came from; :meth:`refresh` reloads on change.

    An invalid new file keeps the running playbooks; :attr:`error` says why.
    """

    path: Path
    rules: Rules
    stamp: tuple[float, int] = (0.0, 0)
    error: str | None = None
    loads: int = field(default=1)

    @classmethod
    def open(cls, path: Path) -> PlaybookSource:
        """Load ``path`` at start-up; an invalid file raises (fail fast)."""
        return cls(path, load_rules(path), _stamp(path))

    def refresh(self, force: bool = False) -> bool | None:
        """Reload when the file changed (or ``force``): True reloaded, False rejected, None unchanged."""
        stamp = _stamp(self.path)
        if stamp == self.stamp and not force:
            return None
        self.stamp = stamp
        try:
            self.rules = load_rules(self.path)
        except PlaybookFileError as error:
            self.error = str(error)
            return False
        self.error, self.loads = None, self.loads + 1
        return True


def _stamp(path: Path) -> tuple[float, int]:
    try:
        stat = path.stat()
    except OSError:
        return (0.0, 0)
    return (stat.st_mtime, stat.st_size)
