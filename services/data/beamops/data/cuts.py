"""Cut expressions ("NMuon >= 2 and MET_px > 10"): parsed and checked with ``ast``, then evaluated
by walking the tree over the arrays of one batch. Nothing is ever passed to ``eval``.

Allowed: branch names (one that is not a Python identifier, such as a nested branch's full
path, between backticks: "`Muon/Muon.pt` > 20"), numbers, True/False, comparisons (also
chained: ``0 < x < 1``), ``and``/``or``/``not`` and ``&``/``|``/``~``, arithmetic
``+ - * / // % **``, unary minus, and the functions in :data:`FUNCTIONS` (element-wise maths, and
reductions over the values of a jagged branch per entry: ``any``, ``all``, ``sum``, ``count``,
``min``, ``max``). A cut must give one true/false per entry.

Cost and depth are bounded before a cut runs (here, and again whenever a stored cut is parsed):
at most :data:`MAX_CUT_LENGTH` characters, :data:`MAX_CUT_NODES` parts and
:data:`MAX_CUT_DEPTH` levels of nesting; whole numbers below 2**63 in size; a constant exponent of
``**`` within +-:data:`MAX_EXPONENT`. Arithmetic on constants is done in 64-bit numpy types (never
Python's unbounded integers, whose power runs in C and cannot be interrupted) and ``**`` computes in
float64 (``np.float_power``): an overflow gives inf, not a wrapped or giant integer.
"""

from __future__ import annotations

import ast
import keyword
import operator
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import awkward as ak
import numpy as np

from beamops.runtime.errors import InvalidArgument

MAX_CUT_LENGTH = 2000
MAX_CUT_DEPTH = 64  # levels of nesting (each operator, comparison or call inside another is one)
MAX_CUT_NODES = 500  # parts: names, numbers, operators, comparisons, calls
MAX_EXPONENT = 64  # a constant exponent of '**' must lie in [-64, 64]
MAX_WHOLE_NUMBER = 2**63  # whole-number constants: |n| < 2**63 (they fit an int64)
_QUOTED = re.compile(r"`([^`]+)`")
_PLACEHOLDER = "__branch{}__"


def _show(text: str) -> str:
    """The cut quoted for a message (a long one cut short)."""
    return repr(text) if len(text) <= 120 else repr(text[:100]) + f" (... {len(text)} characters)"


# Leaves that carry no expression (operators, Load): not counted as parts or levels.
_SINGLETONS = (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)


def _check_size(tree: ast.Expression, text: str, field: str) -> None:
    """Refuse a tree nested more than MAX_CUT_DEPTH levels or with more than MAX_CUT_NODES parts.
    Iterative, so that it cannot itself run out of stack; run before anything recursive."""
    nodes = 0
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    while stack:
        node, level = stack.pop()
        if level > MAX_CUT_DEPTH:
            raise InvalidArgument(
                f"cut {_show(text)}: the cut is nested too deeply (more than {MAX_CUT_DEPTH} levels): "
                "each operation, comparison or function call inside another is one level, and so is "
                "each term of a long chain like 'a + b + c + ...'; write it more simply",
                field=field,
            )
        nodes += 1
        if nodes > MAX_CUT_NODES:
            raise InvalidArgument(
                f"cut {_show(text)}: the cut has more than {MAX_CUT_NODES} parts (branch names, "
                "numbers, operators, comparisons and function calls); write it more simply",
                field=field,
            )
        stack.extend((child, level + 1) for child in ast.iter_child_nodes(node)
                     if not isinstance(child, _SINGLETONS))


def _parse(text: str, field: str = "cut") -> tuple[ast.Expression, str]:
    """The syntax tree of a cut whose backticked names are Name nodes, and its canonical text
    (backticks kept only around names that are not identifiers). Raises InvalidArgument for a
    syntax error, or a cut too deep or too big (checked before anything recurses over the tree)."""
    quoted: dict[str, str] = {}

    def swap(match: re.Match) -> str:
        key = _PLACEHOLDER.format(len(quoted))
        quoted[key] = match.group(1)
        return key

    try:
        tree = ast.parse(_QUOTED.sub(swap, text), mode="eval")
    except SyntaxError as exc:
        where = f" at column {exc.offset}" if exc.offset else ""
        raise InvalidArgument(f"cut {_show(text)} does not parse{where}: {exc.msg}",
                              field=field) from None
    except (RecursionError, MemoryError):
        raise InvalidArgument(
            f"cut {_show(text)} is too complex to read (nested too deeply); write it more simply",
            field=field) from None
    _check_size(tree, text, field)
    canonical = ast.unparse(tree)
    for key, name in quoted.items():
        plain = name.isidentifier() and not keyword.iskeyword(name)
        canonical = canonical.replace(key, name if plain else f"`{name}`")
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in quoted:
            node.id = quoted[node.id]
    return tree, canonical


def _reducer(fn: Callable[..., Any]) -> Callable[[Any], Any]:
    def reduce(x: Any) -> Any:
        if isinstance(x, ak.Array) and x.ndim > 1:
            return fn(x, axis=-1)
        return x

    return reduce


def _count(x: Any) -> Any:
    if isinstance(x, ak.Array) and x.ndim > 1:
        return ak.num(x, axis=-1)
    return np.ones(len(x), dtype=np.int64)


def _fill(fn: Callable[..., Any], fill: float) -> Callable[[Any], Any]:
    def reduce(x: Any) -> Any:
        if isinstance(x, ak.Array) and x.ndim > 1:
            return ak.fill_none(fn(x, axis=-1), fill)
        return x

    return reduce


FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "abs": (1, np.abs),
    "sqrt": (1, np.sqrt),
    "exp": (1, np.exp),
    "log": (1, np.log),
    "log10": (1, np.log10),
    "sin": (1, np.sin),
    "cos": (1, np.cos),
    "tan": (1, np.tan),
    "arctan2": (2, np.arctan2),
    "hypot": (2, np.hypot),
    "where": (3, np.where),
    "any": (1, _reducer(ak.any)),
    "all": (1, _reducer(ak.all)),
    "sum": (1, _reducer(ak.sum)),
    "count": (1, _count),
    "min": (1, _fill(ak.min, np.nan)),
    "max": (1, _fill(ak.max, np.nan)),
}

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow, ast.BitAnd: operator.and_, ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
}
_COMPARE = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}


@dataclass(frozen=True)
class Cut:
    """A checked cut: its canonical text and the branches it reads."""

    text: str
    branches: tuple[str, ...]
    tree: ast.Expression

    def mask(self, arrays: Mapping[str, Any], length: int) -> np.ndarray:
        """One bool per entry for a batch of ``length`` entries (``arrays``: branch -> array)."""
        try:
            result = _Evaluator(arrays).visit(self.tree.body)
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise InvalidArgument(
                f"cut {_show(self.text)} cannot be computed on these branches ({type(exc).__name__}): "
                "check that jagged branches it combines have the same number of values per entry "
                "and that '&', '|', '~' are used on true/false values",
                field="cut",
            ) from None
        if isinstance(result, np.ndarray) and result.ndim == 0:  # e.g. where() of constants
            result = result[()]
        if isinstance(result, (bool, np.bool_, int, float)):
            return np.full(length, bool(result))
        if isinstance(result, ak.Array):
            if result.ndim != 1:
                raise InvalidArgument(
                    f"cut {_show(self.text)} gives several values per entry (it compares a jagged branch); "
                    "reduce it with any(...), all(...), count(...), sum(...), min(...) or max(...)",
                    field="cut",
                )
            result = ak.to_numpy(ak.fill_none(result, False))
        result = np.asarray(result)
        if result.dtype != np.bool_:
            raise InvalidArgument(
                f"cut {_show(self.text)} gives numbers, not true/false; compare it (e.g. '... > 0')",
                field="cut",
            )
        return result


def parse_cut(text: str, known_branches: Iterable[str], field: str = "cut") -> Cut | None:
    """Check ``text`` and return a :class:`Cut`, or None for an empty cut.

    Raises InvalidArgument naming the problem: a syntax error (with its column), an unknown
    branch, a function or construct that is not allowed, a cut too long, too deep or with too many
    parts, a whole number too large, a constant exponent of '**' out of range. Stored cuts are
    parsed again with this on every read, so the same limits hold for them.
    """
    text = (text or "").strip()
    if not text:
        return None
    if len(text) > MAX_CUT_LENGTH:
        raise InvalidArgument(f"the cut is longer than {MAX_CUT_LENGTH} characters", field=field)
    tree, canonical = _parse(text, field)
    known = set(known_branches)
    used: list[str] = []
    func_names = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        if id(node) in func_names and isinstance(node, ast.Name):
            continue  # a function name; checked with its call
        _check_node(node, text, known, used, field)
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            _check_exponent(node.right, text, func_names, field)
    return Cut(canonical, tuple(dict.fromkeys(used)), tree)


def combine(*cuts: str) -> str:
    """AND several cut texts (empty ones skipped) into one canonical text. Raises InvalidArgument
    for a text that does not parse or is nested too deeply."""
    parts = [c.strip() for c in cuts if c and c.strip()]
    if not parts:
        return ""
    if len(parts) == 1:
        return _parse(parts[0])[1]
    return " and ".join(f"({_parse(p)[1]})" for p in parts)


def _check_exponent(node: ast.expr, text: str, func_names: set[int], field: str) -> None:
    """An exponent that reads no branch is computed now (bounded: 64-bit numpy arithmetic on a
    checked tree) and must be a number in [-MAX_EXPONENT, MAX_EXPONENT]. One that reads a branch
    is computed per entry in float64, which cannot take long whatever its values."""
    if any(isinstance(n, ast.Name) and id(n) not in func_names for n in ast.walk(node)):
        return
    try:
        with np.errstate(all="ignore"):
            value = np.asarray(_Evaluator({}).visit(node))
        ok = value.shape == () and value.dtype.kind in "biuf" and \
            -MAX_EXPONENT <= float(value) <= MAX_EXPONENT
    except (TypeError, ValueError, ArithmeticError):
        ok = False
    if not ok:
        raise InvalidArgument(
            f"cut {_show(text)}: the exponent of '**' must be a number between {-MAX_EXPONENT} and "
            f"{MAX_EXPONENT} (here {_show(ast.unparse(node))}); write a very large or very small "
            "number as a decimal, e.g. 1e30 or 1e-30",
            field=field,
        )


_ALLOWED = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
    ast.Invert, ast.BinOp, ast.Compare, ast.Call, ast.Name, ast.Load, ast.Constant,
    *_BINARY, *_COMPARE,
)


def _check_node(node: ast.AST, text: str, known: set[str], used: list[str], field: str) -> None:
    if not isinstance(node, _ALLOWED):
        raise InvalidArgument(
            f"cut {_show(text)} uses {type(node).__name__}, which is not allowed; use branch names, "
            "numbers, comparisons, and/or/not, arithmetic and the functions "
            f"{', '.join(sorted(FUNCTIONS))}",
            field=field,
        )
    if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, bool)):
        raise InvalidArgument(f"cut {_show(text)}: only numbers and True/False are allowed as constants",
                              field=field)
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and \
            abs(node.value) >= MAX_WHOLE_NUMBER:
        digits = str(abs(node.value))
        shown = digits if len(digits) <= 24 else f"{digits[:12]}... ({len(digits)} digits)"
        raise InvalidArgument(
            f"cut {_show(text)}: the number {shown} is too large; whole numbers in a cut must be "
            f"smaller than 2**63 (about 9.2e18) in size; write a larger one as a decimal, e.g. 1e30",
            field=field,
        )
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise InvalidArgument(
                f"cut {_show(text)} calls {name!r}, which is not an allowed function "
                f"({', '.join(sorted(FUNCTIONS))})",
                field=field,
            )
        arity = FUNCTIONS[node.func.id][0]
        if node.keywords or len(node.args) != arity:
            raise InvalidArgument(
                f"cut {_show(text)}: {node.func.id}() takes {arity} argument(s), without keywords",
                field=field,
            )
    if isinstance(node, ast.Name):
        if node.id not in known:
            raise InvalidArgument(f"cut {_show(text)} names an unknown branch {node.id!r}", field=field)
        used.append(node.id)


def _is_python_number(value: Any) -> bool:
    return isinstance(value, (bool, int, float))


_BITWISE = (ast.BitAnd, ast.BitOr, ast.BitXor)


def _to_numpy(value: bool | int | float, op: ast.operator) -> np.generic:
    if isinstance(value, bool):  # True is 1 in arithmetic, as in Python
        return np.bool_(value) if isinstance(op, _BITWISE) else np.int64(value)
    if isinstance(value, int):  # |value| < 2**63: checked at parse time, kept by 64-bit arithmetic
        return np.int64(value) if -2**63 <= value < 2**63 else np.float64(value)
    return np.float64(value)


class _Evaluator(ast.NodeVisitor):
    def __init__(self, arrays: Mapping[str, Any]) -> None:
        self._arrays = arrays

    def visit_Constant(self, node: ast.Constant) -> Any:
        return node.value

    def visit_Name(self, node: ast.Name) -> Any:
        return self._arrays[node.id]

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.visit(node.operand)
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return value
        return np.logical_not(value)

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        left, right = self.visit(node.left), self.visit(node.right)
        fn = np.float_power if isinstance(node.op, ast.Pow) else _BINARY[type(node.op)]
        if _is_python_number(left) and _is_python_number(right):
            # two constants: 64-bit numpy arithmetic, never Python's unbounded integers (exact in
            # int64 when it fits; float64 on overflow or division by zero: inf or nan, never a
            # wrapped integer); the result goes back to a Python number so that it mixes with
            # arrays as a literal does
            try:
                with np.errstate(all="raise"):
                    result = fn(_to_numpy(left, node.op), _to_numpy(right, node.op))
            except FloatingPointError:
                with np.errstate(all="ignore"):
                    result = fn(np.float64(left), np.float64(right))
            return result.item() if isinstance(result, np.generic) else result
        with np.errstate(all="ignore"):
            return fn(left, right)

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        fn = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        result = self.visit(node.values[0])
        for value in node.values[1:]:
            result = fn(result, self.visit(value))
        return result

    def visit_Compare(self, node: ast.Compare) -> Any:
        left = self.visit(node.left)
        result = None
        for op, comparator in zip(node.ops, node.comparators):
            right = self.visit(comparator)
            part = _COMPARE[type(op)](left, right)
            result = part if result is None else np.logical_and(result, part)
            left = right
        return result

    def visit_Call(self, node: ast.Call) -> Any:
        fn = FUNCTIONS[node.func.id][1]  # type: ignore[union-attr]
        with np.errstate(all="ignore"):
            return fn(*(self.visit(arg) for arg in node.args))

    def generic_visit(self, node: ast.AST) -> Any:  # pragma: no cover - checked at parse time
        raise InvalidArgument(f"cut construct {type(node).__name__} is not allowed", field="cut")
