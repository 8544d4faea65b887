"""Safe, vectorised rule expressions.

Rules in a strategy file are short expressions over customer features, e.g.
``arrears_days > 0 and not holds_credit``.  They are parsed once with `simpleeval`_ (which
refuses imports, attribute access, calls to anything not whitelisted and oversized
literals), checked against a whitelist of syntax, and evaluated over whole numpy columns at
once, so a rule costs the same for one decision as for a batch of 100,000 and the two give
identical results.

The names a rule reads are kept (:attr:`Expression.fields`) so that the reason for a
filtered action can show the values that were tested, e.g.
``arrears_days=45 > 0``.

.. _simpleeval: https://github.com/danthedeckie/simpleeval
"""

from __future__ import annotations

import ast
import operator as op
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from simpleeval import InvalidExpression, SimpleEval

from decisioning.errors import StrategyError

_ALLOWED_NODES = (
    ast.Expression,
    ast.Expr,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Mod,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.IfExp,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.Tuple,
    ast.List,
    ast.Call,
)

_FUNCTIONS = {"abs": np.abs, "min": np.minimum, "max": np.maximum}
_ARITY = {"abs": 1, "min": 2, "max": 2}

#: Bounds on one expression, checked before it is parsed or evaluated: its length, the number
#: of syntax nodes and their nesting.  Real rules are far below them (the demo's longest has
#: 14 nodes); a bound keeps a crafted strategy file from costing memory or time.
MAX_EXPRESSION_CHARS = 2000
MAX_EXPRESSION_NODES = 400
MAX_EXPRESSION_DEPTH = 40
_HINT = ("Use comparisons (==, !=, <, <=, >, >=, in), and/or/not, arithmetic and abs/min/max over feature "
         "names.")
_KINDS = {"number": "number", "integer": "number", "boolean": "boolean", "category": "text"}


def _isin(left: Any, right: Any) -> Any:
    return np.isin(left, np.asarray(list(right), dtype=object))


_EVALUATORS = threading.local()
#: Up to this many rows, each is rendered on its own (finding the distinct values costs more).
_RENDER_EACH = 16


class _VectorEval(SimpleEval):
    """simpleeval with numpy semantics for ``and``/``or``/``not``/``in``/``if``."""

    def __init__(self, names: Mapping[str, Any]) -> None:
        operators = {
            ast.Add: op.add,
            ast.Sub: op.sub,
            ast.Mult: op.mul,
            ast.Div: op.truediv,
            ast.Mod: op.mod,
            ast.Eq: op.eq,
            ast.NotEq: op.ne,
            ast.Lt: op.lt,
            ast.LtE: op.le,
            ast.Gt: op.gt,
            ast.GtE: op.ge,
            ast.In: _isin,
            ast.NotIn: lambda a, b: ~_isin(a, b),
            ast.Not: np.logical_not,
            ast.USub: op.neg,
            ast.UAdd: op.pos,
        }
        super().__init__(operators=operators, functions=dict(_FUNCTIONS), names=dict(names))
        self.nodes[ast.Tuple] = lambda node: tuple(self._eval(e) for e in node.elts)
        self.nodes[ast.List] = lambda node: [self._eval(e) for e in node.elts]

    def _eval_boolop(self, node: ast.BoolOp) -> Any:
        values = [np.asarray(self._eval(v), dtype=bool) for v in node.values]
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        out = values[0]
        for v in values[1:]:
            out = combine(out, v)
        return out

    def _eval_compare(self, node: ast.Compare) -> Any:
        left = self._eval(node.left)
        out: Any = True
        for operation, comp in zip(node.ops, node.comparators):
            right = self._eval(comp)
            out = np.logical_and(out, self.operators[type(operation)](left, right))
            left = right
        return out

    def _eval_ifexp(self, node: ast.IfExp) -> Any:
        return np.where(self._eval(node.test), self._eval(node.body), self._eval(node.orelse))


@dataclass(frozen=True)
class Expression:
    """A parsed, validated rule expression.

    Use :func:`compile_expression` to build one; it checks the syntax and that every name is
    a known field.
    """

    text: str
    fields: tuple[str, ...]
    _tree: Any = field(repr=False, compare=False)
    _template: tuple[tuple[str, str | None], ...] = field(repr=False, compare=False)

    def evaluate(self, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """Evaluate over columns of length ``n``; returns a boolean (or numeric) array."""
        ev = getattr(_EVALUATORS, "ev", None)
        if ev is None:  # one evaluator per thread: building one costs more than a small batch's rule
            ev = _EVALUATORS.ev = _VectorEval({})
        ev.names = {name: columns[name] for name in self.fields}
        try:
            result = ev.eval(self.text, previously_parsed=self._tree)
        finally:
            ev.names = {}
        result = np.asarray(result)
        if result.shape == ():
            result = np.full(n, result.item())
        return result

    def evaluate_bool(self, columns: Mapping[str, np.ndarray], n: int) -> np.ndarray:
        """Evaluate and coerce to a boolean mask of length ``n``."""
        return np.asarray(self.evaluate(columns, n), dtype=bool)

    def render(self, values: Mapping[str, Any]) -> str:
        """The expression with each field's value written next to its first use.

        ``arrears_days > 0`` with ``arrears_days=45`` becomes ``arrears_days=45 > 0``.
        """
        parts = []
        seen: set[str] = set()
        for text, name in self._template:
            parts.append(text)
            if name is not None and name not in seen:
                parts.append("=" + format_value(values[name]))
                seen.add(name)
        return "".join(parts)

    def render_columns(self, columns: Mapping[str, np.ndarray], rows: np.ndarray) -> list[str]:
        """:meth:`render` for many rows at once (``rows`` indexes into ``columns``).

        Each distinct combination of the fields' values is rendered once: in a batch most
        rows that trip a rule share their values (a consent flag, a channel, a day count).
        """
        if len(rows) <= _RENDER_EACH or not self.fields:
            return self._render_rows(columns, rows)
        codes = np.zeros(len(rows), dtype=np.int64)
        for name in self.fields:
            _, inv = np.unique(columns[name][rows], return_inverse=True)
            # re-number after each field so the combined code stays small (no overflow)
            codes = np.unique(codes * (int(inv.max()) + 1) + inv.reshape(-1), return_inverse=True)[1].reshape(-1)
        uniq, first, inv = np.unique(codes, return_index=True, return_inverse=True)
        texts = self._render_rows(columns, rows[first])
        return [texts[i] for i in inv.reshape(-1).tolist()]

    def _render_rows(self, columns: Mapping[str, np.ndarray], rows: np.ndarray) -> list[str]:
        pieces: list[list[str] | str] = []
        seen: set[str] = set()
        for text, name in self._template:
            pieces.append(text)
            if name is not None and name not in seen:
                seen.add(name)
                pieces.append(["=" + v for v in format_column(columns[name][rows])])
        out = [""] * len(rows)
        for piece in pieces:
            if isinstance(piece, str):
                out = [o + piece for o in out]
            else:
                out = [o + p for o, p in zip(out, piece)]
        return out


def format_value(value: Any) -> str:
    """Format a feature value the way reasons show it (exact, short, readable)."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return repr(v)
    return repr(str(value))


def format_column(col: np.ndarray) -> list[str]:
    """:func:`format_value` for a whole column (vectorised per dtype)."""
    if col.dtype == bool:
        return np.where(col, "true", "false").tolist()
    if np.issubdtype(col.dtype, np.integer):
        return list(map(str, col.tolist()))
    if np.issubdtype(col.dtype, np.floating):
        whole = (col == np.round(col)) & (np.abs(col) < 1e15)
        ints = list(map(str, col.astype(np.int64, copy=False).tolist())) if whole.any() else None
        reprs = list(map(repr, col.tolist()))
        return [i if w else r for i, r, w in zip(ints or reprs, reprs, whole.tolist())]
    return [format_value(v) for v in col.tolist()]


def compile_expression(text: str, known_fields: Mapping[str, Any], where: str) -> Expression:
    """Parse and validate ``text``.

    Parameters
    ----------
    text : str
        The expression as written in the strategy file.
    known_fields : mapping
        Field names the expression may read.
    where : str
        Where the expression stands (``file, line N, policies.suitability[2].exclude_if``),
        used in error messages.

    Raises
    ------
    StrategyError
        On a syntax error, a construct that is not allowed, or an unknown field.
    """
    if not isinstance(text, str) or not text.strip():
        raise StrategyError(
            f"{where}: expected an expression such as 'arrears_days > 0', got {text!r}.",
            "Write the condition as a string over customer features.",
        )
    if len(text) > MAX_EXPRESSION_CHARS:
        raise StrategyError(f"{where}: the expression is {len(text):,} characters long, more than the "
                            f"{MAX_EXPRESSION_CHARS:,} allowed.", "Split the condition into several rules.")
    try:
        tree = SimpleEval.parse(text)
    except (SyntaxError, InvalidExpression, RecursionError, MemoryError, ValueError) as exc:
        msg = getattr(exc, "msg", None) or (str(exc) if not isinstance(exc, RecursionError) else "nested too deeply")
        raise StrategyError(f"{where}: cannot parse expression {_short(text)}: {msg}.", _HINT) from None
    _check_size(tree, text, where)
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise StrategyError(
                f"{where}: {type(node).__name__} is not allowed in expression {text!r}.",
                "Use comparisons (==, !=, <, <=, >, >=, in), and/or/not, arithmetic and "
                "abs/min/max over feature names.",
            )
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
                name = getattr(node.func, "id", ast.unparse(node.func))
                raise StrategyError(
                    f"{where}: function {name!r} is not allowed in expression {text!r}.",
                    f"Allowed functions: {', '.join(sorted(_FUNCTIONS))}.",
                )
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in _FUNCTIONS and node.id not in names:
            names.append(node.id)
    unknown = [n for n in names if n not in known_fields]
    if unknown:
        raise StrategyError(
            f"{where}: expression {text!r} reads unknown field {unknown[0]!r}.",
            f"Declare it under 'features' or use one of: {', '.join(sorted(known_fields))}.",
        )
    kinds = {n: _kind_of(v) for n, v in known_fields.items()}
    root = tree
    while isinstance(root, (ast.Expression, ast.Expr, ast.Module)):
        root = root.body if isinstance(root, ast.Expression) else root.value if isinstance(root, ast.Expr) \
            else root.body[0]
    _kind(root, kinds, text, where)
    return Expression(text=text, fields=tuple(names), _tree=tree, _template=_template(text))


def _short(text: str) -> str:
    return repr(text) if len(text) <= 80 else repr(text[:60] + "…")


def _check_size(tree: ast.AST, text: str, where: str) -> None:
    """Refuse an expression with too many syntax nodes or nested too deeply (iteratively: a
    deep tree cannot exhaust the stack here)."""
    count, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_EXPRESSION_NODES:
            raise StrategyError(f"{where}: expression {_short(text)} has more than {MAX_EXPRESSION_NODES} parts.",
                                "Split the condition into several rules.")
        if depth > MAX_EXPRESSION_DEPTH:
            raise StrategyError(f"{where}: expression {_short(text)} is nested more than {MAX_EXPRESSION_DEPTH} "
                                "levels deep.", "Write the condition with fewer nested operators.")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _kind_of(declared: Any) -> str:
    """What a field holds: ``number``, ``boolean``, ``text`` or ``any`` (not declared)."""
    t = getattr(declared, "type", declared)
    return _KINDS.get(t, "any") if isinstance(t, str) else "any"


def _kind(node: ast.AST, kinds: Mapping[str, str], text: str, where: str) -> str:
    """The kind of value ``node`` gives, checked at load time: arithmetic on numbers only (so
    text and lists never grow), orderings of numbers, ``in`` against a list or tuple, and
    abs/min/max with their number of numeric arguments."""
    def bad(what: str) -> StrategyError:
        return StrategyError(f"{where}: {what} in expression {_short(text)}.", _HINT)

    def numeric(k: str, what: str) -> None:
        if k not in ("number", "boolean", "any"):
            raise bad(f"{what} needs numbers, not {k}")

    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool):
            return "boolean"
        if isinstance(v, (int, float)):
            if isinstance(v, int) and abs(v) > 2**53:
                raise bad(f"the number {v} is larger than 2**53")
            return "number"
        if isinstance(v, str):
            return "text"
        raise bad(f"the constant {v!r} is not a number, text or true/false")
    if isinstance(node, ast.Name):
        return kinds.get(node.id, "any")
    if isinstance(node, (ast.List, ast.Tuple)):
        for e in node.elts:
            if _kind(e, kinds, text, where) == "list":
                raise bad("a list inside a list")
        return "list"
    if isinstance(node, ast.BinOp):
        for side in (node.left, node.right):
            numeric(_kind(side, kinds, text, where), "arithmetic")
        return "number"
    if isinstance(node, ast.UnaryOp):
        k = _kind(node.operand, kinds, text, where)
        if isinstance(node.op, ast.Not):
            if k == "list":
                raise bad("'not' of a list")
            return "boolean"
        numeric(k, "a sign")
        return "number"
    if isinstance(node, ast.BoolOp):
        for v in node.values:
            if _kind(v, kinds, text, where) == "list":
                raise bad("'and'/'or' of a list")
        return "boolean"
    if isinstance(node, ast.Compare):
        left = _kind(node.left, kinds, text, where)
        for operation, comp in zip(node.ops, node.comparators):
            right = _kind(comp, kinds, text, where)
            if isinstance(operation, (ast.In, ast.NotIn)):
                if right != "list" or left == "list":
                    raise bad("'in' needs a value on the left and a list such as ['a', 'b'] on the right")
            elif "list" in (left, right):
                raise bad("a list can only stand after 'in'")
            elif isinstance(operation, (ast.Lt, ast.LtE, ast.Gt, ast.GtE)):
                numeric(left, "an ordering (<, <=, >, >=)")
                numeric(right, "an ordering (<, <=, >, >=)")
            elif "any" not in (left, right) and {left, right} - {"number", "boolean"} and left != right:
                raise bad(f"comparing {left} with {right}")
            left = right
        return "boolean"
    if isinstance(node, ast.IfExp):
        _kind(node.test, kinds, text, where)
        body, other = _kind(node.body, kinds, text, where), _kind(node.orelse, kinds, text, where)
        if "list" in (body, other):
            raise bad("a list as the result of 'if'")
        return body if body == other else "any"
    if isinstance(node, ast.Call):
        name = node.func.id  # checked to be abs/min/max before
        if node.keywords or len(node.args) != _ARITY[name]:
            raise bad(f"{name}() takes {_ARITY[name]} argument{'s' if _ARITY[name] > 1 else ''}")
        for a in node.args:
            numeric(_kind(a, kinds, text, where), f"{name}()")
        return "number"
    raise bad(f"{type(node).__name__} is not allowed")


def _template(text: str) -> tuple[tuple[str, str | None], ...]:
    """Split ``text`` into (literal text, field name after it) pieces for rendering.

    A field compared with something is rendered inline (``arrears_days=45 > 0``); a field
    used on its own as a condition is bracketed (``not [email_consent=false]``) so the value
    cannot be read as part of the logic.
    """
    stripped = text.strip()
    tree = ast.parse(stripped, mode="eval")
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    targets = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}  # one pass: linear in the rule
    spans = sorted(
        (n.col_offset, n.end_col_offset, n.id, not isinstance(parents.get(n), (ast.Compare, ast.BinOp, ast.Call)))
        for n in ast.walk(tree)
        if isinstance(n, ast.Name) and n.id not in _FUNCTIONS and id(n) not in targets
    )
    pieces: list[tuple[str, str | None]] = []
    pos = 0
    for start, end, name, bare in spans:
        if bare:
            pieces.append((stripped[pos:start] + "[" + name, name))
            pieces.append(("]", None))
        else:
            pieces.append((stripped[pos:end], name))
        pos = end
    pieces.append((stripped[pos:], None))
    return tuple(pieces)
