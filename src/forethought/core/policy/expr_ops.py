"""The operators and built-in functions of the playbook condition language
(:mod:`forethought.core.policy.expr`): what each allowed ast operator and call does, with the
language's rules for missing data (``None``) and mixed types.

>>> COMPARISONS[ast.Lt](None, 3), ARITHMETIC[ast.Div](1, 0), BUILTINS["days"](2)
(False, None, 172800.0)
>>> ARITHMETIC[ast.Add]("a", 1)
Traceback (most recent call last):
...
forethought.core.policy.expr_ops.Fault: cannot apply '+' to str and int
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

NUMBER = (int, float)
Binary = Callable[[Any, Any], Any]


class Fault(Exception):
    """Raised inside the closures; :meth:`forethought.core.policy.expr.Expression.evaluate` adds the source."""


def kind_of(value: Any) -> str:
    return type(value).__name__


def lookup(env: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        env = env.get(key) if isinstance(env, Mapping) else None
    return env


def _arithmetic(symbol: str, apply: Binary) -> Binary:
    def checked(left: Any, right: Any) -> Any:
        if left is None or right is None:
            return None
        joins_text = symbol == "+" and isinstance(left, str) and isinstance(right, str)
        if not (joins_text or (isinstance(left, NUMBER) and isinstance(right, NUMBER))):
            raise Fault(f"cannot apply '{symbol}' to {kind_of(left)} and {kind_of(right)}")
        try:
            return apply(left, right)
        except ZeroDivisionError:
            return None
        except (OverflowError, ValueError) as error:
            raise Fault(f"'{symbol}' failed: {error}") from None
    return checked


def _ordering(symbol: str, compare: Binary) -> Binary:
    def checked(left: Any, right: Any) -> bool:
        try:
            return left is not None and right is not None and bool(compare(left, right))
        except TypeError:
            raise Fault(f"cannot compare {kind_of(left)} and {kind_of(right)} with '{symbol}'") from None
    return checked


def _membership(wanted: bool) -> Binary:
    def checked(item: Any, container: Any) -> bool:
        if container is None or (item is None and isinstance(container, str)):
            return False
        try:
            return (item in container) is wanted
        except TypeError:
            raise Fault(f"cannot look for {kind_of(item)} in {kind_of(container)}") from None
    return checked


ARITHMETIC: dict[type[ast.AST], Binary] = {
    ast.Add: _arithmetic("+", operator.add), ast.Sub: _arithmetic("-", operator.sub),
    ast.Mult: _arithmetic("*", operator.mul), ast.Div: _arithmetic("/", operator.truediv),
    ast.FloorDiv: _arithmetic("//", operator.floordiv), ast.Mod: _arithmetic("%", operator.mod),
}
REJECTED_OPERATORS: dict[type[ast.AST], str] = {
    ast.Pow: "**", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|", ast.BitXor: "^",
    ast.BitAnd: "&", ast.MatMult: "@",
}
COMPARISONS: dict[type[ast.AST], Binary] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Is: operator.is_, ast.IsNot: operator.is_not,
    ast.Lt: _ordering("<", operator.lt), ast.LtE: _ordering("<=", operator.le),
    ast.Gt: _ordering(">", operator.gt), ast.GtE: _ordering(">=", operator.ge),
    ast.In: _membership(True), ast.NotIn: _membership(False),
}
CONSTRUCTS = {
    "Lambda": "lambda", "ListComp": "list comprehension", "SetComp": "set comprehension",
    "DictComp": "dict comprehension", "GeneratorExp": "generator expression",
    "JoinedStr": "f-string", "NamedExpr": "assignment expression ':='",
    "Starred": "starred expression", "Dict": "dict literal", "Set": "set literal", "Slice": "slice",
}
ALIASES = {"true": True, "false": False, "null": None}


def _extreme(pick: Callable[[Any], Any]) -> Callable[..., Any]:
    def chosen(first: Any, *rest: Any) -> Any:  # min(a, b, ...) or min(list)
        values = tuple(first) if not rest and isinstance(first, (list, tuple)) else (first, *rest)
        return None if not values or any(value is None for value in values) else pick(values)
    return chosen


def _typed(wanted: type | tuple[type, ...], convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def checked(value: Any) -> Any:
        if not isinstance(value, wanted):
            raise TypeError(f"needs a {'string' if wanted is str else 'number'}, not {kind_of(value)}")
        return convert(value)
    return checked


BUILTINS: dict[str, Callable[..., Any]] = {
    "abs": abs, "days": _typed(NUMBER, lambda n: n * 86400.0), "len": len,
    "hours": _typed(NUMBER, lambda n: n * 3600.0), "minutes": _typed(NUMBER, lambda n: n * 60.0),
    "lower": _typed(str, str.lower), "max": _extreme(max), "min": _extreme(min), "round": round,
}
