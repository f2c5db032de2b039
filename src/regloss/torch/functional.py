"""Functional PyTorch losses, drop-in for ``torch.nn.functional``'s.

Each registered loss is available as ``<name>_loss`` (and under PyTorch's own name where
it has the loss: ``mse_loss``, ``l1_loss``, ``huber_loss``, ``smooth_l1_loss``), with the
signature ``f(input, target, reduction='mean', *, <loss parameters>, weight=None,
mask=None, nan_policy='propagate', broadcast=False)``.

Unlike ``torch.nn.functional``, a target whose shape differs from the input's is an error
(``broadcast=True`` opts in), integer inputs are a TypeError, float16/bfloat16 inputs are
computed in float32 and the loss comes back as float32.

Examples
--------
>>> import torch
>>> from regloss.torch import functional as RF
>>> pred = torch.tensor([1.5, 2.0, 4.0], requires_grad=True)
>>> loss = RF.mse_loss(pred, torch.tensor([1.0, 2.0, 3.0]))
>>> loss.backward()
>>> round(loss.item(), 4), pred.grad
(0.4167, tensor([0.3333, 0.0000, 0.6667]))
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from .._dispatch import Explanation
from .._frontend import OPTION_DOC, loss_signature_params, torch_names
from .._reduction import TORCH_REDUCTIONS, Options, get_reduction
from .._typing import NanPolicy, QuantileLevels
from .._typing import TorchReduction as Reduction
from ..losses import Form, Loss, PairLoss, form_of, registered, resolve_definition
from ._routes import TABLE, call, explain_call

__all__ = ["explain", "loss", "use_route", *torch_names()]


def loss(
    name_or_loss: str | Loss | PairLoss,
    input: Tensor,
    target: Tensor,
    reduction: str = "mean",
    *,
    weight: Tensor | None = None,
    mask: Tensor | None = None,
    nan_policy: str = "propagate",
    broadcast: bool = False,
    **params: Any,
) -> Tensor:
    """The loss ``name_or_loss`` of ``(input, target)`` = (prediction, target)."""
    spec = resolve_definition(name_or_loss, params)
    return _evaluate(spec, input, target, reduction, weight, mask, nan_policy, broadcast)


loss.__doc__ = (loss.__doc__ or "") + OPTION_DOC


def _options(reduction: str, weight: Any, mask: Any, nan_policy: str, broadcast: bool) -> Options:
    return Options(get_reduction(reduction, TORCH_REDUCTIONS), weight, mask, nan_policy, broadcast)


def _evaluate(
    spec: Loss | PairLoss,
    input: Tensor,
    target: Tensor,
    reduction: str,
    weight: Tensor | None,
    mask: Tensor | None,
    nan_policy: str,
    broadcast: bool,
) -> Tensor:
    options = Options(
        get_reduction(reduction, TORCH_REDUCTIONS), weight, mask, nan_policy, broadcast
    )
    return call(form_of(spec), (input, target), options)


def explain(
    name_or_loss: str | Loss | PairLoss,
    input: Tensor,
    target: Tensor,
    reduction: str = "mean",
    *,
    weight: Tensor | None = None,
    mask: Tensor | None = None,
    nan_policy: str = "propagate",
    broadcast: bool = False,
    **params: Any,
) -> Explanation:
    """The route the call ``loss(name_or_loss, input, target, ...)`` takes, and why each
    row above it declined (``str()`` reads as a list); nothing is computed. The facts are
    read as the call reads them: grad mode, compiling and torch.func as they are now.

    Examples
    --------
    >>> import torch
    >>> from regloss.torch import explain
    >>> x = torch.randn(8, requires_grad=True)
    >>> print(explain("huber", x, torch.zeros(8)))
    torch: route 'torch_native' (the first row that applies)
    >>> print(explain("cauchy", x, torch.zeros(8), mask=x > 0))  # doctest: +ELLIPSIS
    torch: route 'eager' (the first row that applies)
      torch_native: declined: PyTorch has no loss of this definition
      torch_native_weighted: declined: no weight of the prediction's shape and dtype ...
      c_kernel: declined: a mask or nan_policy other than 'propagate'
      triton: declined: not plain tensors on a Triton device
      compile_op: declined: not compiling
      autodiff: declined: no parameter requires grad
      composite: declined: no torch.func transform, weight that requires grad, or ...
      eager_blocked: declined: 8 elements, not more than 1048576 (eager_blocks)
    """
    spec = resolve_definition(name_or_loss, params)
    options = _options(reduction, weight, mask, nan_policy, broadcast)
    return explain_call(form_of(spec), (input, target), options)


def use_route(name: str) -> Any:
    """A context manager forcing route ``name`` (a row of the torch route table) for the
    regloss.torch calls inside it; a call it does not apply to raises
    :class:`regloss.RouteError` with the reason. ``REGLOSS_ROUTE=name`` does the same for
    a whole process.

    Examples
    --------
    >>> import torch
    >>> from regloss.torch import huber_loss, use_route
    >>> with use_route("eager"):
    ...     huber_loss(torch.tensor([1.5, 2.0, 4.0]), torch.tensor([1.0, 2.0, 3.0]))
    tensor(0.2083)
    """
    return TABLE.use(name)


def _legacy_reduction(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    """PyTorch's deprecated ``size_average``/``reduce``, mapped as PyTorch maps them (with
    its deprecation warning)."""
    if size_average is None and reduce is None:
        return reduction
    legacy: str = torch.nn._reduction.legacy_get_string(size_average, reduce)
    return legacy


_FORMS: dict[tuple[Any, ...], Form] = {}


def _spec(name: str, params: dict[str, Any]) -> Loss | PairLoss:
    """The loss object for ``name`` and ``params`` (cached with its form)."""
    return _form(name, params).definition  # type: ignore[no-any-return]


def _form(name: str, params: dict[str, Any]) -> Form:
    """The form of the loss ``name`` with ``params``, cached (constructing a loss costs
    microseconds; the parameters of a training loop rarely change)."""
    for v in params.values():  # (a loop: a generator here costs a microsecond a call)
        if hasattr(v, "shape"):
            # array/tensor parameters: not cached (tensors hash by identity: caching them
            # would keep them, and their autograd history, alive)
            return form_of(resolve_definition(name, params))
    try:
        key = (name, *params.items())
        form = _FORMS.get(key)
    except TypeError:  # unhashable parameter values
        return form_of(resolve_definition(name, params))
    if form is None:
        form = form_of(resolve_definition(name, params))
        if not torch.compiler.is_compiling():  # (Dynamo: no side effects while tracing)
            if len(_FORMS) > 1024:
                _FORMS.clear()
            _FORMS[key] = form
    return form


def _call(
    name: str,
    params: dict[str, Any],
    input: Tensor,
    target: Tensor,
    reduction: str,
    weight: Tensor | None,
    mask: Tensor | None,
    nan_policy: str,
    broadcast: bool,
) -> Tensor:
    red = _REDUCTIONS.get(reduction) if type(reduction) is str else None
    if red is None:
        red = get_reduction(reduction, TORCH_REDUCTIONS)  # (raises the error)
    # tuple.__new__: Options(...) is one Python call more on every call
    options = _NEW(Options, (red, weight, mask, nan_policy, broadcast))
    return call(_form(name, params), (input, target), options)


_REDUCTIONS = {name: get_reduction(name, TORCH_REDUCTIONS) for name in TORCH_REDUCTIONS}
_NEW: Any = tuple.__new__


@functools.cache
def _function(registry_name: str, public_name: str) -> Callable[..., Tensor]:
    """A functional for a loss registered after this module was generated."""
    cls = registered()[registry_name]

    def fn(
        input: Tensor,
        target: Tensor,
        reduction: str = "mean",
        *,
        weight: Tensor | None = None,
        mask: Tensor | None = None,
        nan_policy: str = "propagate",
        broadcast: bool = False,
        **params: Any,
    ) -> Tensor:
        return _call(
            registry_name, params, input, target, reduction, weight, mask, nan_policy, broadcast
        )

    fn.__name__ = fn.__qualname__ = public_name
    fn.__module__ = __name__
    fn.__doc__ = f"The {registry_name} loss of ``(input, target)``.\n\n{cls.__doc__}\n{OPTION_DOC}"
    base = inspect.signature(fn)
    params = [p for p in base.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    fn.__signature__ = base.replace(  # type: ignore[attr-defined]
        parameters=params[:3] + loss_signature_params(cls) + params[3:]
    )
    return fn


if not TYPE_CHECKING:  # type checkers see only the generated names below

    def __getattr__(name: str) -> Callable[..., Tensor]:
        names = torch_names()
        if name in names:
            return _function(names[name], name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(torch_names()))


# --- generated by scripts/make_frontends.py from the registry: do not edit ---


def mse_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Reduction = "mean",
    weight: Tensor | None = None,
    *,
    mask: Tensor | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Tensor:
    r"""The mse loss of ``(input, target)`` = (prediction, target): Squared error, :math:`\rho(r) =
    r^2`, :math:`\psi(r) = 2r`, :math:`\psi'(r) = 2`.

    See :class:`regloss.losses.SquaredError`.
    """
    params: dict[str, Any] = {}
    return _call(
        "mse",
        params,
        input,
        target,
        _legacy_reduction(size_average, reduce, reduction),
        weight,
        mask,
        nan_policy,
        broadcast,
    )


def l1_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Reduction = "mean",
    weight: Tensor | None = None,
    *,
    mask: Tensor | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Tensor:
    r"""The mae loss of ``(input, target)`` = (prediction, target): Absolute error, :math:`\rho(r) =
    |r|`, :math:`\psi(r) = \operatorname{sign}(r)`.

    See :class:`regloss.losses.AbsoluteError`.
    """
    params: dict[str, Any] = {}
    return _call(
        "mae",
        params,
        input,
        target,
        _legacy_reduction(size_average, reduce, reduction),
        weight,
        mask,
        nan_policy,
        broadcast,
    )


def mae_loss(
    input: Tensor,
    target: Tensor,
    reduction: Reduction = "mean",
    *,
    weight: Tensor | None = None,
    mask: Tensor | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Tensor:
    r"""The mae loss of ``(input, target)`` = (prediction, target): Absolute error, :math:`\rho(r) =
    |r|`, :math:`\psi(r) = \operatorname{sign}(r)`.

    See :class:`regloss.losses.AbsoluteError`.
    """
    params: dict[str, Any] = {}
    return _call("mae", params, input, target, reduction, weight, mask, nan_policy, broadcast)


def huber_loss(
    input: Tensor,
    target: Tensor,
    reduction: Reduction = "mean",
    delta: float = 1.0,
    weight: Tensor | None = None,
    *,
    mask: Tensor | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Tensor:
    r"""The huber loss of ``(input, target)`` = (prediction, target): Huber loss in PyTorch's
    convention.

    See :class:`regloss.losses.Huber`.
    """
    params: dict[str, Any] = {"delta": delta}
    return _call("huber", params, input, target, reduction, weight, mask, nan_policy, broadcast)


def smooth_l1_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: Reduction = "mean",
    beta: float = 1.0,
    *,
    weight: Tensor | None = None,
    mask: Tensor | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Tensor:
    r"""The smooth_l1 loss of ``(input, target)`` = (prediction, target): SmoothL1 in PyTorch's
    convention: ``huber(beta) / beta``.

    See :class:`regloss.losses.SmoothL1`.
    """
    params: dict[str, Any] = {"beta": beta}
    return _call(
        "smooth_l1",
        params,
        input,
        target,
        _legacy_reduction(size_average, reduce, reduction),
        weight,
        mask,
        nan_policy,
        broadcast,
    )


def pseudo_huber_loss(
    input: Tensor,
    target: Tensor,
    reduction: Reduction = "mean",
    *,
    delta: float = 1.0,
    weight: Tensor | None = None,
    mask: Tensor | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Tensor:
    r"""The pseudo_huber loss of ``(input, target)`` = (prediction, target): Pseudo-Huber
    (Charbonnier): :math:`\rho(r) = \delta^2(\sqrt{1 + (r/\delta)^2} - 1)`.

    See :class:`regloss.losses.PseudoHuber`.
    """
    params: dict[str, Any] = {"delta": delta}
    return _call(
        "pseudo_huber", params, input, target, reduction, weight, mask, nan_policy, broadcast
    )


def log_cosh_loss(
    input: Tensor,
    target: Tensor,
    reduction: Reduction = "mean",
    *,
    weight: Tensor | None = None,
    mask: Tensor | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Tensor:
    r"""The log_cosh loss of ``(input, target)`` = (prediction, target): Log-cosh: :math:`\rho(r) =
    \log\cosh r`, :math:`\psi = \tanh r`,     :math:`\psi' = 1 - \tanh^2 r`.

    See :class:`regloss.losses.LogCosh`.
    """
    params: dict[str, Any] = {}
    return _call("log_cosh", params, input, target, reduction, weight, mask, nan_policy, broadcast)


def quantile_loss(
    input: Tensor,
    target: Tensor,
    reduction: Reduction = "mean",
    *,
    q: QuantileLevels = 0.5,
    weight: Tensor | None = None,
    mask: Tensor | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Tensor:
    r"""The quantile loss of ``(input, target)`` = (prediction, target): Quantile (pinball) loss at
    level q, on r = prediction − target.

    See :class:`regloss.losses.Quantile`.
    """
    params: dict[str, Any] = {"q": q}
    return _call("quantile", params, input, target, reduction, weight, mask, nan_policy, broadcast)


def cauchy_loss(
    input: Tensor,
    target: Tensor,
    reduction: Reduction = "mean",
    *,
    c: float = 2.385,
    weight: Tensor | None = None,
    mask: Tensor | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Tensor:
    r"""The cauchy loss of ``(input, target)`` = (prediction, target): Cauchy (Lorentzian):
    :math:`\rho(r) = \tfrac{c^2}{2}\log(1 + (r/c)^2)`.

    See :class:`regloss.losses.Cauchy`.
    """
    params: dict[str, Any] = {"c": c}
    return _call("cauchy", params, input, target, reduction, weight, mask, nan_policy, broadcast)


def geman_mcclure_loss(
    input: Tensor,
    target: Tensor,
    reduction: Reduction = "mean",
    *,
    c: float = 3.787,
    weight: Tensor | None = None,
    mask: Tensor | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Tensor:
    r"""The geman_mcclure loss of ``(input, target)`` = (prediction, target): Geman-McClure:
    :math:`\rho(r) = \tfrac{c^2}{2}\,\frac{(r/c)^2}{1 + (r/c)^2}`.

    See :class:`regloss.losses.GemanMcClure`.
    """
    params: dict[str, Any] = {"c": c}
    return _call(
        "geman_mcclure", params, input, target, reduction, weight, mask, nan_policy, broadcast
    )


def welsch_loss(
    input: Tensor,
    target: Tensor,
    reduction: Reduction = "mean",
    *,
    c: float = 2.985,
    weight: Tensor | None = None,
    mask: Tensor | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Tensor:
    r"""The welsch loss of ``(input, target)`` = (prediction, target): Welsch (Leclerc):
    :math:`\rho(r) = \tfrac{c^2}{2}(1 - e^{-(r/c)^2})`.

    See :class:`regloss.losses.Welsch`.
    """
    params: dict[str, Any] = {"c": c}
    return _call("welsch", params, input, target, reduction, weight, mask, nan_policy, broadcast)


def tukey_loss(
    input: Tensor,
    target: Tensor,
    reduction: Reduction = "mean",
    *,
    c: float = 4.685,
    weight: Tensor | None = None,
    mask: Tensor | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Tensor:
    r"""The tukey loss of ``(input, target)`` = (prediction, target): Tukey's biweight (bisquare).

    See :class:`regloss.losses.Tukey`.
    """
    params: dict[str, Any] = {"c": c}
    return _call("tukey", params, input, target, reduction, weight, mask, nan_policy, broadcast)


def fair_loss(
    input: Tensor,
    target: Tensor,
    reduction: Reduction = "mean",
    *,
    c: float = 1.3998,
    weight: Tensor | None = None,
    mask: Tensor | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Tensor:
    r"""The fair loss of ``(input, target)`` = (prediction, target): Fair: :math:`\rho(r) =
    c^2\left(|r|/c - \log(1 + |r|/c)\right)`.

    See :class:`regloss.losses.Fair`.
    """
    params: dict[str, Any] = {"c": c}
    return _call("fair", params, input, target, reduction, weight, mask, nan_policy, broadcast)


def barron_loss(
    input: Tensor,
    target: Tensor,
    reduction: Reduction = "mean",
    *,
    alpha: float = 1.0,
    scale: float = 1.0,
    weight: Tensor | None = None,
    mask: Tensor | None = None,
    nan_policy: NanPolicy = "propagate",
    broadcast: bool = False,
) -> Tensor:
    r"""The barron loss of ``(input, target)`` = (prediction, target): Barron's general robust loss
    :math:`\rho(r; \alpha, c)`.

    See :class:`regloss.losses.Barron`.
    """
    params: dict[str, Any] = {"alpha": alpha, "scale": scale}
    return _call("barron", params, input, target, reduction, weight, mask, nan_policy, broadcast)


# --- end of generated code ---
