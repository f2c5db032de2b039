"""Forms: each kind of definition as the backends see it.

Every backend (the eager composition, the generated C and Triton kernels) evaluates one
thing: an elementwise function of a tuple of *arguments*, its derivatives, and how the
call's *inputs* feed those arguments. The three kinds of definition are three forms:

==========  ==============================  ==============================  ====================
definition  inputs                          arguments                       feeds (input: ±arg)
==========  ==============================  ==============================  ====================
Loss        prediction p, target t          r = p − t                       p: +r, t: −r
NLLLoss     p, t, scale input s             r = p − t, v = max(s, floor)    p: +r, t: −r, s: +v
PairLoss    p, t                            p, t                            p: +p, t: +t
==========  ==============================  ==============================  ====================

So the gradient of an input is ± one argument's gradient (the NLL's floor passes the
gradient through, as PyTorch's ``gaussian_nll_loss`` does), and a backend writes one buffer
per argument: a residual loss one (the target's gradient is its negative), an NLL two, a
pair loss two. ``arguments`` is written against the array namespace like the definitions,
so the kernel generators trace it too: one definition of the loads, as of the formulas.

A masked element is evaluated at the form's ``neutral`` arguments (where the value and
gradient are finite: r = 0, v = 1) and multiplied by 0.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import Any

from .._namespace import namespace
from .._numerics import stop_gradient
from .._typing import Array
from ._base import _REGISTRY, Loss, PairLoss
from ._nll import _NLL_REGISTRY, NLLLoss, in_form

__all__ = ["AutodiffForm", "Form", "NLLForm", "PairForm", "ResidualForm", "form_of"]


class Form:
    """An elementwise definition over a tuple of arguments (see the module docstring)."""

    #: 'residual', 'nll' or 'pair'
    kind: str = ""
    #: the inputs a call passes: prediction, target (and the NLLs' scale input)
    n_inputs: int = 2
    #: per input: (argument index, sign) — its gradient is sign × that argument's
    feeds: tuple[tuple[int, float], ...] = ((0, 1.0), (0, -1.0))
    #: per argument: where a masked element is evaluated
    neutral: tuple[float, ...] = (0.0,)
    #: k when the gradient is k × the (single) argument exactly (squared error): the
    #: eager path keeps the argument and folds k into a scalar instead of a pass
    slope: float | None = None
    #: the arguments are new arrays (not the inputs): fused forms may write into them
    fresh_arguments: bool = False

    #: the definition (Loss, NLLLoss or PairLoss) this form evaluates (an attribute, not a
    #: property: it is read on every call)
    definition: Any = None
    #: every parameter a Python number, bool or tuple of numbers (set at construction)
    plain: bool = True

    @property
    def n_args(self) -> int:
        return len(self.neutral)

    def arguments(self, xp: Any, inputs: tuple[Array, ...], differentiable: bool = False) -> Any:
        """The arguments from inputs already in the compute dtype (a tuple)."""
        raise NotImplementedError

    def value(self, *args: Array) -> Array:
        raise NotImplementedError

    def grad(self, *args: Array) -> tuple[Array, ...]:
        """d value / d argument, one per argument."""
        raise NotImplementedError

    def hess(self, *args: Array) -> tuple[Array, ...]:
        """Second derivatives, the upper triangle row by row: (aa) for one argument,
        (aa, ab, bb) for two."""
        raise NotImplementedError

    def depends_on_position(self) -> bool:
        """True when the definition differs by element (per-output quantile levels, array
        parameters): never evaluated on flattened blocks, no generated kernel."""
        return bool(self.definition.depends_on_position())

    # Fused eager forms: defaults from the three methods; a form overrides them only to
    # save passes over memory (the residual losses' BLAS dots), never to change the
    # mathematics. ``overwrite``: the arguments are scratch the caller hands over.
    def value_sum(self, xp: Any, args: tuple[Array, ...], overwrite: bool = False) -> Array:
        return xp.sum(self.value(*args))

    def value_sum_and_grad(
        self, xp: Any, args: tuple[Array, ...], overwrite: bool = False
    ) -> tuple[Array, tuple[Array, ...]]:
        grads = self.grad(*args)  # first: value_sum may reuse the arguments' memory
        return self.value_sum(xp, args, overwrite), grads

    @property
    def registered(self) -> bool:
        """Whether the definition is a registered class (a generated kernel may serve it:
        subclasses and ad-hoc objects might trace differently from their registry name)."""
        raise NotImplementedError

    @property
    def key(self) -> str:
        """Text that names the form: what compiled graphs pass to the custom op."""
        raise NotImplementedError

    def params_need_grad(self) -> bool:
        """Whether a parameter is a tensor that requires grad (learned)."""
        if self.__dict__.get("_plain_params") or self.plain_params:
            return False
        d = self.definition
        return any(getattr(getattr(d, k), "requires_grad", False) for k in type(d).param_names)

    @property
    def plain_params(self) -> bool:
        """Every parameter a Python number, bool or tuple of numbers (no array or tensor):
        read once, the definition being frozen."""
        found = self.__dict__.get("_plain_params")
        if found is None:
            values = self.definition.params.values()
            found = not any(hasattr(v, "shape") or hasattr(v, "requires_grad") for v in values)
            object.__setattr__(self, "_plain_params", found)
        return bool(found)

    @property
    def kernel_eligible(self) -> bool:
        """Whether a generated kernel may serve this form at all: a registered class, the
        same at every position, plain parameters (read once)."""
        found = self.__dict__.get("_eligible")
        if found is None:
            found = self.registered and self.plain_params and not self.depends_on_position()
            object.__setattr__(self, "_eligible", found)
        return bool(found)

    def __getstate__(self) -> dict[str, Any]:
        """The fields only: the caches (kernels, flags) stay in their process."""
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


@dataclasses.dataclass(frozen=True, eq=True)
class ResidualForm(Form):
    """A :class:`Loss` of r = prediction − target: value ρ, gradient ψ, Hessian ψ′."""

    loss: Loss
    kind = "residual"
    fresh_arguments = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "slope", self.loss.psi_slope)
        object.__setattr__(self, "definition", self.loss)
        object.__setattr__(self, "plain", self.plain_params)

    def arguments(self, xp: Any, inputs: tuple[Array, ...], differentiable: bool = False) -> Any:
        return (inputs[0] - inputs[1],)

    def value(self, *args: Array) -> Array:
        return self.loss.rho(args[0])

    def grad(self, *args: Array) -> tuple[Array, ...]:
        return (self.loss.psi(args[0]),)

    def hess(self, *args: Array) -> tuple[Array, ...]:
        return (self.loss.psi_prime(args[0]),)

    def value_sum(self, xp: Any, args: tuple[Array, ...], overwrite: bool = False) -> Array:
        return self.loss.rho_sum(args[0], overwrite=overwrite)

    def value_sum_and_grad(
        self, xp: Any, args: tuple[Array, ...], overwrite: bool = False
    ) -> tuple[Array, tuple[Array, ...]]:
        total, psi = self.loss.rho_sum_and_psi(args[0], overwrite=overwrite)
        return total, (psi,)

    @property
    def registered(self) -> bool:
        return _REGISTRY.get(self.loss.name) is type(self.loss)

    @property
    def key(self) -> str:
        return repr(self.loss)

    def __repr__(self) -> str:
        return f"ResidualForm({self.loss!r})"


@dataclasses.dataclass(frozen=True, eq=True)
class NLLForm(Form):
    """An :class:`NLLLoss` with its scale input (or its log, ``log_input``): arguments
    (r, v) with v the floored scale input; β-NLL's weight v^β (a constant for autodiff,
    as Seitzer et al. define it) multiplies value and derivatives."""

    nll: NLLLoss
    log_input: bool = False
    kind = "nll"
    fresh_arguments = True
    n_inputs = 3
    feeds = ((0, 1.0), (0, -1.0), (1, 1.0))

    def __post_init__(self) -> None:
        object.__setattr__(self, "neutral", (0.0, 0.0 if self.log_input else 1.0))
        object.__setattr__(self, "_fns", in_form(self.nll, self.log_input))
        object.__setattr__(self, "definition", self.nll)
        object.__setattr__(self, "plain", self.plain_params)

    @property
    def floor(self) -> float:
        """The scale input's floor: eps, or log eps for a log input."""
        return math.log(self.nll.eps) if self.log_input else self.nll.eps

    @property
    def beta(self) -> float:
        return float(getattr(self.nll, "beta", 0.0))

    def arguments(self, xp: Any, inputs: tuple[Array, ...], differentiable: bool = False) -> Any:
        p, t, s = inputs
        floored = xp.clip(s, self.floor, None)
        # autodiff passes the gradient through the floor, as the analytic derivative does
        v = s + stop_gradient(xp, floored - s) if differentiable else floored
        return p - t, v

    def _weight(self, v: Array) -> Array | None:
        beta = self.beta
        if not beta:
            return None
        base = stop_gradient(namespace(v), v)
        return namespace(v).exp(beta * base) if self.log_input else base**beta

    def value(self, *args: Array) -> Array:
        out = self._fns.value(*args)  # type: ignore[attr-defined]
        w = self._weight(args[1])
        return out if w is None else out * w

    def grad(self, *args: Array) -> tuple[Array, ...]:
        d_r, d_v = self._fns.grad(*args)  # type: ignore[attr-defined]
        w = self._weight(args[1])
        return (d_r, d_v) if w is None else (d_r * w, d_v * w)

    def hess(self, *args: Array) -> tuple[Array, ...]:
        out = self._fns.hess(*args)  # type: ignore[attr-defined]
        w = self._weight(args[1])
        return tuple(out) if w is None else tuple(h * w for h in out)

    def depends_on_position(self) -> bool:
        return False

    @property
    def registered(self) -> bool:
        return _NLL_REGISTRY.get(self.nll.name) is type(self.nll)

    @property
    def key(self) -> str:
        return repr(self.nll) + (" log" if self.log_input else "")

    def params_need_grad(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"NLLForm({self.key})"


@dataclasses.dataclass(frozen=True, eq=True)
class PairForm(Form):
    """A :class:`PairLoss` of (prediction, target) themselves."""

    loss: PairLoss
    kind = "pair"
    feeds = ((0, 1.0), (1, 1.0))

    def __post_init__(self) -> None:
        object.__setattr__(self, "neutral", tuple(float(x) for x in self.loss.neutral))
        object.__setattr__(self, "definition", self.loss)
        object.__setattr__(self, "plain", self.plain_params)

    def arguments(self, xp: Any, inputs: tuple[Array, ...], differentiable: bool = False) -> Any:
        return inputs[0], inputs[1]

    def value(self, *args: Array) -> Array:
        return self.loss.value(*args)

    def grad(self, *args: Array) -> tuple[Array, ...]:
        return tuple(self.loss.grad(*args))

    def hess(self, *args: Array) -> tuple[Array, ...]:
        return tuple(self.loss.hess(*args))

    @property
    def registered(self) -> bool:
        return _REGISTRY.get(self.loss.name) is type(self.loss)

    @property
    def key(self) -> str:
        return repr(self.loss)

    def __repr__(self) -> str:
        return f"PairForm({self.loss!r})"


@dataclasses.dataclass(frozen=True, eq=False)
class AutodiffForm(Form):
    """``base`` evaluated as plain array operations, for autodiff to differentiate through
    its (overflow-safe) formula: where parameters themselves are differentiated or traced
    (Barron's alpha as a tensor that requires grad, an annealed JAX parameter)."""

    base: Form
    kind = "autodiff"

    def __post_init__(self) -> None:
        for name in ("n_inputs", "feeds", "neutral", "fresh_arguments", "definition", "plain"):
            object.__setattr__(self, name, getattr(self.base, name))

    def arguments(self, xp: Any, inputs: tuple[Array, ...], differentiable: bool = False) -> Any:
        return self.base.arguments(xp, inputs, differentiable=True)

    def value(self, *args: Array) -> Array:
        return self.base.value(*args)

    def depends_on_position(self) -> bool:
        return self.base.depends_on_position()

    @property
    def registered(self) -> bool:
        return False

    @property
    def key(self) -> str:
        return "autodiff " + self.base.key


def form_of(definition: Loss | PairLoss | NLLLoss, log_input: bool = False) -> Form:
    """The form of a definition (cached on it: a frozen loss object keeps its form)."""
    slot = "_form_log" if log_input else "_form"
    cached = definition.__dict__.get(slot)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    if isinstance(definition, Loss):
        form: Form = ResidualForm(definition)
    elif isinstance(definition, PairLoss):
        form = PairForm(definition)
    elif isinstance(definition, NLLLoss):
        form = NLLForm(definition, log_input)
    else:
        raise TypeError(f"not a regloss loss: {definition!r}")
    if not _compiling():  # Dynamo treats the attribute as a mutation and breaks the graph
        object.__setattr__(definition, slot, form)
    return form


def _compiling() -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and bool(torch.compiler.is_compiling())
