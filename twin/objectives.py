"""The language of ``twin optimize``'s options: a design space (``--vary``) and objectives and
constraints over KPIs and spec values (``--maximize``, ``--minimize``, ``--constraint``).

A small grammar (numbers, dotted names, ``+ - * /``, parentheses, one comparison), parsed here and
never by ``eval``; bad text is a :class:`~twin.spec.SpecError` naming the option. No SimPy, no optuna:
the search is in :mod:`twin.optimize`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from .dists import parse_duration
from .spec import SpecError, toml_values


GRID_LIMIT = 100_000  # discrete designs enumerated at most (beyond: sampled)


# --------------------------------------------------------------------------- the space
@dataclass(frozen=True)
class Dimension:
    """One varied spec path: an integer range, a real interval, or a categorical choice."""

    path: str
    kind: str  # "int", "float" or "categorical"
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()
    also: tuple[str, ...] = ()
    """Further paths that take the same value (``planning.lanes,stations.smt.lanes=8..12``: a
    line count the planner and every line's stations must agree on)."""

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.path, *self.also)

    @property
    def size(self) -> float:
        """How many values the dimension has (inf for a real interval), counted, not listed."""
        if self.kind == "int":
            return int(self.high) - int(self.low) + 1
        if self.kind == "categorical":
            return len(self.choices)
        return math.inf

    def values(self) -> list[Any] | None:
        """Every value of an integer or categorical dimension (None for a real interval, or an
        integer range of more than :data:`GRID_LIMIT` values: those are sampled, never listed)."""
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1)) if self.size <= GRID_LIMIT else None
        if self.kind == "categorical":
            return list(self.choices)
        return None

    def suggest(self, trial: Any) -> Any:
        """This dimension's value for an optuna ``trial``."""
        if self.kind == "int":
            return trial.suggest_int(self.path, int(self.low), int(self.high))
        if self.kind == "float":
            return trial.suggest_float(self.path, self.low, self.high)
        return trial.suggest_categorical(self.path, list(self.choices))


_INT = re.compile(r"^[+-]?\d+$")


def _number(text: str, what: str) -> float:
    """A real or a duration (``2h``) in seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return float(parse_duration(text))
    except (ValueError, TypeError):
        raise SpecError([f"{what}: {text!r} is not a number or a duration"]) from None


def parse_dimension(text: str) -> Dimension:
    """``PATH=LOW..HIGH`` (integers when both ends are integers, else a real interval; durations
    allowed) or ``PATH=V1,V2,...`` (a categorical choice of TOML values). ``PATH1,PATH2=...``
    sets every path to the same value (the dimension is named by the first)."""
    if "=" not in text:
        raise SpecError([f"--vary: {text!r}: expected PATH=LOW..HIGH or PATH=V1,V2,..."])
    lhs, v = (x.strip() for x in text.split("=", 1))
    paths = [x.strip() for x in lhs.split(",")]
    path, also = paths[0], tuple(paths[1:])
    where = f"--vary {path}"
    if not all(paths):
        raise SpecError([f"--vary: {text!r}: a spec path before '=' is empty"])
    if len(set(paths)) < len(paths):
        raise SpecError([f"{where}: a path is linked twice"])
    if ".." in v and not v.startswith("["):
        lo, hi = (x.strip() for x in v.split("..", 1))
        a: float
        b: float
        if _INT.match(lo) and _INT.match(hi):
            a, b = int(lo), int(hi)
            kind = "int"
        else:
            a, b = _number(lo, where), _number(hi, where)
            kind = "float"
        if not (math.isfinite(a) and math.isfinite(b)) or a > b or (kind == "float" and a == b):
            raise SpecError([f"{where}: the range {lo}..{hi} is empty"])
        return Dimension(path, kind, float(a), float(b), also=also)
    values = [x for x in toml_values(v, where) if x != ""]
    if not values:
        raise SpecError([f"{where}: no values"])
    if len(set(map(repr, values))) < len(values):
        raise SpecError([f"{where}: a value is given twice"])
    return Dimension(path, "categorical", choices=tuple(values), also=also)


# --------------------------------------------------------------------------- the constraint grammar
_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)"
                    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.(?:[A-Za-z0-9_*-]+))*)"
                    r"|(?P<op><=|>=|==|<|>|[-+*/()]))")
COMPARISONS = ("<=", ">=", "==", "<", ">")


class Expr:
    """An arithmetic expression over numbers and dotted names (a tiny recursive-descent parser)."""

    def __init__(self, tokens: list[tuple[str, str]], source: str, option: str = "--constraint"):
        self.tokens = tokens
        self.i = 0
        self.source = source
        self.option = option
        self.tree = self._sum()

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        tok = self._peek()
        if tok is None:
            raise SpecError([f"{self.option} {self.source!r}: the expression ends too early"])
        self.i += 1
        return tok

    def _sum(self) -> Any:
        node = self._product()
        while (tok := self._peek()) is not None and tok[1] in ("+", "-"):
            self.i += 1
            node = (tok[1], node, self._product())
        return node

    def _product(self) -> Any:
        node = self._factor()
        while (tok := self._peek()) is not None and tok[1] in ("*", "/"):
            self.i += 1
            node = (tok[1], node, self._factor())
        return node

    def _factor(self) -> Any:
        kind, text = self._take()
        if kind == "num":
            return float(text)
        if kind == "name":
            return ("name", text)
        if text == "-":
            return ("neg", self._factor())
        if text == "(":
            node = self._sum()
            if self._take()[1] != ")":
                raise SpecError([f"{self.option} {self.source!r}: a ')' is missing"])
            return node
        raise SpecError([f"{self.option} {self.source!r}: unexpected {text!r}"])

    def names(self, node: Any = None) -> set[str]:
        node = self.tree if node is None else node
        if isinstance(node, float):
            return set()
        if node[0] == "name":
            return {node[1]}
        return set().union(*(self.names(n) for n in node[1:]))

    def value(self, env: dict[str, float], node: Any = None) -> float:
        node = self.tree if node is None else node
        if isinstance(node, float):
            return node
        op = node[0]
        if op == "name":
            return float(env[node[1]])
        if op == "neg":
            return -self.value(env, node[1])
        a, b = self.value(env, node[1]), self.value(env, node[2])
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        return a / b if b != 0 else math.copysign(math.inf, a) if a else math.nan


@dataclass
class Constraint:
    """``LEFT OP RIGHT``; ``violation(env)`` is ≤ 0 when it holds (optuna's convention)."""

    text: str
    left: Expr
    op: str
    right: Expr
    kind: str = "design"  # "design" (spec values only) or "outcome" (uses KPIs)

    @property
    def names(self) -> set[str]:
        return self.left.names() | self.right.names()

    def violation(self, env: dict[str, float]) -> float:
        a, b = self.left.value(env), self.right.value(env)
        if self.op == "==":
            return abs(a - b)
        d = a - b if self.op in ("<=", "<") else b - a
        return 1e-12 if d == 0.0 and self.op in ("<", ">") else d  # equality breaks a strict comparison

    def holds(self, env: dict[str, float]) -> bool:
        v = self.violation(env)
        return v <= 0.0 if v == v else False


def _tokens(text: str, option: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    s = text.strip()
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if m is None or m.end() == pos:
            raise SpecError([f"{option} {text!r}: cannot read {s[pos:pos + 12]!r} (numbers, spec paths, "
                             "KPI names, + - * / ( )" + (" and one of <= >= == < >)" if option == "--constraint" else ")")])
        kind = m.lastgroup or "op"
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    return tokens


MAX_NESTING = 100
"""Parentheses (and unary minus signs) nested at most this deep in an expression."""


def _check_nesting(tokens: list[tuple[str, str]], text: str, option: str) -> None:
    depth = run = 0
    for _, t in tokens:
        depth += (t == "(") - (t == ")")
        run = run + 1 if t in ("(", "-") else 0
        if depth > MAX_NESTING or run > MAX_NESTING:
            raise SpecError([f"{option} {text[:40]!r}...: nested more than {MAX_NESTING} deep"])


def parse_objective(text: str) -> Expr:
    """A KPI name or an arithmetic expression of KPIs to optimise: ``"conversion_cost"``, or
    ``"conversion_cost + 100 * (1 - fill_rate)"`` (a late unit priced at 100)."""
    option = "--maximize/--minimize"
    tokens = _tokens(text, option)
    _check_nesting(tokens, text, option)
    if not tokens:
        raise SpecError([f"{option}: the objective is empty"])
    if any(k == "op" and t in COMPARISONS for k, t in tokens):
        raise SpecError([f"{option} {text!r}: an objective has no comparison (that is a --constraint)"])
    e = Expr(tokens, text, option)
    if e.i != len(e.tokens):
        raise SpecError([f"{option} {text!r}: unexpected {e.tokens[e.i][1]!r}"])
    return e


def parse_constraint(text: str) -> Constraint:
    """Parse ``"stations.b.buffer + stations.c.buffer <= 6"`` or ``"fill_rate >= 0.98"``."""
    tokens = _tokens(text, "--constraint")
    _check_nesting(tokens, text, "--constraint")
    cmp = [i for i, (k, t) in enumerate(tokens) if k == "op" and t in COMPARISONS]
    if len(cmp) != 1:
        raise SpecError([f"--constraint {text!r}: needs exactly one comparison (<=, >=, ==, <, >)"])
    i = cmp[0]
    left, right = Expr(tokens[:i], text), Expr(tokens[i + 1:], text)
    for e in (left, right):
        if e.i != len(e.tokens):
            raise SpecError([f"--constraint {text!r}: unexpected {e.tokens[e.i][1]!r}"])
    return Constraint(text, left, tokens[i][1], right)
