"""The metrics of :mod:`regloss.metrics` as ``torch.nn.Module`` s, torchmetrics-style.

``update(preds, target, weight=None, mask=None)`` accumulates, ``forward`` returns the
batch's value while accumulating, ``compute()`` the value over everything seen, ``reset()``
forgets. States are float64 tensors on the inputs' device (buffers: ``.to(device)`` and
``state_dict()`` carry them); sums are double-double (hi + lo, each batch's float64 sum
added exactly by TwoSum), so the batching changes a result only through the rounding of each
batch's own sum. R² and explained variance merge (weight, mean, M2) by Chan's formula, as
:mod:`regloss.metrics` does (the same code).

Under ``torch.distributed`` ``compute()`` gathers every rank's state (one ``all_gather``
of one small tensor) and merges them in rank order, so every rank gets the same value and
the ranks may have made different numbers of updates. ``MedianAbsoluteError`` keeps its
values (or, beyond ``exact_limit``, its histogram) on the host, gathered with
``all_gather_object``; each of its updates copies ``|r|`` to the host.

``num_outputs`` is given up front (as in torchmetrics), so that a rank that saw no data has
states of the right shape.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from .. import metrics as _m
from .._reduction import NONE, Options
from .._validate import NAN_POLICIES, check_nan_policy, prepare
from ..losses import Loss, available_losses, available_nll_losses, resolve
from ..losses._nll import resolve_nll
from ._distributed import initialised

__all__ = [
    "ExplainedVariance",
    "MaxError",
    "MeanAbsoluteError",
    "MeanLoss",
    "MeanPinballLoss",
    "MeanSquaredError",
    "MedianAbsoluteError",
    "Metric",
    "R2Score",
    "RootMeanSquaredError",
]

_F64 = torch.float64


def _two_sum(hi: torch.Tensor, lo: torch.Tensor, v: torch.Tensor) -> tuple[Any, Any]:
    """(hi, lo) + v, exactly for finite values (Knuth's TwoSum), renormalised."""
    s = hi + v
    b = s - hi
    err = (hi - (s - b)) + (v - b)
    lo = lo + err
    top = s + lo
    return top, lo - (top - s)


def _pair_value(hi: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isfinite(hi), hi + lo, hi)


class Metric(torch.nn.Module):
    """Base class (see the module docstring). A subclass names its states (float64 tensors
    of shape (num_outputs,)) in ``STATES`` with their initial values, and defines
    ``_update_states(batch)``, ``_merge_states(a, b)`` and ``_per_output(states)``."""

    #: state name -> initial value
    STATES: ClassVar[dict[str, float]] = {}
    _variance_weighted = False

    def __init__(
        self,
        *,
        num_outputs: int = 1,
        multioutput: Any = "uniform_average",
        nan_policy: str = "propagate",
        sync_on_compute: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(num_outputs, bool) or not isinstance(num_outputs, int) or num_outputs < 1:
            raise ValueError(
                f"{type(self).__name__}: num_outputs must be an int >= 1, got {num_outputs!r}"
            )
        if nan_policy not in NAN_POLICIES:
            check_nan_policy(nan_policy)
        self.num_outputs, self.nan_policy = num_outputs, nan_policy
        self.multioutput = _m.Metric._check_multioutput(self, multioutput)  # type: ignore[arg-type]
        self.sync_on_compute = sync_on_compute
        for name, init in self.STATES.items():
            self.register_buffer(name, torch.full((num_outputs,), init, dtype=_F64))
        self._updates = 0

    # states -------------------------------------------------------------------------

    def _states(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in self.STATES}

    def _set_states(self, states: dict[str, torch.Tensor]) -> None:
        for name, value in states.items():
            getattr(self, name).copy_(value)

    def reset(self) -> None:
        """Forget everything seen."""
        for name, init in self.STATES.items():
            getattr(self, name).fill_(init)
        self._updates = 0

    def merge(self, other: Metric) -> Metric:
        """Add ``other``'s state (a metric of this class and configuration) to this one."""
        if type(other) is not type(self) or other.extra_repr() != self.extra_repr():
            raise ValueError(
                f"{type(self).__name__}.merge: other is {other!r}, not a metric like {self!r}"
            )
        other_states = {k: v.to(getattr(self, k).device) for k, v in other._states().items()}
        self._set_states(self._merge_states(self._states(), other_states))
        self._updates += other._updates
        return self

    def _gathered(self) -> dict[str, torch.Tensor]:
        """Every rank's states merged in rank order (one all_gather of their concatenation)."""
        states = self._states()
        flat = torch.cat(list(states.values()))
        parts = [torch.empty_like(flat) for _ in range(torch.distributed.get_world_size())]
        torch.distributed.all_gather(parts, flat)
        merged: dict[str, torch.Tensor] | None = None
        for part in parts:
            mine = dict(zip(states, torch.split(part, self.num_outputs), strict=True))
            merged = mine if merged is None else self._merge_states(merged, mine)
        assert merged is not None
        return merged

    # the torchmetrics interface -------------------------------------------------------

    def update(self, preds: Any, target: Any, weight: Any = None, mask: Any = None) -> None:
        """Add a batch (the losses' input rules; integers are computed in float64)."""
        batch = self._batch(preds, target, weight, mask)
        self._move_to(batch.p.device)
        self._set_states(self._merge_states(self._states(), self._update_states(batch)))
        self._updates += 1

    def forward(self, preds: Any, target: Any, weight: Any = None, mask: Any = None) -> Any:
        """The metric of this batch alone; the batch is also accumulated."""
        batch = self._batch(preds, target, weight, mask)
        self._move_to(batch.p.device)
        mine = self._update_states(batch)
        self._set_states(self._merge_states(self._states(), mine))
        self._updates += 1
        return self._value(mine)

    def compute(self) -> Any:
        """The metric over everything seen (on every rank, under torch.distributed): a 0-d
        tensor, or one value per output with multioutput='raw_values'. NaN where no element
        (or no weight) was seen."""
        states = self._gathered() if self.sync_on_compute and initialised() else self._states()
        return self._value(states)

    def extra_repr(self) -> str:
        mo = self.multioutput
        mo_repr = repr(mo if isinstance(mo, str) else mo.tolist())
        return (
            f"num_outputs={self.num_outputs}, multioutput={mo_repr}, nan_policy={self.nan_policy!r}"
        )

    # internals ------------------------------------------------------------------------

    def _move_to(self, device: torch.device) -> None:
        first = next(iter(self._states().values()), None)
        if first is not None and first.device != device:
            self.to(device)

    def _batch(self, preds: Any, target: Any, weight: Any, mask: Any) -> _m._Batch:
        p, t = _real(preds), _real(target)
        if not isinstance(p, torch.Tensor) or not isinstance(t, torch.Tensor):
            raise TypeError(
                f"{type(self).__name__}: preds and target must be torch tensors, got "
                f"{type(preds).__name__} and {type(target).__name__} (regloss.metrics takes "
                "NumPy arrays)"
            )
        p, t = p.detach(), t.detach()
        w = None if weight is None else _real(weight).detach()
        prep = prepare(torch, p, t, Options(NONE, w, mask, self.nan_policy))
        if p.ndim > 2:
            raise ValueError(
                f"preds has shape {tuple(p.shape)}; metrics take (n,) for one output or "
                f"(n, outputs) for several (reshape to (n, -1))"
            )
        n = p.shape[0] if p.ndim else 1
        k = p.shape[1] if p.ndim == 2 else 1
        if k != self.num_outputs:
            raise ValueError(
                f"{type(self).__name__}: preds has {k} output(s) but num_outputs="
                f"{self.num_outputs}; pass num_outputs={k}"
            )
        shape = (n, k)
        w64 = (
            torch.ones(shape, dtype=_F64, device=p.device)
            if prep.weight is None
            else torch.broadcast_to(prep.weight, p.shape).reshape(shape).to(_F64)
        )
        keep = None if prep.keep is None else torch.broadcast_to(prep.keep, p.shape).reshape(shape)
        return _m._Batch(
            p.to(_F64).reshape(shape), t.to(_F64).reshape(shape), w64, keep, tuple(p.shape)
        )

    def _value(self, states: dict[str, torch.Tensor]) -> Any:
        values, variance = self._per_output(states)
        return _aggregate(self, values, variance)

    def _update_states(self, batch: _m._Batch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _merge_states(
        self, a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _per_output(self, states: dict[str, torch.Tensor]) -> tuple[Any, Any]:
        """(values per output, the outputs' weights for 'variance_weighted' or None)."""
        raise NotImplementedError


def _real(x: Any) -> Any:
    if isinstance(x, torch.Tensor) and not (x.is_floating_point() or x.dtype == torch.bool):
        return x.to(_F64)  # integer targets, as scikit-learn and torchmetrics take them
    return x


def _aggregate(metric: Metric, values: torch.Tensor, variance: Any) -> torch.Tensor:
    mo = metric.multioutput
    if isinstance(mo, str):
        if mo == "raw_values":
            return values
        if mo == "variance_weighted" and variance is not None:
            total = variance.sum()
            uniform = values.mean()
            weighted = (values * variance).sum() / torch.where(total > 0, total, 1.0)
            return torch.where(total > 0, weighted, uniform)
        return values.mean()
    if mo.size != values.numel():
        raise ValueError(
            f"{type(metric).__name__}: multioutput has {mo.size} weights but num_outputs="
            f"{values.numel()}"
        )
    if not mo.sum() > 0:
        raise ValueError(f"{type(metric).__name__}: the multioutput weights sum to 0")
    w = torch.as_tensor(mo, dtype=_F64, device=values.device)
    return (values * w).sum() / w.sum()


def _add_pairs(
    a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], *names: str
) -> dict[str, torch.Tensor]:
    """The double-double sums ``name_hi``/``name_lo`` of a and b added."""
    out = {}
    for name in names:
        hi, lo = _two_sum(a[f"{name}_hi"], a[f"{name}_lo"], b[f"{name}_hi"])
        hi, lo = _two_sum(hi, lo, b[f"{name}_lo"])
        out[f"{name}_hi"], out[f"{name}_lo"] = hi, lo
    return out


def _pairs(name: str) -> dict[str, float]:
    return {f"{name}_hi": 0.0, f"{name}_lo": 0.0}


# --- sums of an elementwise function -------------------------------------------------------


class MeanLoss(Metric):
    """Σ w·ρ(preds − target) / Σ w per output for a registered loss (see
    :class:`regloss.metrics.MeanLoss`); an NLL takes ``update(..., scale=var)``."""

    STATES: ClassVar[dict[str, float]] = {**_pairs("w"), **_pairs("v")}

    def __init__(
        self,
        name: str,
        *,
        num_outputs: int = 1,
        multioutput: Any = "uniform_average",
        nan_policy: str = "propagate",
        sync_on_compute: bool = True,
        **params: Any,
    ) -> None:
        self._loss: Loss | None = None
        if name in available_nll_losses():
            resolve_nll(name, dict(params))
        elif name in available_losses():
            self._loss = resolve(name, dict(params))
        else:
            raise ValueError(
                f"MeanLoss: unknown loss {name!r}; choose one of "
                f"{available_losses() + available_nll_losses()}"
            )
        self.name, self.params = name, dict(params)
        self._scale: Any = None
        super().__init__(
            num_outputs=num_outputs,
            multioutput=multioutput,
            nan_policy=nan_policy,
            sync_on_compute=sync_on_compute,
        )

    def extra_repr(self) -> str:
        params = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"{self.name!r}{params}, {super().extra_repr()}"

    def update(
        self, preds: Any, target: Any, weight: Any = None, mask: Any = None, *, scale: Any = None
    ) -> None:
        """Add a batch; ``scale``: an NLL's variance or scale input."""
        self._take_scale(scale)
        try:
            super().update(preds, target, weight, mask)
        finally:
            self._scale = None

    def forward(
        self, preds: Any, target: Any, weight: Any = None, mask: Any = None, *, scale: Any = None
    ) -> Any:
        self._take_scale(scale)
        try:
            return super().forward(preds, target, weight, mask)
        finally:
            self._scale = None

    def _take_scale(self, scale: Any) -> None:
        nll = self._loss is None
        if (scale is None) == nll:
            need = "needs" if nll else "takes no"
            raise ValueError(
                f"MeanLoss({self.name!r}).update {need} scale= (the NLL's variance or scale input)"
            )
        self._scale = scale

    def _values(self, batch: _m._Batch) -> torch.Tensor:
        if self._loss is not None:
            out: torch.Tensor = self._loss.rho(batch.p - batch.t).to(_F64)
            return out
        from . import nll as _nll

        fn = getattr(_nll, f"{self.name}_loss")
        scale = torch.as_tensor(self._scale).detach().to(_F64)
        with torch.no_grad():
            values = fn(
                batch.p.reshape(batch.orig_shape),
                batch.t.reshape(batch.orig_shape),
                scale,
                reduction="none",
                **self.params,
            )
        return values.reshape(batch.shape).to(_F64)  # type: ignore[no-any-return]

    def _update_states(self, batch: _m._Batch) -> dict[str, torch.Tensor]:
        zero = torch.zeros_like(batch.weight_sum())
        return {
            "w_hi": batch.weight_sum(),
            "w_lo": zero,
            "v_hi": batch.sum(self._values(batch)),
            "v_lo": zero,
        }

    def _merge_states(
        self, a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        return _add_pairs(a, b, "w", "v")

    def _means(self, states: dict[str, torch.Tensor]) -> torch.Tensor:
        w = _pair_value(states["w_hi"], states["w_lo"])
        v = _pair_value(states["v_hi"], states["v_lo"])
        out: torch.Tensor = _m._weighted_mean(v, w, torch.nan)
        return out

    def _per_output(self, states: dict[str, torch.Tensor]) -> tuple[Any, Any]:
        return self._means(states), None


class MeanSquaredError(MeanLoss):
    """Σw(preds − target)² / Σw per output (torchmetrics' ``MeanSquaredError``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("mse", **kwargs)


class RootMeanSquaredError(MeanLoss):
    """√(ΣSE/Σw) per output, never a mean of batch RMSEs (torchmetrics'
    ``MeanSquaredError(squared=False)``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("mse", **kwargs)

    def _per_output(self, states: dict[str, torch.Tensor]) -> tuple[Any, Any]:
        return torch.sqrt(self._means(states)), None


class MeanAbsoluteError(MeanLoss):
    """Σw|preds − target| / Σw per output (torchmetrics' ``MeanAbsoluteError``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("mae", **kwargs)


class MeanPinballLoss(MeanLoss):
    """The mean pinball loss at level ``q`` (scikit-learn's ``mean_pinball_loss``)."""

    def __init__(self, q: float = 0.5, **kwargs: Any) -> None:
        super().__init__("quantile", q=q, **kwargs)


# --- variances -------------------------------------------------------------------------------


def _moments(states: dict[str, torch.Tensor], prefix: str) -> _m._Moments:
    out = _m._Moments(states[f"{prefix}_w"])
    for key in _m._Moments.KEYS:
        setattr(out, key, states[f"{prefix}_{key}"])
    return out


def _moment_names(prefix: str) -> dict[str, float]:
    return {f"{prefix}_{key}": 0.0 for key in _m._Moments.KEYS}


def _moment_states(m: _m._Moments, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}_{key}": getattr(m, key) for key in _m._Moments.KEYS}


def _merge_moments(
    a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], prefix: str
) -> dict[str, torch.Tensor]:
    m = _moments(a, prefix)
    m.merge(_moments(b, prefix))
    return _moment_states(m, prefix)


class R2Score(Metric):
    """1 − Σw(y − ŷ)² / Σw(y − ȳ)² per output (torchmetrics' and scikit-learn's R²;
    constant targets give 1 for a perfect fit, else 0)."""

    STATES: ClassVar[dict[str, float]] = {
        **_pairs("sse"),
        **{f"y_{k}": 0.0 for k in _m._Moments.KEYS},
    }
    _variance_weighted = True

    def _update_states(self, batch: _m._Batch) -> dict[str, torch.Tensor]:
        r = batch.p - batch.t
        sse = {"sse_hi": batch.sum(r * r), "sse_lo": torch.zeros_like(batch.weight_sum())}
        return {**sse, **_moment_states(_m._Moments.of(batch, batch.t), "y")}

    def _merge_states(
        self, a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        return {**_add_pairs(a, b, "sse"), **_merge_moments(a, b, "y")}

    def _per_output(self, states: dict[str, torch.Tensor]) -> tuple[Any, Any]:
        m2 = states["y_m2"]
        return _m._explained(_pair_value(states["sse_hi"], states["sse_lo"]), m2), m2


class ExplainedVariance(Metric):
    """1 − Var_w(y − ŷ) / Var_w(y) per output (torchmetrics' ``ExplainedVariance``)."""

    STATES: ClassVar[dict[str, float]] = {
        f"{p}_{k}": 0.0 for p in ("r", "y") for k in _m._Moments.KEYS
    }
    _variance_weighted = True

    def _update_states(self, batch: _m._Batch) -> dict[str, torch.Tensor]:
        return {
            **_moment_states(_m._Moments.of(batch, batch.t - batch.p), "r"),
            **_moment_states(_m._Moments.of(batch, batch.t), "y"),
        }

    def _merge_states(
        self, a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        return {**_merge_moments(a, b, "r"), **_merge_moments(a, b, "y")}

    def _per_output(self, states: dict[str, torch.Tensor]) -> tuple[Any, Any]:
        variance = _m._weighted_mean(states["y_m2"], states["y_w"], 0.0)
        return _m._explained(states["r_m2"], states["y_m2"]), variance


# --- order statistics -----------------------------------------------------------------------


class MaxError(Metric):
    """max |preds − target| per output over kept elements of positive weight."""

    STATES: ClassVar[dict[str, float]] = {"max": -float("inf")}

    def _update_states(self, batch: _m._Batch) -> dict[str, torch.Tensor]:
        return {"max": batch.counted_abs_error().amax(dim=0)}

    def _merge_states(
        self, a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        return {"max": torch.maximum(a["max"], b["max"])}  # NaN wins

    def _per_output(self, states: dict[str, torch.Tensor]) -> tuple[Any, Any]:
        m = states["max"]
        return torch.where(m == -torch.inf, torch.nan, m), None


class MedianAbsoluteError(Metric):
    """The weighted median of |preds − target| per output (see
    :class:`regloss.metrics.MedianAbsoluteError`: exact up to ``exact_limit`` values per
    output, within ``error_bound`` beyond). Its state lives on the host."""

    error_bound = _m.MedianAbsoluteError.error_bound

    def __init__(self, *, exact_limit: int = _m.EXACT_LIMIT, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._host = _m.MedianAbsoluteError(
            multioutput="raw_values", nan_policy=self.nan_policy, exact_limit=exact_limit
        )
        self.exact_limit = exact_limit

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, exact_limit={self.exact_limit}"

    def reset(self) -> None:
        super().reset()
        if hasattr(self, "_host"):
            self._host.reset()

    def _host_update(self, batch: _m._Batch) -> _m.MedianAbsoluteError:
        one = _m.MedianAbsoluteError(
            multioutput="raw_values", nan_policy=self.nan_policy, exact_limit=self.exact_limit
        )
        keep = None if batch.keep is None else batch.keep.cpu().numpy()
        one.update(batch.p.cpu().numpy(), batch.t.cpu().numpy(), batch.w.cpu().numpy(), mask=keep)
        return one

    def update(self, preds: Any, target: Any, weight: Any = None, mask: Any = None) -> None:
        self._host.merge(self._host_update(self._batch(preds, target, weight, mask)))
        self._updates += 1

    def forward(self, preds: Any, target: Any, weight: Any = None, mask: Any = None) -> Any:
        batch = self._batch(preds, target, weight, mask)
        one = self._host_update(batch)
        self._host.merge(one)
        self._updates += 1
        return self._finish(one, batch.p.device)

    def compute(self) -> Any:
        host = self._host
        if self.sync_on_compute and initialised():
            states: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(states, host.state_dict())
            host = _m.MedianAbsoluteError(
                multioutput="raw_values", nan_policy=self.nan_policy, exact_limit=self.exact_limit
            )
            for state in states:
                rank = _m.MedianAbsoluteError(
                    multioutput="raw_values",
                    nan_policy=self.nan_policy,
                    exact_limit=self.exact_limit,
                )
                host.merge(rank.load_state_dict(state))
        return self._finish(host, torch.device("cpu"))

    def _finish(self, host: _m.MedianAbsoluteError, device: torch.device) -> Any:
        if host._k is None:
            values = torch.full((self.num_outputs,), torch.nan, dtype=_F64)
        else:
            values = torch.as_tensor(np.asarray(host._per_output()), dtype=_F64)
        return _aggregate(self, values.to(device), None)

    def merge(self, other: Metric) -> Metric:
        if not isinstance(other, MedianAbsoluteError) or other.extra_repr() != self.extra_repr():
            raise ValueError(
                f"{type(self).__name__}.merge: other is {other!r}, not a metric like {self!r}"
            )
        self._host.merge(other._host)
        self._updates += other._updates
        return self

    def get_extra_state(self) -> Any:
        return self._host.state_dict()

    def set_extra_state(self, state: Any) -> None:
        self._host.load_state_dict(state)
