"""Trace a loss definition into an expression graph.

The definitions are written against an array namespace (``xp``); handing them a symbolic
residual :class:`Sym` whose namespace is :data:`TRACE` records every operation instead of
computing it. The graph is what the kernel generators read, so a kernel is generated from
the same code the NumPy, PyTorch and JAX front-ends run, never from a second copy of a
formula.

Python floats (the loss's parameters, constants in the formulas) become constants of the
compute dtype, as they do in eager NumPy (NEP 50) and PyTorch: ``r * 0.5`` on float32 is a
float32 product. Operations outside the small set below raise :class:`Untraceable`; the
loss then simply has no generated kernel and runs eagerly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["TRACE", "FormGraph", "Sym", "Untraceable", "trace", "trace_form"]


class Untraceable(TypeError):
    """The definition used an operation the tracer does not know."""


class _UnknownFunction(Untraceable, AttributeError):
    """``xp.<name>`` that the tracer lacks (an AttributeError too, so ``hasattr`` works)."""


#: unary functions every backend provides (C libm / libmvec, Triton's libdevice)
UNARY = ("abs", "exp", "expm1", "log", "log1p", "sqrt", "sinh", "tanh", "floor", "neg", "sign")


class Sym:
    """A node: ``op`` with ``args`` (nodes or Python floats). ``kind`` is 'f' (the compute
    dtype) or 'b' (a boolean). A node used twice is one object (the generators emit it
    once); repeated sub-expressions are left to the target compiler's CSE."""

    __slots__ = ("args", "kind", "op")
    __array_ufunc__ = None  # numpy scalars defer to Sym's reflected operators
    __hash__ = object.__hash__  # identity: == builds a comparison node

    def __init__(self, op: str, args: tuple[Any, ...], kind: str = "f") -> None:
        self.op, self.args, self.kind = op, args, kind

    def __bool__(self) -> bool:
        raise Untraceable("a definition branched in Python on the value of an array")

    # arithmetic
    def __add__(self, o: Any) -> Sym:
        return _bin("add", self, o)

    def __radd__(self, o: Any) -> Sym:
        return _bin("add", o, self)

    def __sub__(self, o: Any) -> Sym:
        return _bin("sub", self, o)

    def __rsub__(self, o: Any) -> Sym:
        return _bin("sub", o, self)

    def __mul__(self, o: Any) -> Sym:
        return _bin("mul", self, o)

    def __rmul__(self, o: Any) -> Sym:
        return _bin("mul", o, self)

    def __truediv__(self, o: Any) -> Sym:
        return _bin("div", self, o)

    def __rtruediv__(self, o: Any) -> Sym:
        return _bin("div", o, self)

    def __neg__(self) -> Sym:
        return Sym("neg", (self,))

    def __abs__(self) -> Sym:
        return Sym("abs", (self,))

    def __pow__(self, k: Any) -> Sym:
        if isinstance(k, Sym):
            return Sym("pow", (self, k))
        k = float(k)
        if k.is_integer() and 1 <= k <= 4:  # as NumPy and PyTorch: repeated products
            out = self
            for _ in range(int(k) - 1):
                out = _bin("mul", out, self)
            return out
        if k == 0.5:
            return Sym("sqrt", (self,))
        if k == -0.5:
            return _bin("div", 1.0, Sym("sqrt", (self,)))
        return Sym("pow", (self, k))

    # comparisons and logic
    def __lt__(self, o: Any) -> Sym:
        return _cmp("lt", self, o)

    def __le__(self, o: Any) -> Sym:
        return _cmp("le", self, o)

    def __gt__(self, o: Any) -> Sym:
        return _cmp("gt", self, o)

    def __ge__(self, o: Any) -> Sym:
        return _cmp("ge", self, o)

    def __eq__(self, o: Any) -> Sym:  # type: ignore[override]
        return _cmp("eq", self, o)

    def __ne__(self, o: Any) -> Sym:  # type: ignore[override]
        return _cmp("ne", self, o)

    def __and__(self, o: Any) -> Sym:
        return Sym("and", (self, o), "b")

    def __or__(self, o: Any) -> Sym:
        return Sym("or", (self, o), "b")

    def __invert__(self) -> Sym:
        return Sym("not", (self,), "b")

    # array-like attributes the definitions read
    @property
    def ndim(self) -> int:
        return 1

    @property
    def dtype(self) -> str:
        return "compute"

    def __repr__(self) -> str:
        return f"Sym({self.op})"


def _const(x: Any) -> Any:
    if isinstance(x, Sym):
        return x
    if isinstance(x, bool):
        raise Untraceable("a boolean constant in arithmetic")
    if isinstance(x, (int, float)) or hasattr(x, "__float__"):
        return float(x)
    raise Untraceable(f"operand of type {type(x).__name__}")


def _bin(op: str, a: Any, b: Any) -> Sym:
    return Sym(op, (_const(a), _const(b)))


def _cmp(op: str, a: Any, b: Any) -> Sym:
    return Sym(op, (_const(a), _const(b)), "b")


def _sym(x: Any) -> Any:
    if isinstance(x, Sym) and x.kind == "f":
        return x
    if isinstance(x, Sym):
        raise Untraceable("a boolean where a number is needed")
    return _const(x)


class _Namespace:
    """The array namespace of traced residuals: each function adds a node."""

    __name__ = "regloss.trace"
    float32 = "float32"
    float64 = "float64"

    def _unary(self, op: str) -> Callable[[Any], Sym]:
        return lambda x: Sym(op, (_sym(x),))

    def __getattr__(self, name: str) -> Any:
        if name in UNARY:
            return self._unary(name)
        raise _UnknownFunction(f"xp.{name}")

    @staticmethod
    def where(cond: Any, a: Any, b: Any) -> Sym:
        if not (isinstance(cond, Sym) and cond.kind == "b"):
            raise Untraceable("where() needs a traced condition")
        return Sym("where", (cond, _sym(a), _sym(b)))

    @staticmethod
    def clip(x: Any, lo: Any = None, hi: Any = None) -> Sym:
        out = _sym(x)
        # NaN passes through (comparisons with NaN are false), as in NumPy and PyTorch
        if lo is not None:
            out = Sym("where", (_cmp("lt", out, lo), _sym(lo), out))
        if hi is not None:
            out = Sym("where", (_cmp("gt", out, hi), _sym(hi), out))
        return _as_node(out)

    @staticmethod
    def minimum(a: Any, b: Any) -> Sym:
        return Sym("where", (_cmp("lt", b, a), _sym(b), _sym(a)))

    @staticmethod
    def maximum(a: Any, b: Any) -> Sym:
        return Sym("where", (_cmp("gt", b, a), _sym(b), _sym(a)))

    @staticmethod
    def pow(x: Any, k: Any) -> Sym:
        out: Sym = _sym(x) ** k
        return out

    @staticmethod
    def isfinite(x: Any) -> Sym:
        return Sym("isfinite", (_sym(x),), "b")

    @staticmethod
    def zeros_like(x: Any, **_: Any) -> float:
        return 0.0

    @staticmethod
    def ones_like(x: Any, **_: Any) -> float:
        return 1.0

    @staticmethod
    def full_like(x: Any, value: Any, **_: Any) -> float:
        return float(value)

    @staticmethod
    def square(x: Any) -> Sym:
        s = _sym(x)
        return _bin("mul", s, s)

    @staticmethod
    def logical_and(a: Any, b: Any) -> Sym:
        return Sym("and", (a, b), "b")

    @staticmethod
    def logical_or(a: Any, b: Any) -> Sym:
        return Sym("or", (a, b), "b")

    @staticmethod
    def logical_not(a: Any) -> Sym:
        return Sym("not", (a,), "b")

    @staticmethod
    def add(a: Any, b: Any, *, alpha: float = 1.0) -> Sym:
        return _bin("add", a, _bin("mul", alpha, b) if alpha != 1.0 else b)


TRACE = _Namespace()


def _as_node(x: Any) -> Sym:
    """A traced output; a constant output (e.g. psi_prime = 2) becomes a node."""
    if isinstance(x, Sym):
        if x.kind != "f":
            raise Untraceable("a boolean output")
        return x
    return Sym("const", (_const(x),))


def trace(fn: Callable[..., Any], inputs: tuple[str, ...] = ("r",)) -> Any:
    """The graph of ``fn(r)`` for a symbolic residual ``r`` (node ``Sym('r', ())``); with
    ``inputs=("r", "v")`` of ``fn(r, v)`` (the NLLs' scale input), whose result may be a
    tuple of graphs (``grad``)."""
    try:
        out = fn(*(Sym(name, ()) for name in inputs))
    except Untraceable:
        raise
    except (TypeError, AttributeError, ValueError) as exc:
        raise Untraceable(f"{type(exc).__name__}: {exc}") from exc
    if isinstance(out, tuple):
        return tuple(hoist_selects(_as_node(o)) for o in out)
    return hoist_selects(_as_node(out))


class FormGraph(NamedTuple):
    """A form traced in two stages: its arguments from the inputs (leaves ``x0``, ``x1``,
    ...), then value, gradient and Hessian from the arguments (leaves ``a0``, ``a1``)."""

    inputs: tuple[str, ...]
    args: tuple[str, ...]
    arguments: tuple[Sym, ...]
    value: Sym
    grads: tuple[Sym, ...]
    hess: tuple[Sym, ...]


def trace_form(form: Any) -> FormGraph:
    """The graphs of a form (:class:`regloss.losses.Form`); Untraceable where the
    definition uses an operation the tracer lacks."""
    inputs = tuple(f"x{i}" for i in range(form.n_inputs))
    args = tuple(f"a{j}" for j in range(form.n_args))

    def as_tuple(x: Any) -> tuple[Sym, ...]:
        return x if isinstance(x, tuple) else (x,)

    arguments = as_tuple(trace(lambda *xs: tuple(form.arguments(TRACE, xs)), inputs))
    value = trace(form.value, args)
    grads = as_tuple(trace(lambda *a: tuple(form.grad(*a)), args))
    hess = as_tuple(trace(lambda *a: tuple(form.hess(*a)), args))
    if isinstance(value, tuple) or len(arguments) != len(args) or len(grads) != len(args):
        raise Untraceable("a form's value, arguments and gradients do not match")
    return FormGraph(inputs, args, arguments, value, grads, hess)


#: operations worth one select per operand instead of a second evaluation: a select costs
#: one instruction, a division several (a reciprocal and its refinement), a function tens
HOISTED = frozenset({"div", "sqrt", "exp", "expm1", "log", "log1p", "sinh", "tanh", "pow"})


def hoist_selects(root: Sym) -> Sym:
    """Rewrite ``where(c, f(a, b), f(d, e))`` as ``f(where(c, a, d), where(c, b, e))`` for an
    expensive ``f`` (:data:`HOISTED`) whose two evaluations have no other use.

    A kernel computes both sides of every select, so the overflow-safe definitions, which
    write a formula twice (one form below a threshold, one above), would otherwise pay for
    each division and function twice. The value is the same bit for bit: ``f`` sees exactly
    the operands the select would have chosen the result of."""
    uses: dict[int, int] = {}
    seen: set[int] = set()
    stack = [root]
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        for a in x.args:
            if isinstance(a, Sym):
                uses[id(a)] = uses.get(id(a), 0) + 1
                stack.append(a)
    done: dict[int, Any] = {}

    def pick(c: Sym, a: Any, b: Any) -> Any:
        if a is b or (not isinstance(a, Sym) and not isinstance(b, Sym) and a == b):
            return a
        return rewrite(Sym("where", (c, a, b)))

    def rewrite(x: Any) -> Any:
        if not isinstance(x, Sym) or not x.args:
            return x
        key = id(x)
        if key in done:
            return done[key]
        args = tuple(rewrite(a) for a in x.args)
        same = all(n is o for n, o in zip(args, x.args, strict=True))
        out = x if same else Sym(x.op, args, x.kind)
        if out.op == "where":
            c, a, b = args
            if (
                isinstance(a, Sym)
                and isinstance(b, Sym)
                and a.op == b.op
                and a.op in HOISTED
                and a is not b
                # the rewritten operands are new nodes where a subgraph changed: used once
                and uses.get(id(a), 1) == 1
                and uses.get(id(b), 1) == 1
            ):
                out = Sym(a.op, tuple(pick(c, u, v) for u, v in zip(a.args, b.args, strict=True)))
        done[key] = out
        return out

    result: Sym = rewrite(root)
    return result


def _register() -> None:
    """Make :func:`regloss._namespace.namespace` answer :data:`TRACE` for a :class:`Sym`."""
    from .. import _namespace

    _namespace._BACKENDS[Sym] = "trace"
    _namespace._MODULES["trace"] = TRACE


_register()


#: the operators every backend writes infix (booleans are 0/1: & and | need no branches)
INFIX = {
    "add": "+",
    "sub": "-",
    "mul": "*",
    "div": "/",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
    "eq": "==",
    "ne": "!=",
    "and": "&",
    "or": "|",
}
#: the elementwise functions a traced graph may call (``Sym.op``)
FUNCTIONS = ("abs", "exp", "expm1", "log", "log1p", "sqrt", "sinh", "tanh", "floor", "pow")


class Emitter:
    """Writes a traced graph as straight-line code, one named value per node (a node used
    twice is computed once). A backend (C, Triton) supplies the syntax below. ``leaves``
    are the graph's inputs (the names :func:`trace` gave them), written as themselves."""

    def __init__(self, leaves: tuple[str, ...] = ("r", "v")) -> None:
        self.lines: list[str] = []
        self.names: dict[int, str] = {}
        self.leaves = frozenset(leaves)

    # --- the backend's syntax -----------------------------------------------------------
    def literal(self, x: float) -> str:
        raise NotImplementedError

    def assign(self, name: str, expr: str, boolean: bool) -> str:
        raise NotImplementedError

    def call(self, fn: str, args: list[str]) -> str:
        raise NotImplementedError

    def select(self, cond: str, a: str, b: str) -> str:
        raise NotImplementedError

    def negate(self, cond: str) -> str:
        raise NotImplementedError

    def isfinite(self, v: str) -> str:
        raise NotImplementedError

    def const(self, x: float) -> str:
        """A constant as a value of the compute dtype (a node, or a select's branch)."""
        return self.literal(x)

    # --- the walk -----------------------------------------------------------------------
    def value(self, x: Any) -> str:
        if not isinstance(x, Sym):
            return self.literal(x)
        key = id(x)
        if key not in self.names:
            expr = self.expr(x)
            name = f"v{len(self.names)}"
            self.lines.append(self.assign(name, expr, x.kind == "b"))
            self.names[key] = name
        return self.names[key]

    def branch(self, x: Any) -> str:
        return self.value(x) if isinstance(x, Sym) else self.const(x)

    def expr(self, x: Sym) -> str:
        op, a = x.op, x.args
        if op in self.leaves and not a:  # the graph's inputs
            return op
        if op == "const":
            return self.const(a[0])
        if op in INFIX:
            return f"({self.value(a[0])} {INFIX[op]} {self.value(a[1])})"
        if op == "neg":
            return f"(-{self.value(a[0])})"
        if op == "where":
            return self.select(self.value(a[0]), self.branch(a[1]), self.branch(a[2]))
        if op == "not":
            return self.negate(self.value(a[0]))
        if op == "isfinite":
            return self.isfinite(self.value(a[0]))
        if op == "sign":  # sign(±0) = ±0 and sign(NaN) = NaN, as NumPy
            v = self.value(a[0])
            neg = self.select(f"({v} < 0)", self.const(-1.0), v)
            return self.select(f"({v} > 0)", self.const(1.0), neg)
        if op in FUNCTIONS:
            return self.call(op, [self.branch(v) for v in a])
        raise Untraceable(f"no code for {op}")
