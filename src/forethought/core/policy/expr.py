"""A small, safe expression language for playbook conditions.

A condition is a whitelisted subset of Python expression syntax, parsed with :func:`ast.parse`,
checked against a :class:`Schema` and compiled once into a tree of closures: evaluating never
walks the ast again and never calls ``eval``.

>>> schema = Schema(frozenset({"scores.dropoff", "profile.plan"}), frozenset({"profile.attributes"}), {})
>>> rule = compile_expression('scores.dropoff >= 0.8 and profile.plan in ["pro", "team"]', schema)
>>> rule.holds({"scores": {"dropoff": 0.93}, "profile": {"plan": "pro"}})
True
>>> rule.holds({"scores": {}, "profile": {"plan": "pro"}})   # a missing score never matches
False
>>> compile_expression('profile.attributes["tier"] or days(2)', schema).evaluate({})
172800.0
>>> compile_expression("scores.dropof > 0.5", schema)
Traceback (most recent call last):
...
forethought.core.policy.expr.ExpressionError: unknown name 'scores.dropof' (did you mean 'scores.dropoff'?)
>>> compile_expression("scores.dropoff ** 2 > 0.5", schema)
Traceback (most recent call last):
...
forethought.core.policy.expr.ExpressionError: operator '**' is not allowed (column 16)

Allowed: literals (numbers, strings, ``True``/``true``, ``False``/``false``, ``None``/``null``,
lists, tuples); dotted names and string keys (``a.b["c"]`` is ``a.b.c``); ``and or not``;
``== != < <= > >= in not in``, ``is None``, ``is not None``, chains (``1 < x <= 3``);
``+ - * / // %``, unary ``- +``; ``a if c else b``; positional calls to ``abs days hours len
lower max min minutes round`` (``days(n)`` is ``n * 86400.0``) and to ``Schema.functions``
(which shadow them). All else, ``**`` included (unbounded cost), is an :class:`ExpressionError`
whose column counts characters from the start of the source, from 1.

Missing data (``None``) is not an error, as conditions run against partial data. A name with a
missing key or a non-mapping on its path reads as ``None``. ``< <= > >=`` with a ``None``
operand are False (``== !=`` are Python's). ``in`` and ``not in`` are both False when the
container is ``None``, or the item is ``None`` and the container a string. Arithmetic with a
``None`` operand, division and ``%`` by zero, and built-ins given a ``None`` argument (``len``
too; ``min``/``max`` also of a list holding one) give ``None``; schema functions get it as is.
A ``TypeError``, ``ValueError`` or ``OverflowError`` from any function is an evaluation error.

Arithmetic wants numbers (``bool`` counts, as in Python); ``+`` also joins two strings. Other
mixes (``"a" * 2``, ``"a" + 1``) and failed comparisons (``"a" < 1``) raise
:class:`EvaluationError`, which quotes the source.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from forethought.core.policy.expr_ops import (
    ALIASES,
    ARITHMETIC,
    BUILTINS,
    COMPARISONS,
    CONSTRUCTS,
    NUMBER,
    REJECTED_OPERATORS,
    Fault,
    kind_of,
    lookup,
)

__all__ = ["EvaluationError", "Expression", "ExpressionError", "Schema", "compile_expression"]

MAX_LENGTH = 1000
MAX_NODES = 200

Env = Mapping[str, Any]
Run = Callable[[Env], Any]


class ExpressionError(ValueError):
    """Uncompilable source; ``column`` is 1-based or None, and ends the text unless a name is quoted."""

    def __init__(self, message: str, column: int | None = None, *, locate: bool = True) -> None:
        super().__init__(f"{message} (column {column})" if locate and column else message)
        self.message, self.column = message, column


class EvaluationError(ValueError):
    """A type error met while evaluating (e.g. ``"a" < 1``); the message quotes the source."""


@dataclass(frozen=True)
class Schema:
    """What conditions may read (exact dotted names, or anything under an open prefix) and call."""

    names: frozenset[str]
    open_prefixes: frozenset[str] = frozenset()
    functions: Mapping[str, Callable[..., Any]] = field(default_factory=dict)

    def knows(self, name: str) -> bool:
        """Whether ``name`` may be read."""
        return name in self.names or any(name == p or name.startswith(f"{p}.") for p in self.open_prefixes)


@dataclass(frozen=True)
class Expression:
    """A compiled condition, to evaluate against nested mappings as often as needed."""

    source: str
    names: frozenset[str]
    _run: Run = field(repr=False, compare=False)

    def evaluate(self, env: Env) -> Any:
        """The value over ``env``; a type error raises :class:`EvaluationError`."""
        try:
            return self._run(env)
        except Fault as fault:
            raise EvaluationError(f"{fault} in {self.source!r}") from None

    def holds(self, env: Env) -> bool:
        """Whether the condition is true over ``env`` (Python truthiness of the value)."""
        return bool(self.evaluate(env))


class _Compiler:
    """Turns a checked ast into closures, collecting the names it reads."""

    def __init__(self, text: str, lead: int, schema: Schema) -> None:
        self.text, self.lead, self.schema = text, lead, schema
        self.functions = {**BUILTINS, **schema.functions}
        self.names: set[str] = set()
        self.rules: dict[type[ast.AST], Callable[[Any], Run]] = {
            ast.Constant: self.constant, ast.Name: self.reference, ast.Attribute: self.reference,
            ast.Subscript: self.reference, ast.List: self.sequence, ast.Tuple: self.sequence,
            ast.BoolOp: self.boolean, ast.UnaryOp: self.unary, ast.BinOp: self.binary,
            ast.Compare: self.comparison, ast.IfExp: self.conditional, ast.Call: self.call,
        }

    def column(self, lineno: int, col: int) -> int:
        """1-based column in the source of an ast position (``col`` counts utf-8 bytes)."""
        line = _NEWLINE.split(self.text)[lineno - 1]
        return _column(self.text, self.lead, lineno, len(line.encode()[:col].decode(errors="ignore")))

    def error(self, message: str, node: ast.AST, locate: bool = True) -> ExpressionError:
        line, col = getattr(node, "lineno", None), getattr(node, "col_offset", None)
        where = None if line is None or col is None else self.column(line, col)
        return ExpressionError(message, where, locate=locate)

    def compile(self, node: ast.AST) -> Run:
        rule = self.rules.get(type(node))
        if rule is None:
            construct = CONSTRUCTS.get(type(node).__name__, type(node).__name__)
            raise self.error(f"{construct} is not allowed", node)
        return rule(node)

    def constant(self, node: ast.Constant) -> Run:
        value = node.value
        if value is not None and not isinstance(value, (int, float, str)):
            raise self.error(f"{kind_of(value)} literal is not allowed", node)
        return lambda env: value

    def reference(self, node: ast.expr) -> Run:
        if isinstance(node, ast.Name) and node.id in ALIASES:
            value = ALIASES[node.id]
            return lambda env: value
        path = tuple(self.path(node))
        name = ".".join(path)
        if any(not part or part.startswith("_") or "__" in part for part in path):
            raise self.error(f"name '{name}' is not allowed: no part may be empty, "
                             "start with '_' or contain '__'", node, locate=False)
        if not self.schema.knows(name):
            close = difflib.get_close_matches(name, self.schema.names | self.schema.open_prefixes, 1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise self.error(f"unknown name '{name}'{hint}", node, locate=False)
        self.names.add(name)
        return lambda env: lookup(env, path)

    def path(self, node: ast.expr) -> list[str]:
        if isinstance(node, ast.Name):
            return [node.id]
        if isinstance(node, ast.Attribute):
            return [*self.path(node.value), node.attr]
        if isinstance(node, ast.Subscript):
            key = node.slice
            if isinstance(key, ast.Slice):
                raise self.error("slice is not allowed", key)
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                raise self.error("only a string key is allowed in [...]", key)
            return [*self.path(node.value), key.value]
        if isinstance(node, ast.Call):
            raise self.error("attribute or key on a call result is not allowed", node)
        raise self.error("attributes and keys are only allowed on names", node)

    def sequence(self, node: ast.List | ast.Tuple) -> Run:
        items = [self.compile(item) for item in node.elts]
        build: Callable[[Any], Any] = list if isinstance(node, ast.List) else tuple
        return lambda env: build([item(env) for item in items])

    def boolean(self, node: ast.BoolOp) -> Run:
        parts = [self.compile(value) for value in node.values]
        stop_when = isinstance(node.op, ast.Or)  # `or` stops at a truthy value, `and` at a falsy one

        def run(env: Env) -> Any:
            for part in parts:
                if bool(value := part(env)) is stop_when:
                    break
            return value
        return run

    def unary(self, node: ast.UnaryOp) -> Run:
        if isinstance(node.op, ast.Invert):
            raise self.error("operator '~' is not allowed", node)
        operand = self.compile(node.operand)
        if isinstance(node.op, ast.Not):
            return lambda env: not operand(env)
        sign = -1 if isinstance(node.op, ast.USub) else 1

        def run(env: Env) -> Any:
            if (value := operand(env)) is None or isinstance(value, NUMBER):
                return None if value is None else -value if sign < 0 else +value
            raise Fault(f"cannot apply unary '{'-' if sign < 0 else '+'}' to {kind_of(value)}")
        return run

    def binary(self, node: ast.BinOp) -> Run:
        apply = ARITHMETIC.get(type(node.op))
        if apply is None:  # point at the operator, which the ast does not locate
            symbol = REJECTED_OPERATORS.get(type(node.op), type(node.op).__name__)
            start = self.column(node.left.end_lineno or node.lineno, node.left.end_col_offset or 0)
            found = self.lead + self.text.find(symbol, start - 1 - self.lead) + 1
            raise ExpressionError(f"operator '{symbol}' is not allowed", max(found, start))
        left, right = self.compile(node.left), self.compile(node.right)
        return lambda env: apply(left(env), right(env))

    def comparison(self, node: ast.Compare) -> Run:
        for op, right in zip(node.ops, node.comparators):
            is_none = isinstance(right, ast.Constant | ast.Name) and ast.unparse(right) in ("None", "null")
            if isinstance(op, ast.Is | ast.IsNot) and not is_none:
                raise self.error("'is' and 'is not' may only compare with None", right)
        first = self.compile(node.left)
        steps = [(COMPARISONS[type(op)], self.compile(right))
                 for op, right in zip(node.ops, node.comparators)]

        def run(env: Env) -> Any:
            left, result = first(env), True
            for test, operand in steps:
                right = operand(env)
                if not (result := test(left, right)):
                    return result
                left = right
            return result
        return run

    def conditional(self, node: ast.IfExp) -> Run:
        test, body, orelse = (self.compile(part) for part in (node.test, node.body, node.orelse))
        return lambda env: body(env) if test(env) else orelse(env)

    def call(self, node: ast.Call) -> Run:
        if isinstance(node.func, ast.Attribute):
            raise self.error(f"method call '{ast.unparse(node.func)}()' is not allowed", node)
        if not isinstance(node.func, ast.Name):
            self.compile(node.func)  # names the construct (e.g. lambda) when it is not allowed
            raise self.error("only named functions can be called", node)
        if node.keywords:
            raise self.error("keyword arguments are not allowed", node.keywords[0])
        name = node.func.id
        if name not in self.functions:
            known = ", ".join(sorted(self.functions))
            raise self.error(f"unknown function '{name}' (known: {known})", node, locate=False)
        function, args = self.functions[name], [self.compile(arg) for arg in node.args]
        try:
            inspect.signature(function).bind(*args)
        except TypeError as error:
            raise self.error(f"wrong arguments to {name}(): {error}", node) from None
        except ValueError:  # a callable without a signature: let it be
            pass
        passes_none = name in self.schema.functions

        def run(env: Env) -> Any:
            values = [arg(env) for arg in args]
            if not passes_none and any(value is None for value in values):
                return None
            try:
                return function(*values)
            except (TypeError, ValueError, OverflowError) as error:
                raise Fault(f"{name}() failed: {error}") from None
        return run


_NEWLINE = re.compile(r"\r\n|\r|\n")


def _column(text: str, lead: int, lineno: int, col: int) -> int:
    """1-based column in the source of 0-based character ``col`` of line ``lineno`` of ``text``."""
    starts = [0, *(match.end() for match in _NEWLINE.finditer(text))]  # Python ends lines at \r\n, \r or \n
    return lead + starts[lineno - 1] + col + 1


def _parse(source: str) -> tuple[ast.Expression, str, int]:
    """The ast of the stripped source, the stripped text and how much was stripped in front."""
    if len(source) > MAX_LENGTH:
        raise ExpressionError(f"expression is longer than {MAX_LENGTH} characters ({len(source)})")
    text, lead = source.strip(), len(source) - len(source.lstrip())
    if not text:
        raise ExpressionError("expression is empty")
    try:
        with warnings.catch_warnings(action="ignore"):  # e.g. SyntaxWarning for `x is 1`, refused below
            tree = ast.parse(text, mode="eval")
    except SyntaxError as error:
        lines, where = text.split("\n"), None
        if error.lineno and error.offset is not None and error.lineno <= len(lines):
            end = len(lines[error.lineno - 1])  # an offset of 0 or past the line: its end
            where = _column(text, lead, error.lineno, error.offset - 1 if 0 < error.offset <= end else end)
        raise ExpressionError(f"syntax error: {error.msg}", where) from None
    except (ValueError, RecursionError, MemoryError) as error:
        raise ExpressionError(f"cannot parse expression: {str(error) or 'too deeply nested'}") from None
    count = sum(isinstance(node, ast.expr) for node in ast.walk(tree))
    if count > MAX_NODES:
        raise ExpressionError(f"expression is too complex ({count} nodes, limit {MAX_NODES})")
    return tree, text, lead


def compile_expression(source: str, schema: Schema) -> Expression:
    """Check ``source`` against ``schema`` and compile it, or raise :class:`ExpressionError`."""
    tree, text, lead = _parse(source)
    compiler = _Compiler(text, lead, schema)
    run = compiler.compile(tree.body)
    return Expression(source, frozenset(compiler.names), run)
