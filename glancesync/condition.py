"""A safe evaluator for metadata_condition (an AST whitelist; no eval of arbitrary code).

Why an interpreter and not ``eval`` of a vetted AST: a static check cannot know the
types of values, so it cannot tell ``image.name.startswith('x')`` (fine) from
``image.copy()`` (a method of our own object) or ``' '.center(10**9)`` (a 1 GB string).
Walking the tree ourselves lets every attribute read, every call and every size-producing
operation be checked against the real runtime value, and nothing is ever handed to
CPython's ``eval``. Conditions are tiny and evaluated once per master image and target,
so the interpreter's speed does not matter.

Two layers:
* construction (``Condition(source, where)``): parse in ``eval`` mode and reject any node,
  name, attribute or call that is not whitelisted -> ConfigError naming ``where``;
* evaluation: the interpreter re-checks attributes and calls against the actual values,
  bounds work (steps) and the size of produced strings/lists/ints. A runtime failure
  (KeyError, TypeError, a denied operation...) is logged as a WARNING and the image is
  not selected: one odd image must not abort a whole run.

Decisions: f-strings are rejected (a format spec like ``{x:>999999999}`` is a memory
bomb and they add nothing for a boolean test); ``%`` on strings and ``<<``/``>>`` are
rejected for the same reason; comprehensions and generator expressions are allowed
(``any(k.startswith('nid') for k in image.user_properties)``).
"""

from __future__ import annotations

import ast
import logging
import operator
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from glancesync.exceptions import ConfigError, GlanceSyncError

LOG = logging.getLogger(__name__)

MAX_SOURCE_CHARS = 10_000
MAX_STEPS = 20_000  # nodes evaluated (incl. comprehension iterations) per image
# Work units per image: every operation whose cost grows with its operands (building,
# copying, comparing, searching, hashing, sorting, converting, big-integer arithmetic)
# is charged what it handles, before it runs. With MAX_STEPS this keeps any condition
# well under a second per image (bench/bench_condition.py prints the worst cases).
MAX_SIZE = 200_000
MAX_INT_BITS = 4096  # ~1233 decimal digits: any integer a condition may make
MAX_ROUND_DIGITS = 400  # round(x, n): |n| beyond this is refused (10**n is computed)

GLOBAL_NAMES = ("image", "metadata_set")

SAFE_BUILTINS: dict[str, Callable[..., Any]] = {
    f.__name__: f
    for f in (
        len, str, int, float, bool, set, frozenset, list, tuple, dict,
        any, all, min, max, sorted, abs, round,
    )
}
_SAFE_BUILTIN_IDS = {id(f) for f in SAFE_BUILTINS.values()}

_STR_METHODS = frozenset(
    {
        "startswith", "endswith", "lower", "upper", "casefold", "title", "capitalize",
        "swapcase", "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines",
        "partition", "rpartition", "find", "rfind", "index", "rindex", "count",
        "isdigit", "isalpha", "isalnum", "isspace", "islower", "isupper", "isdecimal",
        "isnumeric", "istitle", "removeprefix", "removesuffix",
        # these produce sized output; checked by _check_str_method_size
        "join", "replace", "zfill", "ljust", "rjust", "center",
    }
)
_SET_METHODS = frozenset(
    {
        "intersection", "union", "difference", "symmetric_difference", "issubset",
        "issuperset", "isdisjoint", "copy",
    }
)
_VIEW_METHODS = frozenset({"isdisjoint"})
# Only methods that do not mutate: user_properties is the image's own dict.
SAFE_METHODS: dict[type, frozenset[str]] = {
    str: _STR_METHODS,
    dict: frozenset({"get", "keys", "values", "items", "copy"}),
    set: _SET_METHODS,
    frozenset: _SET_METHODS,
    list: frozenset({"count", "index", "copy"}),
    tuple: frozenset({"count", "index"}),
    type({}.keys()): _VIEW_METHODS,
    type({}.items()): _VIEW_METHODS,
}
_ALL_SAFE_METHOD_NAMES = frozenset().union(*SAFE_METHODS.values())

_VIEW_TYPES = (type({}.keys()), type({}.values()), type({}.items()))
# Values whose attributes are never read directly: only whitelisted method calls.
_BUILTIN_VALUE_TYPES = (
    str, bytes, int, float, complex, bool, type(None), list, tuple, dict, set, frozenset,
    range, *_VIEW_TYPES,
)

_BIN_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
}
_UNARY_OPS: dict[type, Callable[[Any], Any]] = {
    ast.Not: operator.not_,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Invert: operator.invert,
}
_CMP_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}

# Human names for the constructs we refuse, used in error messages.
_REFUSED = {
    ast.Lambda: "lambda",
    ast.NamedExpr: "the := operator",
    ast.JoinedStr: "an f-string",
    ast.FormattedValue: "an f-string",
    ast.Starred: "* unpacking",
    ast.Await: "await",
    ast.Yield: "yield",
    ast.YieldFrom: "yield",
    ast.LShift: "the << operator",
    ast.RShift: "the >> operator",
    ast.MatMult: "the @ operator",
}


class ConditionError(GlanceSyncError):
    """metadata_condition failed on one image (the image is then not selected)."""


class _Denied(Exception):
    """A runtime check refused an operation (kept apart from ordinary Python errors)."""


# ------------------------------------------------------------------------------------
# Construction-time check
# ------------------------------------------------------------------------------------


def _refuse(node: ast.AST) -> str:
    return _REFUSED.get(type(node), type(node).__name__)


def _names_bound(target: ast.expr) -> set[str]:
    """Names a comprehension target binds; only plain names and tuples of them."""
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, (ast.Tuple, ast.List)):
        names: set[str] = set()
        for elt in target.elts:
            names |= _names_bound(elt)
        return names
    raise _Denied(f"{_refuse(target)} as a comprehension target is not allowed")


class _Checker:
    """Walks the parsed tree once and raises _Denied at the first forbidden construct."""

    allowed_names = frozenset(GLOBAL_NAMES) | frozenset(SAFE_BUILTINS)

    def check(self, node: ast.AST, bound: frozenset[str]) -> None:
        if type(node) in _REFUSED:
            raise _Denied(f"{_refuse(node)} is not allowed")
        handler = getattr(self, f"_{type(node).__name__}", None)
        if handler is None:
            raise _Denied(f"{_refuse(node)} is not allowed")
        handler(node, bound)

    def _all(self, nodes: Iterable[ast.AST | None], bound: frozenset[str]) -> None:
        for child in nodes:
            if child is not None:
                self.check(child, bound)

    def _Expression(self, node: ast.Expression, bound: frozenset[str]) -> None:
        self.check(node.body, bound)

    def _Constant(self, node: ast.Constant, bound: frozenset[str]) -> None:
        if node.value is Ellipsis or isinstance(node.value, bytes):
            raise _Denied(f"the literal {node.value!r} is not allowed")

    def _Name(self, node: ast.Name, bound: frozenset[str]) -> None:
        if node.id not in self.allowed_names and node.id not in bound:
            raise _Denied(f"'{node.id}' is not allowed")

    def _Attribute(self, node: ast.Attribute, bound: frozenset[str]) -> None:
        if node.attr.startswith("_"):
            raise _Denied(f"'{node.attr}' is not allowed")
        self.check(node.value, bound)

    def _BoolOp(self, node: ast.BoolOp, bound: frozenset[str]) -> None:
        self._all(node.values, bound)

    def _BinOp(self, node: ast.BinOp, bound: frozenset[str]) -> None:
        if type(node.op) not in _BIN_OPS:
            raise _Denied(f"{_refuse(node.op)} is not allowed")
        self._all((node.left, node.right), bound)

    def _UnaryOp(self, node: ast.UnaryOp, bound: frozenset[str]) -> None:
        self.check(node.operand, bound)

    def _Compare(self, node: ast.Compare, bound: frozenset[str]) -> None:
        self._all([node.left, *node.comparators], bound)

    def _IfExp(self, node: ast.IfExp, bound: frozenset[str]) -> None:
        self._all((node.test, node.body, node.orelse), bound)

    def _Tuple(self, node: ast.Tuple, bound: frozenset[str]) -> None:
        self._all(node.elts, bound)

    _List = _Tuple
    _Set = _Tuple

    def _Dict(self, node: ast.Dict, bound: frozenset[str]) -> None:
        if any(key is None for key in node.keys):
            raise _Denied("** unpacking is not allowed")
        self._all([*node.keys, *node.values], bound)

    def _Subscript(self, node: ast.Subscript, bound: frozenset[str]) -> None:
        self._all((node.value, node.slice), bound)

    def _Slice(self, node: ast.Slice, bound: frozenset[str]) -> None:
        self._all((node.lower, node.upper, node.step), bound)

    def _Call(self, node: ast.Call, bound: frozenset[str]) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id not in SAFE_BUILTINS and func.id not in bound:
                raise _Denied(f"'{func.id}' is not allowed")
        elif isinstance(func, ast.Attribute):
            if func.attr.startswith("_"):
                raise _Denied(f"'{func.attr}' is not allowed")
            self.check(func.value, bound)  # report 'os' in os.system() first
            if func.attr not in _ALL_SAFE_METHOD_NAMES:
                raise _Denied(f"calling method '{func.attr}' is not allowed")
        else:
            raise _Denied("only calls of allowed functions and methods are allowed")
        for keyword in node.keywords:
            if keyword.arg is None:
                raise _Denied("** unpacking is not allowed")
        self._all([*node.args, *(k.value for k in node.keywords)], bound)

    def _comprehension(
        self, generators: list[ast.comprehension], elts: list[ast.expr], bound: frozenset[str]
    ) -> None:
        for gen in generators:
            if gen.is_async:
                raise _Denied("async comprehensions are not allowed")
            self.check(gen.iter, bound)  # the iterable sees the names bound so far
            bound = bound | _names_bound(gen.target)
            self._all(gen.ifs, bound)
        self._all(elts, bound)

    def _ListComp(self, node: ast.ListComp, bound: frozenset[str]) -> None:
        self._comprehension(node.generators, [node.elt], bound)

    _SetComp = _ListComp
    _GeneratorExp = _ListComp

    def _DictComp(self, node: ast.DictComp, bound: frozenset[str]) -> None:
        self._comprehension(node.generators, [node.key, node.value], bound)


# ------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------


class _Interpreter:
    """Evaluates a checked tree, re-checking every attribute and call on live values."""

    def __init__(self, scope: Mapping[str, Any]) -> None:
        self.scope: ChainMap[str, Any] = ChainMap({}, dict(scope))
        self.steps = 0
        self.size = 0

    def eval(self, node: ast.AST) -> Any:
        self.tick()
        return getattr(self, f"_{type(node).__name__}")(node)

    def tick(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise _Denied(f"evaluation took more than {MAX_STEPS} steps")

    def charge(self, size: int) -> None:
        self.size += max(size, 0)
        if self.size > MAX_SIZE:
            raise _Denied(
                f"the condition produced or handled more than {MAX_SIZE} characters or "
                "items (the work allowed per image)"
            )

    def deep(self, value: Any) -> int:
        """Charge and return the size of ``value`` (counting stops at the budget left)."""
        size = _deep_size(value, MAX_SIZE - self.size + 1)
        self.charge(size)
        return size

    # -- leaves ------------------------------------------------------------------------
    def _Expression(self, node: ast.Expression) -> Any:
        return self.eval(node.body)

    def _Constant(self, node: ast.Constant) -> Any:
        return node.value

    def _Name(self, node: ast.Name) -> Any:
        try:
            return self.scope[node.id]
        except KeyError:
            raise NameError(f"name '{node.id}' is not defined") from None

    def _Attribute(self, node: ast.Attribute) -> Any:
        obj = self.eval(node.value)
        if isinstance(obj, _BUILTIN_VALUE_TYPES) or isinstance(obj, type) or callable(obj):
            raise _Denied(
                f"reading attribute '{node.attr}' of a value of type {type(obj).__name__} is "
                "not allowed (only calls of whitelisted methods)"
            )
        return getattr(obj, node.attr)

    # -- operators -----------------------------------------------------------------------
    def _BoolOp(self, node: ast.BoolOp) -> Any:
        value: Any = None
        for child in node.values:
            value = self.eval(child)
            if isinstance(node.op, ast.And) and not value:
                return value
            if isinstance(node.op, ast.Or) and value:
                return value
        return value

    def _BinOp(self, node: ast.BinOp) -> Any:
        left, right = self.eval(node.left), self.eval(node.right)
        self._check_binop(node.op, left, right)
        result = _BIN_OPS[type(node.op)](left, right)
        if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
            raise _Denied(f"an integer of more than {MAX_INT_BITS} bits is too large")
        return result

    def _check_binop(self, op: ast.operator, left: Any, right: Any) -> None:
        """Refuse or charge an operation before it runs (its cost grows with its operands)."""
        sequences = (str, list, tuple)
        if isinstance(op, ast.Mod) and isinstance(left, str):
            raise _Denied("%-formatting of strings is not allowed")
        if isinstance(left, int) and isinstance(right, int):
            self._check_int_op(op, left, right)
            return
        if isinstance(op, ast.Mult):
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, sequences) and isinstance(count, int):
                    self.charge(len(seq) * count)
            return
        sized = (str, list, tuple, set, frozenset, dict, *_VIEW_TYPES)
        for operand in (left, right):
            if isinstance(operand, sized):
                self.charge(len(operand))  # +, |, &, -, ^ of sequences, sets, dicts
            elif isinstance(operand, int):
                self.charge(_int_cost(operand))

    def _check_int_op(self, op: ast.operator, left: int, right: int) -> None:
        # Big-integer work grows with the product of the operand sizes (in 64-bit words)
        # for *, //, %, / and **; the result's size is known before it is computed.
        words_l, words_r = _words(left), _words(right)
        if isinstance(op, ast.Mult):
            if left and right and left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
                raise _Denied(f"an integer of more than {MAX_INT_BITS} bits is too large")
            self.charge(words_l * words_r)
        elif isinstance(op, ast.Pow):
            if right > 0 and abs(left) > 1 and left.bit_length() * right > MAX_INT_BITS + right:
                raise _Denied(f"{_short(left)} ** {_short(right)} is too large")
            if right > 0:
                words = min(left.bit_length() * right, MAX_INT_BITS) // 64 + 1
                self.charge(words * words)
            else:
                self.charge(words_l + words_r)
        elif isinstance(op, (ast.FloorDiv, ast.Mod, ast.Div)):
            self.charge(words_l * words_r)
        else:
            self.charge(words_l + words_r)

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        operand = self.eval(node.operand)
        if isinstance(operand, int):
            self.charge(_words(operand))
        return _UNARY_OPS[type(node.op)](operand)

    def _Compare(self, node: ast.Compare) -> bool:
        left = self.eval(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self.eval(comparator)
            self._charge_compare(op, left, right)
            if not _CMP_OPS[type(op)](left, right):
                return False
            left = right
        return True

    def _charge_compare(self, op: ast.cmpop, left: Any, right: Any) -> None:
        if isinstance(op, (ast.Is, ast.IsNot)):
            return
        if isinstance(op, (ast.In, ast.NotIn)):
            if isinstance(right, (set, frozenset, dict, type({}.keys()))):
                self.deep(left)  # hashed, then one comparison
            elif isinstance(right, str):
                self.charge(len(right) + (len(left) if isinstance(left, str) else 0))
            else:  # a scan: every element is compared with the needle
                self.deep(right)
                self.deep(left)
            return
        self.deep(left)  # ==, <, ... walk both values
        self.deep(right)

    def _IfExp(self, node: ast.IfExp) -> Any:
        return self.eval(node.body) if self.eval(node.test) else self.eval(node.orelse)

    # -- displays and subscripts -------------------------------------------------------
    def _Tuple(self, node: ast.Tuple) -> tuple[Any, ...]:
        return tuple(self.eval(e) for e in node.elts)

    def _List(self, node: ast.List) -> list[Any]:
        return [self.eval(e) for e in node.elts]

    def _Set(self, node: ast.Set) -> set[Any]:
        return self._hashed([self.eval(e) for e in node.elts])

    def _Dict(self, node: ast.Dict) -> dict[Any, Any]:
        pairs = [(self.eval(k), self.eval(v)) for k, v in zip(node.keys, node.values, strict=True)]
        self._hashed([k for k, _ in pairs])
        return dict(pairs)

    def _hashed(self, items: list[Any]) -> set[Any]:
        """A set of ``items``, charged for hashing them (a tuple's hash is not cached)."""
        for item in items:
            self.deep(item)
        return set(items)

    def _Subscript(self, node: ast.Subscript) -> Any:
        container, key = self.eval(node.value), self.eval(node.slice)
        if isinstance(container, dict):
            self.deep(key)
        result = container[key]
        if isinstance(key, slice) and isinstance(result, (str, list, tuple)):
            self.charge(len(result))  # a slice is a copy
        return result

    def _Slice(self, node: ast.Slice) -> slice:
        parts = (node.lower, node.upper, node.step)
        return slice(*(None if p is None else self.eval(p) for p in parts))

    # -- calls -------------------------------------------------------------------------
    def _Call(self, node: ast.Call) -> Any:
        func = node.func
        if isinstance(func, ast.Attribute):
            obj = self.eval(func.value)
            allowed = SAFE_METHODS.get(type(obj), frozenset())
            if func.attr not in allowed:
                raise _Denied(
                    f"calling '{func.attr}' on a value of type {type(obj).__name__} is not allowed"
                )
            args, kwargs = self._arguments(node)
            # A method scans its object (and its arguments): count, find, split,
            # index, copy, issubset...; what it builds is charged below.
            self.charge(len(obj) if hasattr(obj, "__len__") else 1)
            for value in (*args, *kwargs.values()):
                self.deep(value)
            if isinstance(obj, str):
                args = self._check_str_method_size(obj, func.attr, args)
            return getattr(obj, func.attr)(*args, **kwargs)
        target = self.eval(func)
        if id(target) not in _SAFE_BUILTIN_IDS:
            raise _Denied(f"calling {target!r} is not allowed")
        args, kwargs = self._arguments(node)
        for arg in (*args, *kwargs.values()):
            # str()/sorted()/min() work on the whole nested value: [big] * 1000 is
            # cheap to build (1000 references) but not to print or to sort.
            size = self.deep(arg)
            if target is sorted:  # n log n comparisons
                self.charge(size * max(size, 1).bit_length())
            elif kwargs.get("key") is not None:  # the key is called on every item
                self.charge(size)
        key = kwargs.get("key")
        if key is not None and id(key) not in _SAFE_BUILTIN_IDS:
            raise _Denied("key= must be one of the allowed builtins, e.g. key=len")
        if target is round:
            digits = args[1] if len(args) > 1 else kwargs.get("ndigits")
            if isinstance(digits, int) and abs(digits) > MAX_ROUND_DIGITS:
                raise _Denied(f"round() to {_short(digits)} digits is not allowed")
        result = target(*args, **kwargs)
        if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
            raise _Denied(f"an integer of more than {MAX_INT_BITS} bits is too large")
        return result

    def _arguments(self, node: ast.Call) -> tuple[list[Any], dict[str, Any]]:
        args = [self.eval(a) for a in node.args]
        kwargs = {k.arg: self.eval(k.value) for k in node.keywords if k.arg is not None}
        return args, kwargs

    def _check_str_method_size(self, text: str, method: str, args: list[Any]) -> list[Any]:
        """Charge the size of what join/replace/padding would build, before building it."""
        if method == "join" and args:
            items = list(args[0])
            lengths = sum(len(i) for i in items if isinstance(i, str))
            self.charge(lengths + len(text) * max(len(items) - 1, 0))
            return [items, *args[1:]]
        if method == "replace" and len(args) >= 2:
            old, new = args[0], args[1]
            if isinstance(old, str) and isinstance(new, str):
                hits = text.count(old) if old else len(text) + 1
                if len(args) > 2 and isinstance(args[2], int) and args[2] >= 0:
                    hits = min(hits, args[2])
                self.charge(len(text) + hits * len(new))
        elif method in ("zfill", "ljust", "rjust", "center") and args:
            if isinstance(args[0], int):
                self.charge(args[0])
        return args

    # -- comprehensions ----------------------------------------------------------------
    def _generate(
        self, generators: list[ast.comprehension], emit: Callable[[], None]
    ) -> None:
        gen, rest = generators[0], generators[1:]
        for item in self.eval(gen.iter):
            self.tick()
            self._bind(gen.target, item)
            if all(self.eval(cond) for cond in gen.ifs):
                if rest:
                    self._generate(rest, emit)
                else:
                    emit()

    def _bind(self, target: ast.expr, value: Any) -> None:
        if isinstance(target, ast.Name):
            self.scope[target.id] = value
            return
        assert isinstance(target, (ast.Tuple, ast.List))  # guaranteed by _Checker
        if hasattr(value, "__len__"):
            self.charge(len(value))  # unpacking copies it
        values = list(value)
        if len(values) != len(target.elts):
            raise ValueError(f"cannot unpack {len(values)} values into {len(target.elts)}")
        for sub, val in zip(target.elts, values, strict=True):
            self._bind(sub, val)

    def _collect(self, generators: list[ast.comprehension], make: Callable[[], Any]) -> list:
        out: list[Any] = []
        self.scope = self.scope.new_child()  # comprehension variables do not leak
        try:
            self._generate(generators, lambda: out.append(make()))
        finally:
            self.scope = self.scope.parents
        return out

    def _ListComp(self, node: ast.ListComp) -> list[Any]:
        return self._collect(node.generators, lambda: self.eval(node.elt))

    def _SetComp(self, node: ast.SetComp) -> set[Any]:
        return self._hashed(self._collect(node.generators, lambda: self.eval(node.elt)))

    def _GeneratorExp(self, node: ast.GeneratorExp) -> Any:
        # Eager, but still an iterator so len(genexp) fails as it would in Python.
        return iter(self._collect(node.generators, lambda: self.eval(node.elt)))

    def _DictComp(self, node: ast.DictComp) -> dict[Any, Any]:
        pairs = self._collect(node.generators, lambda: (self.eval(node.key), self.eval(node.value)))
        self._hashed([k for k, _ in pairs])
        return dict(pairs)


def _deep_size(value: Any, limit: int) -> int:
    """Characters + items reachable from ``value``, counted until ``limit`` is passed."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, (str, bytes)):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item)
            stack.extend(item.items())
        elif isinstance(item, (list, tuple, set, frozenset, *_VIEW_TYPES)):
            total += len(item)
            if total > limit:
                break
            # Flat collections of strings or small numbers are counted at C speed: the
            # counting itself must stay cheaper than the work it bounds.
            kinds = set(map(type, item))
            if kinds <= {str}:
                total += sum(map(len, item))
            elif kinds <= {int, bool} and max(map(int.bit_length, item), default=0) <= 128:
                total += len(item)
            elif kinds <= {float, bool, type(None)}:
                total += len(item)
            else:
                stack.extend(item)
        elif isinstance(item, int) and item.bit_length() > 128:
            total += _int_cost(item)
        else:
            total += 1
    return total


def _words(value: int) -> int:
    """64-bit words of an integer (at least 1)."""
    return value.bit_length() // 64 + 1


def _int_cost(value: int) -> int:
    """What converting or comparing an integer costs: str(int) is quadratic."""
    words = _words(value)
    return words * words // 4 + 1


def _short(value: int) -> str:
    """An integer for a message: never thousands of digits."""
    return str(value) if value.bit_length() <= 64 else f"<an integer of {value.bit_length()} bits>"


# ------------------------------------------------------------------------------------
# Public class
# ------------------------------------------------------------------------------------


class Condition:
    """A compiled, vetted expression over ``image`` and ``metadata_set``.

    ``where`` names the origin for messages, e.g.
    ``[/etc/glancesync.conf] section [master] option metadata_condition``.
    """

    def __init__(self, source: str, where: str = "metadata_condition") -> None:
        self.source = source.strip()
        self.where = where
        self._tree = self._parse(self.source)

    def _parse(self, source: str) -> ast.Expression:
        if not source:
            raise ConfigError(f"{self.where}: the condition is empty")
        if len(source) > MAX_SOURCE_CHARS:
            raise ConfigError(
                f"{self.where}: the condition is longer than {MAX_SOURCE_CHARS} characters"
            )
        try:
            tree = ast.parse(source, filename=self.where, mode="eval")
        except SyntaxError as exc:
            raise ConfigError(
                f"{self.where}: syntax error at line {exc.lineno}, column {exc.offset}: "
                f"{exc.msg}"
            ) from None
        except (ValueError, RecursionError, MemoryError) as exc:
            raise ConfigError(f"{self.where}: cannot parse the condition: {exc}") from None
        try:
            _Checker().check(tree, frozenset())
        except _Denied as exc:
            raise ConfigError(f"{self.where}: {exc}") from None
        except RecursionError:
            raise ConfigError(f"{self.where}: the condition is too deeply nested") from None
        return tree

    def evaluate(self, image: Any, metadata_set: Iterable[str]) -> Any:
        """The raw result; raises ConditionError naming the condition and the image."""
        scope = {**SAFE_BUILTINS, "image": image, "metadata_set": frozenset(metadata_set)}
        try:
            return _Interpreter(scope).eval(self._tree)
        except Exception as exc:  # noqa: BLE001 - any failure means "not selected"
            name = getattr(image, "name", None)
            ident = getattr(image, "id", None)
            reason = str(exc) if isinstance(exc, _Denied) else f"{type(exc).__name__}: {exc}"
            raise ConditionError(
                f"metadata_condition {self.source!r} ({self.where}) failed on image "
                f"{name} ({ident}): {reason}"
            ) from exc

    def __call__(self, image: Any, metadata_set: Iterable[str]) -> bool:
        selected, failure = self.decide(image, metadata_set)
        if failure:
            LOG.warning("%s", failure)
        return selected

    def decide(self, image: Any, metadata_set: Iterable[str]) -> tuple[bool, str]:
        """What ``__call__`` answers, and the warning it logs when the condition fails
        ("" when it does not): a caller that reuses the answer can repeat the warning."""
        try:
            result = self.evaluate(image, metadata_set)
        except ConditionError as exc:
            return False, f"{exc}: not selected"
        return bool(result), ""

    def __repr__(self) -> str:
        return f"Condition({self.source!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Condition):
            return NotImplemented
        return ast.dump(self._tree) == ast.dump(other._tree)

    def __hash__(self) -> int:
        return hash(ast.dump(self._tree))
