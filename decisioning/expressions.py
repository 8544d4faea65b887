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
    try:
        tree = SimpleEval.parse(text)
    except (SyntaxError, InvalidExpression) as exc:
        raise StrategyError(
            f"{where}: cannot parse expression {text!r}: {exc.msg if hasattr(exc, 'msg') else exc}.",
            "Use comparisons (==, !=, <, <=, >, >=, in), and/or/not, arithmetic and "
            "abs/min/max over feature names.",
        ) from exc
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
    return Expression(text=text, fields=tuple(names), _tree=tree, _template=_template(text))


def _template(text: str) -> tuple[tuple[str, str | None], ...]:
    """Split ``text`` into (literal text, field name after it) pieces for rendering.

    A field compared with something is rendered inline (``arrears_days=45 > 0``); a field
    used on its own as a condition is bracketed (``not [email_consent=false]``) so the value
    cannot be read as part of the logic.
    """
    stripped = text.strip()
    tree = ast.parse(stripped, mode="eval")
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    spans = sorted(
        (n.col_offset, n.end_col_offset, n.id, not isinstance(parents.get(n), (ast.Compare, ast.BinOp, ast.Call)))
        for n in ast.walk(tree)
        if isinstance(n, ast.Name) and n.id not in _FUNCTIONS and not _is_call_target(tree, n)
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


def _is_call_target(tree: ast.AST, name: ast.Name) -> bool:
    return any(isinstance(n, ast.Call) and n.func is name for n in ast.walk(tree))
