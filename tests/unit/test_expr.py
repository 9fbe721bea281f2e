"""The playbook condition language: what it accepts, what it refuses, and how it treats missing data.

Python's own ``eval`` appears here only as the reference for integer arithmetic and comparisons;
the module under test never calls it.
"""

from __future__ import annotations

import ast
import builtins
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forethought.core.policy.expr import (
    EvaluationError,
    Expression,
    ExpressionError,
    Schema,
    compile_expression,
)

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)


class Boom(Exception):
    """Raised by the ``boom()`` test function: calling it means short-circuiting failed."""


def boom() -> None:
    raise Boom


CALLS: list[Any] = []


def echo(value: Any) -> Any:
    """Records what it was given, so tests can see what schema functions receive."""
    CALLS.append(value)
    return value


FUNCTIONS = {"used": lambda feature: feature in {"sso", "export"}, "boom": boom, "echo": echo}
NAMES = frozenset({"detector", "scores.dropoff", "scores.churn", "profile.plan", "profile.seats",
                   "profile.tags", "x", "y", "z"})
SCHEMA = Schema(NAMES, frozenset({"profile.attributes", "context"}), FUNCTIONS)
ENV: dict[str, Any] = {
    "detector": "dropoff",
    "scores": {"dropoff": 0.93, "churn": 0.2},
    "profile": {"plan": "pro", "seats": 12, "tags": ["beta", "vip"],
                "attributes": {"tier": "gold", "region": {"country": "NZ"}}},
    "context": {"channel": "email"},
    "x": 2, "y": 5, "z": 0,
}


def value(source: str, env: dict[str, Any] | None = None) -> Any:
    return compile_expression(source, SCHEMA).evaluate(ENV if env is None else env)


def rejection(source: str, schema: Schema = SCHEMA) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        compile_expression(source, schema)
    return caught.value


# --- what the language accepts ---------------------------------------------------------------

@pytest.mark.parametrize(("source", "expected"), [
    ("42", 42), ("-2.5", -2.5), ("'pro'", "pro"), ('"pro"', "pro"),
    ("True", True), ("true", True), ("False", False), ("false", False),
    ("None", None), ("null", None), ("[1, 'a', null]", [1, "a", None]), ("(1, 2)", (1, 2)),
    ("[]", []), ("[x, y + 1]", [2, 6]),
])
def test_literals_and_their_lowercase_aliases(source: str, expected: Any) -> None:
    result = value(source)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(("source", "expected"), [
    ("detector", "dropoff"),
    ("scores.dropoff", 0.93),
    ("profile.attributes.tier", "gold"),
    ('profile.attributes["tier"]', "gold"),
    ('profile["attributes"].region["country"]', "NZ"),
    ("profile.attributes.region.country", "NZ"),
    ("context", {"channel": "email"}),
    ("context.channel", "email"),
])
def test_dotted_names_and_string_keys_walk_nested_mappings(source: str, expected: Any) -> None:
    assert value(source) == expected


def test_a_dict_env_nested_three_levels_is_read_through() -> None:
    env = {"profile": {"attributes": {"tier": "gold"}}}
    rule = compile_expression('profile.attributes.tier == "gold"', SCHEMA)
    assert rule.holds(env)
    assert not rule.holds({"profile": {"attributes": {"tier": "silver"}}})


@pytest.mark.parametrize("env", [
    {}, {"profile": {}}, {"profile": None}, {"profile": {"attributes": None}},
    {"profile": "not a mapping"}, {"profile": {"attributes": ["a", "list"]}},
    {"profile": {"attributes": {"region": 7}}},
])
def test_a_missing_key_or_a_non_mapping_at_any_level_reads_as_none(env: dict[str, Any]) -> None:
    assert value("profile.attributes.region.country", env) is None
    assert value("profile.attributes.region.country is None", env) is True


def test_objects_in_the_env_are_never_read_through_attributes() -> None:
    class Secretive:
        channel = "leaked"
    assert value("context.channel", {"context": Secretive()}) is None


def test_names_reports_the_dotted_names_read_and_nothing_else() -> None:
    source = 'scores.dropoff > 0.5 and profile.attributes["tier"] == "gold" and used(detector) and true'
    rule = compile_expression(source, SCHEMA)
    assert rule.names == frozenset({"scores.dropoff", "profile.attributes.tier", "detector"})
    assert rule.source == source


@pytest.mark.parametrize(("source", "expected"), [
    ("x and y", 5), ("z and y", 0), ("z or y", 5), ("z or null", None), ("not z", True),
    ("not null", True), ("not detector", False), ("x > 1 and y > 1", True),
    ("x > 1 and y > 9 or z == 0", True),
])
def test_boolean_operators_follow_python_truthiness(source: str, expected: Any) -> None:
    assert value(source) == expected


@pytest.mark.parametrize("source", [
    "false and boom()", "z and boom()", "true or boom()", "x or boom()",
    "1 if true else boom()", "boom() if false else 1", "x > 5 > boom()",
])
def test_and_or_conditionals_and_chains_short_circuit(source: str) -> None:
    value(source)  # boom() would raise


@pytest.mark.parametrize(("source", "expected"), [
    ("x == 2", True), ("x != 2", False), ("x < y", True), ("x <= 2", True), ("x > y", False),
    ("y >= 5", True), ("'a' < 'b'", True), ("[1, 2] == [1, 2]", True), ("(1, 2) == [1, 2]", False),
    ("'pro' in ['pro', 'team']", True), ("'vip' in profile.tags", True),
    ("'ops' not in profile.tags", True), ("'ro' in profile.plan", True),
    ("'channel' in context", True), ("1 < x <= 3", True), ("1 < y <= 3", False),
    ("x < y < z", False), ("z < x < y", True), ("x == 2 == 2.0", True),
    ("profile.attributes.nope is None", True), ("profile.plan is not null", True),
    ("profile.plan is None", False),
])
def test_comparisons(source: str, expected: bool) -> None:
    assert value(source) is expected


def test_each_operand_of_a_chain_is_evaluated_once() -> None:
    CALLS.clear()
    assert value("0 < echo(x) < 10") is True
    assert CALLS == [2]


@pytest.mark.parametrize(("source", "expected"), [
    ("x + y", 7), ("y - x", 3), ("x * y", 10), ("y / x", 2.5), ("y // x", 2), ("-y // x", -3),
    ("y % x", 1), ("-7 % 3", 2), ("-x", -2), ("+x", 2), ("x + 0.5", 2.5), ("'a' + 'b'", "ab"),
    ("true + true", 2), ("profile.seats * 2 > 20", True), ("2 + 3 * 4", 14), ("(2 + 3) * 4", 20),
])
def test_arithmetic(source: str, expected: Any) -> None:
    result = value(source)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(("env", "expected"), [
    ({"profile": {"seats": 40}}, "big"), ({"profile": {"seats": 3}}, "small"), ({}, "small"),
])
def test_conditional_expression(env: dict[str, Any], expected: str) -> None:
    assert value("'big' if profile.seats > 10 else 'small'", env) == expected


@pytest.mark.parametrize(("source", "expected"), [
    ("min(3, 1, 2)", 1), ("max(3, 1, 2)", 3), ("max([3, 1, 2])", 3), ("min((4, 2))", 2),
    ("min([])", None), ("abs(-3)", 3), ("len(profile.tags)", 2), ("len('abc')", 3),
    ("round(2.567, 1)", 2.6), ("round(2.5)", 2), ("lower('PrO')", "pro"),
    ("days(2)", 172800.0), ("hours(1.5)", 5400.0), ("minutes(2)", 120.0),
    ("days(1) > hours(23)", True), ("used('sso')", True), ("used(detector)", False),
])
def test_built_in_and_schema_functions(source: str, expected: Any) -> None:
    result = value(source)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize("source", [
    "len(profile.attributes.nope)", "abs(null)", "lower(profile.plan)", "days(profile.seats)",
    "round(null)", "round(2.5, null)", "min(1, null)", "max([1, null])",
])
def test_built_ins_given_none_return_none(source: str) -> None:
    assert value(source, {}) is None


def test_schema_functions_receive_none_as_it_is() -> None:
    CALLS.clear()
    assert value("echo(profile.plan) is None", {}) is True
    assert CALLS == [None]


def test_errors_inside_schema_functions_become_evaluation_errors() -> None:
    with pytest.raises(EvaluationError, match=r"used\(\) failed: unhashable type: 'list'"):
        value("used(profile.tags)")


def test_schema_functions_shadow_built_ins() -> None:
    schema = Schema(frozenset({"x"}), frozenset(), {"len": lambda thing: 99})
    assert compile_expression("len('abc')", schema).evaluate({}) == 99


def test_holds_is_the_truthiness_of_the_value() -> None:
    rule = compile_expression("profile.plan", SCHEMA)
    assert rule.evaluate(ENV) == "pro"
    assert rule.holds(ENV) is True
    assert rule.holds({}) is False


def test_schema_defaults_allow_names_only() -> None:
    schema = Schema(frozenset({"x"}))
    assert compile_expression("x + days(1)", schema).evaluate({"x": 1}) == 86401.0


# --- missing data -----------------------------------------------------------------------------

@pytest.mark.parametrize(("source", "expected"), [
    # ordering with a None operand never matches, whichever way round
    ("scores.dropoff >= 0.8", False), ("scores.dropoff < 0.8", False), ("0.8 > scores.dropoff", False),
    ("null < 1", False), ("1 < scores.dropoff < 2", False), ("not scores.dropoff", True),
    # equality treats None as a value
    ("scores.dropoff == null", True), ("scores.dropoff != 0.8", True), ("scores.dropoff == 0.8", False),
    # arithmetic passes None through
    ("scores.dropoff + 1", None), ("-scores.dropoff", None), ("scores.dropoff * 2 > 1", False),
    ("1 - scores.dropoff", None),
    # membership: an unknown container matches neither way
    ("'vip' in profile.tags", False), ("'vip' not in profile.tags", False),
    ("profile.plan in 'professional'", False), ("profile.plan not in 'professional'", False),
    ("profile.plan in ['pro']", False), ("profile.plan not in ['pro']", True), ("null in [null]", True),
    # division and modulo by zero
    ("1 / 0", None), ("1 // 0", None), ("1 % 0", None), ("1.5 / 0.0", None), ("1 / 0 > 0", False),
])
def test_missing_data_semantics(source: str, expected: Any) -> None:
    assert value(source, {}) is expected


@pytest.mark.parametrize(("source", "fragment"), [
    ('"a" < 1', "cannot compare str and int with '<'"),
    ("[1] < ['a']", "cannot compare list and list with '<'"),
    ("x < y < 'a'", "cannot compare int and str with '<'"),
    ('"a" * 2', "cannot apply '*' to str and int"),
    ('"a" + 1', "cannot apply '+' to str and int"),
    ("[1] + [2]", "cannot apply '+' to list and list"),
    ("'%s' % x", "cannot apply '%' to str and int"),
    ("-'a'", "cannot apply unary '-' to str"),
    ("1 in 5", "cannot look for int in int"),
    ("[1] in context", "cannot look for list in dict"),
    ("lower(1)", "lower() failed: needs a string, not int"),
    ("days('a')", "days() failed: needs a number, not str"),
    ("abs('a')", "abs() failed"), ("min(1, 'a')", "min() failed"), ("len(5)", "len() failed"),
    ("round(1e308 * 10)", "round() failed"), ("days(" + "9" * 400 + ")", "days() failed"),
])
def test_type_errors_raise_evaluation_error_quoting_the_source(source: str, fragment: str) -> None:
    rule = compile_expression(source, SCHEMA)
    with pytest.raises(EvaluationError) as caught:
        rule.holds(ENV)
    assert fragment in str(caught.value)
    assert repr(source) in str(caught.value)
    assert isinstance(caught.value, ValueError)


# --- what the language refuses ----------------------------------------------------------------

@pytest.mark.parametrize(("source", "message", "column"), [
    ("lambda: 1", "lambda is not allowed", 1),
    ("x + (lambda: 1)()", "lambda is not allowed", 6),
    ("[v for v in profile.tags]", "list comprehension is not allowed", 1),
    ("{v for v in profile.tags}", "set comprehension is not allowed", 1),
    ("{v: 1 for v in profile.tags}", "dict comprehension is not allowed", 1),
    ("min(v for v in profile.tags)", "generator expression is not allowed", 4),
    ('f"{x}"', "f-string is not allowed", 1),
    ("(y := 1)", "assignment expression ':=' is not allowed", 2),
    ("[*profile.tags]", "starred expression is not allowed", 2),
    ("min(*profile.tags)", "starred expression is not allowed", 5),
    ("{'a': 1}", "dict literal is not allowed", 1),
    ("{1, 2}", "set literal is not allowed", 1),
    ("profile.tags[0:1]", "slice is not allowed", 14),
    ("profile.tags[0]", "only a string key is allowed in [...]", 14),
    ("profile.attributes[x]", "only a string key is allowed in [...]", 20),
    ("lower(detector).x", "attribute or key on a call result is not allowed", 1),
    ("lower(detector)['x']", "attribute or key on a call result is not allowed", 1),
    ("'abc'.x", "attributes and keys are only allowed on names", 1),
    ("x ** 2", "operator '**' is not allowed", 3),
    ("x & 1", "operator '&' is not allowed", 3),
    ("x | 1", "operator '|' is not allowed", 3),
    ("x ^ 1", "operator '^' is not allowed", 3),
    ("x << 1", "operator '<<' is not allowed", 3),
    ("x >> 1", "operator '>>' is not allowed", 3),
    ("x @ y", "operator '@' is not allowed", 3),
    ("(x) ** 2", "operator '**' is not allowed", 5),
    ("1 + ~x", "operator '~' is not allowed", 5),
    ("detector.upper()", "method call 'detector.upper()' is not allowed", 1),
    ("round(x, ndigits=1)", "keyword arguments are not allowed", 10),
    ("x is 1", "'is' and 'is not' may only compare with None", 6),
    ("x is not y", "'is' and 'is not' may only compare with None", 10),
    ("_secret", "name '_secret' is not allowed", 1),
    ("context.a__b", "name 'context.a__b' is not allowed", 1),
    ("context.__class__", "name 'context.__class__' is not allowed", 1),
    ('profile.attributes["_x"]', "name 'profile.attributes._x' is not allowed", 1),
    ("b'x'", "bytes literal is not allowed", 1),
    ("1j", "complex literal is not allowed", 1),
    ("...", "ellipsis literal is not allowed", 1),
    ("len(x, y)", "wrong arguments to len()", 1),
    ("x + lower()", "wrong arguments to lower()", 5),
    ("'é' + x ** 2", "operator '**' is not allowed", 9),
    ("'ééé' + [v for v in profile.tags]", "list comprehension is not allowed", 9),
    ("  x ** 2", "operator '**' is not allowed", 5),
    ("(x +\n y ** 2)", "operator '**' is not allowed", 9),
    ("x +", "syntax error", 4),
    ("(x", "syntax error: '(' was never closed", 1),
    ("x y", "syntax error", 3),
])
def test_rejections_name_the_construct_and_column(source: str, message: str, column: int) -> None:
    error = rejection(source)
    assert message in error.message
    assert error.column == column
    if not error.message.startswith("name "):  # a quoted name locates itself
        assert str(error) == f"{error.message} (column {column})"
    assert isinstance(error, ValueError)


def test_unknown_name_suggests_the_closest_known_one() -> None:
    error = rejection("x + scores.dropof > 0.5")
    assert str(error) == "unknown name 'scores.dropof' (did you mean 'scores.dropoff'?)"
    assert error.column == 5
    assert "did you mean 'profile.attributes'" in str(rejection("profile.atributes.tier == 1"))


def test_unknown_name_without_a_close_match_gets_no_suggestion() -> None:
    assert rejection("qwerty").message == "unknown name 'qwerty'"


def test_the_root_of_known_names_is_not_itself_known() -> None:
    assert rejection("scores").message.startswith("unknown name 'scores'")


def test_unknown_function_lists_the_known_ones() -> None:
    error = rejection("x + foo(1)")
    assert str(error) == (
        "unknown function 'foo' (known: abs, boom, days, echo, hours, len, lower, max, min, "
        "minutes, round, used)")
    assert error.column == 5
    assert rejection("detector(1)").message.startswith("unknown function 'detector'")


@pytest.mark.parametrize(("source", "message"), [
    ("", "expression is empty"),
    ("  \n ", "expression is empty"),
    ("x" * 1001, "expression is longer than 1000 characters (1001)"),
    ("+".join(["1"] * 101), "expression is too complex (201 nodes, limit 200)"),
    ("-" * 300 + "1", "expression is too complex (301 nodes, limit 200)"),
    ("(" * 300 + "1" + ")" * 300, "syntax error: too many nested parentheses"),
    ("x\x00", "null bytes"),
])
def test_limits_and_unparseable_source(source: str, message: str) -> None:
    assert message in rejection(source).message


def test_expressions_just_inside_the_limits_compile() -> None:
    assert value("+".join(["1"] * 100)) == 100  # 199 nodes
    assert value("'" + "a" * 998 + "'") == "a" * 998  # 1000 characters


def test_compiling_never_emits_python_syntax_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert value("1if x else 2") == 1
        assert value(r"'\d' + 'x'") == "\\dx"
        assert rejection("x is 1").column == 6


def test_evaluation_never_parses_or_evals_again(monkeypatch: pytest.MonkeyPatch) -> None:
    rule = compile_expression("scores.dropoff >= 0.8 and days(1) > 0 and 'vip' in profile.tags", SCHEMA)

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("called at evaluation time")
    for target, name in [(builtins, "eval"), (builtins, "exec"), (builtins, "compile"), (ast, "parse")]:
        monkeypatch.setattr(target, name, forbidden)
    assert rule.holds(ENV) is True


# --- properties -------------------------------------------------------------------------------

COMPARE_OPS = ["<", "<=", ">", ">=", "==", "!="]
ARITH_OPS = ["+", "-", "*", "/", "//", "%"]


def _spaced(parts: tuple[str, ...]) -> str:
    return f"({' '.join(parts)})"


def _chain(first: str, rest: list[tuple[str, str]]) -> str:
    return "(" + first + "".join(f" {op} {operand}" for op, operand in rest) + ")"


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(children, st.sampled_from(ARITH_OPS), children).map(_spaced)
    boolean = st.tuples(children, st.sampled_from(["and", "or"]), children).map(_spaced)
    comparisons = st.lists(st.tuples(st.sampled_from(COMPARE_OPS), children), min_size=1, max_size=3)
    chain = st.builds(_chain, children, comparisons)
    unary = st.tuples(st.sampled_from(["-", "+", "not "]), children).map(lambda t: f"({t[0]}{t[1]})")
    conditional = st.tuples(children, children, children).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})")
    extreme = st.tuples(st.sampled_from(["min", "max"]), st.lists(children, min_size=2, max_size=3)).map(
        lambda t: f"{t[0]}({', '.join(t[1])})")
    magnitude = children.map(lambda e: f"abs({e})")
    member = st.tuples(children, st.sampled_from(["in", "not in"]), st.lists(children, max_size=3)).map(
        lambda t: f"({t[0]} {t[1]} [{', '.join(t[2])}])")
    return st.one_of(binary, boolean, chain, unary, conditional, extreme, magnitude, member)


INT_EXPRESSIONS = st.recursive(
    st.one_of(st.integers(-20, 20).map(str), st.sampled_from(["x", "y", "z"])), _combine, max_leaves=10)


@PROPERTY_SETTINGS
@given(INT_EXPRESSIONS, st.integers(-50, 50), st.integers(-50, 50), st.integers(-50, 50))
def test_integer_expressions_evaluate_as_python_does(source: str, x: int, y: int, z: int) -> None:
    env = {"x": x, "y": y, "z": z}
    ours = compile_expression(source, SCHEMA).evaluate(env)
    try:
        expected = eval(source, {"__builtins__": {"min": min, "max": max, "abs": abs}}, dict(env))
    except ZeroDivisionError:
        return  # ours gives None there, and carries on (checked by evaluating without raising)
    assert type(ours) is type(expected) and ours == expected


PYTHONISH = st.sampled_from(list("xyz.()[]{}'\"+-*/%<>=!,: 0123456789_aeilnorstdfgmpuλé\n\t#@&|^~\\"))


@PROPERTY_SETTINGS
@given(st.one_of(st.text(max_size=60), st.text(PYTHONISH, max_size=60)))
def test_random_text_only_ever_raises_expression_error(source: str) -> None:
    try:
        rule = compile_expression(source, FUZZ_SCHEMA)
    except ExpressionError as error:
        assert error.column is None or 1 <= error.column <= len(source) + 1
        return
    try:
        rule.evaluate({})
    except EvaluationError:
        pass


TOKENS = ["x", "y", "scores.dropoff", "profile.plan", "profile.tags", "profile.attributes.tier",
          "context['a']", "context.a.b", "1", "0", "2.5", "'pro'", "''", "true", "null", "None",
          "-", "+", "*", "/", "//", "%", "(", ")", "[", "]", ",", "and", "or", "not", "<", "<=",
          "==", "!=", "in", "not in", "is", "is not", "if", "else", "min(", "max(", "len(",
          "lower(", "days(", "abs(", "round(", "used("]
FUZZ_SCHEMA = Schema(NAMES, frozenset({"profile.attributes", "context"}), {"used": FUNCTIONS["used"]})
LEAF_VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=3))
ENV_KEYS = st.sampled_from(["x", "y", "scores", "dropoff", "profile", "plan", "tags", "attributes",
                            "tier", "context", "a", "b"])
NESTED = st.recursive(LEAF_VALUES, lambda inner: st.one_of(
    st.dictionaries(ENV_KEYS, inner, max_size=4), st.lists(inner, max_size=3)), max_leaves=12)


@PROPERTY_SETTINGS
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12).map(" ".join),
       st.dictionaries(ENV_KEYS, NESTED, max_size=6))
def test_token_soup_fails_only_with_the_module_errors(source: str, env: dict[str, Any]) -> None:
    try:
        rule = compile_expression(source, FUZZ_SCHEMA)
    except ExpressionError:
        return
    try:
        rule.evaluate(env)
    except EvaluationError:
        pass


MIXED_LEAVES = st.sampled_from(["x", "y", "scores.dropoff", "profile.plan", "profile.tags", "context.a",
                                 "context['a'].b", "'pro'", "''", "1", "0", "-3", "2.5", "1e308", "null",
                                 "true", "[1, 'a', null]", "()", "[[1]]"])
MIXED_OPS = ARITH_OPS + COMPARE_OPS + ["in", "not in", "and", "or"]


def _mixed(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.tuples(children, st.sampled_from(MIXED_OPS), children).map(_spaced)
    unary = st.tuples(st.sampled_from(["-", "+", "not "]), children).map(lambda t: f"({t[0]}{t[1]})")
    is_none = st.tuples(children, st.sampled_from(["is None", "is not null"])).map(_spaced)
    call = st.tuples(st.sampled_from(["min", "max", "len", "lower", "days", "abs", "round", "used"]),
                     children).map(lambda t: f"{t[0]}({t[1]})")
    pair = st.tuples(st.sampled_from(["min", "max", "round"]), children, children).map(
        lambda t: f"{t[0]}({t[1]}, {t[2]})")
    conditional = st.tuples(children, children, children).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})")
    return st.one_of(binary, unary, is_none, call, pair, conditional)


@PROPERTY_SETTINGS
@given(st.recursive(MIXED_LEAVES, _mixed, max_leaves=8), st.dictionaries(ENV_KEYS, NESTED, max_size=6))
def test_well_formed_expressions_over_any_data_fail_only_with_evaluation_error(
        source: str, env: dict[str, Any]) -> None:
    rule = compile_expression(source, FUZZ_SCHEMA)  # every generated expression is allowed
    try:
        rule.holds(env)
    except EvaluationError as error:
        assert repr(source) in str(error)


RULES = [
    'scores.dropoff >= 0.8 and profile.plan in ["pro", "team"]',
    "profile.seats * 2 > 10 or scores.churn < 0.1",
    "len(profile.tags) > 1 and 'vip' in profile.tags",
    'profile.attributes.region.country == "NZ"',
    "lower(profile.attributes.tier) != 'gold'",
    "days(profile.seats) / hours(1) >= 24",
    "1 < profile.seats <= 20",
    "max(scores.dropoff, scores.churn) > 0.5",
    "profile.plan not in ['free'] and not used(detector)",
    "context.channel if context.channel else 'email'",
    "scores.dropoff - scores.churn > 0.5 or -scores.churn < -0.1",
]


def _partial(full: Any) -> st.SearchStrategy[Any]:
    """Any part of ``full``: keys dropped or set to None at every level."""
    if isinstance(full, dict):
        return st.one_of(st.none(), st.fixed_dictionaries(
            {}, optional={key: _partial(inner) for key, inner in full.items()}))
    return st.one_of(st.none(), st.just(full))


@PROPERTY_SETTINGS
@given(_partial(ENV).filter(lambda env: env is not None))
def test_well_typed_partial_data_never_raises_and_missing_scores_never_match(env: dict[str, Any]) -> None:
    for source in RULES:
        assert isinstance(compile_expression(source, SCHEMA).holds(env), bool)
    if (env.get("scores") or {}).get("dropoff") is None:
        assert not compile_expression(RULES[0], SCHEMA).holds(env)
        assert not compile_expression("scores.dropoff < 0.8", SCHEMA).holds(env)


def test_compiled_expressions_are_reusable_values() -> None:
    rule = compile_expression("x > 1", SCHEMA)
    assert isinstance(rule, Expression)
    assert [rule.holds({"x": n}) for n in (0, 1, 2, 3)] == [False, False, True, True]
    assert "x > 1" in repr(rule)
