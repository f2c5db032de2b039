"""Streaming regression metrics: exact, mergeable and framework-free (NumPy only).

Every metric has one interface::

    m = MeanSquaredError()
    for prediction, target in batches:
        m.update(prediction, target)            # weight=, mask= as for the losses
    m.compute()                                  # float, or an array with 'raw_values'
    m.merge(other)                               # states of other processes or partitions
    m.state_dict(); m.load_state_dict(state)     # plain, picklable, JSON-able

How the result stays exact whatever the batching and merge order:

* **Sums** (Σw, Σw·ρ(r), Σw·r²) are float64 sums of each batch, added into an exact
  running sum (Shewchuk's non-overlapping partials, as :func:`math.fsum` keeps): merging
  two states adds their partials, so any split of the data merged in any order gives the
  same sum to within the float64 rounding of each batch's own sum. RMSE is
  √(ΣSE/Σw), never a mean of batch RMSEs.
* **Variances** (R², explained variance) are per batch two-pass (weight, mean, M2) triples
  merged by Chan's formula, so an offset of 1e9 in the targets cancels nothing.
* **Order statistics** (median absolute error) keep the values while at most
  ``exact_limit`` of them have been seen (exact, scikit-learn's weighted median) and a
  mergeable relative-error histogram beyond (within 2^-10 = 0.1% of the value).

Targets of shape (n,) are one output; (n, k) are k outputs, reduced with ``multioutput``
as scikit-learn does: 'uniform_average', 'raw_values', 'variance_weighted' (R² and
explained variance) or an array of k weights. Inputs follow the losses' rules (same shapes,
real numbers; integers are accepted and computed in float64 as scikit-learn does),
``weight`` broadcasts to the targets (one per row, or per element) and ``mask`` leaves
elements out; ``nan_policy`` is 'propagate' (NaN in, NaN out), 'omit' (NaN targets left
out) or 'raise'.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import numpy as _numpy
from ._namespace import namespace
from ._numerics import grow_partials as _grow
from ._reduction import NONE, Options
from ._validate import NAN_POLICIES, check_nan_policy, prepare
from .diagnostics._sketch import REL_ERROR, RelativeSketch
from .losses import Loss, available_losses, available_nll_losses, resolve
from .losses._nll import resolve_nll

__all__ = [
    "EXACT_LIMIT",
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

#: Values a :class:`MedianAbsoluteError` keeps (per output) for an exact median; beyond,
#: its sketch answers within ``REL_ERROR`` (2^-10) of the value.
EXACT_LIMIT = 1 << 21

_MULTIOUTPUT = ("uniform_average", "raw_values", "variance_weighted")


# --- exact sums -----------------------------------------------------------------------


class _Sum:
    """An exact running sum of float64 values, one per output; infinities and NaN are kept
    apart (they would break the partials) and added at the end."""

    def __init__(self, k: int) -> None:
        self.partials: list[list[float]] = [[] for _ in range(k)]
        self.special = [0.0] * k

    def add(self, values: np.ndarray) -> None:
        for j, v in enumerate(values.tolist()):
            self._add_one(j, v)

    def _add_one(self, j: int, v: float) -> None:
        if not math.isfinite(v):
            self.special[j] += v
            return
        _grow(self.partials[j], v)
        if not math.isfinite(self.partials[j][-1]):  # the sum itself overflowed
            self.special[j] += self.partials[j].pop()

    def merge(self, other: _Sum) -> None:
        for j, parts in enumerate(other.partials):
            for v in parts:
                self._add_one(j, v)
            self.special[j] += other.special[j]

    def value(self) -> np.ndarray:
        out = []
        for parts, s in zip(self.partials, self.special, strict=True):
            try:
                total = math.fsum(parts)
            except OverflowError:
                total = math.copysign(math.inf, sum(parts))
            out.append(total + s if s else total)
        return np.asarray(out, dtype=np.float64)

    def state(self) -> dict[str, Any]:
        return {"partials": [list(p) for p in self.partials], "special": list(self.special)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _Sum:
        out = cls(len(state["partials"]))
        out.partials = [[float(v) for v in p] for p in state["partials"]]
        out.special = [float(v) for v in state["special"]]
        return out


# --- the common interface ---------------------------------------------------------------


class Metric:
    """Base class: input checks, multioutput, merging and state (see the module docstring).

    Subclasses define ``_new_state(k)``, ``_add(batch)``, ``_merge_state(other)``,
    ``_per_output()`` and the JSON form of their state."""

    #: multioutput='variance_weighted' is defined (R² and explained variance)
    _variance_weighted = False

    def __init__(
        self,
        *,
        multioutput: str | Sequence[float] | np.ndarray = "uniform_average",
        nan_policy: str = "propagate",
    ) -> None:
        if nan_policy not in NAN_POLICIES:
            check_nan_policy(nan_policy)
        self.nan_policy = nan_policy
        self.multioutput = self._check_multioutput(multioutput)
        self.reset()

    # configuration --------------------------------------------------------------------

    def _check_multioutput(self, multioutput: Any) -> str | np.ndarray:
        name = type(self).__name__
        if isinstance(multioutput, str):
            if multioutput not in _MULTIOUTPUT:
                raise ValueError(
                    f"{name}: multioutput must be one of {list(_MULTIOUTPUT)} or an array of "
                    f"output weights, got {multioutput!r}"
                )
            if multioutput == "variance_weighted" and not self._variance_weighted:
                raise ValueError(
                    f"{name}: multioutput='variance_weighted' is defined for R2Score and "
                    f"ExplainedVariance only; use 'uniform_average', 'raw_values' or weights"
                )
            return multioutput
        w = np.asarray(multioutput, dtype=np.float64)
        if w.ndim != 1 or w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(
                f"{name}: multioutput weights must be a non-empty 1-d array of finite values "
                f">= 0, one per output; got {multioutput!r}"
            )
        return w

    def _config(self) -> dict[str, Any]:
        mo = self.multioutput
        return {
            "multioutput": mo if isinstance(mo, str) else mo.tolist(),
            "nan_policy": self.nan_policy,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._config().items())
        return f"{type(self).__name__}({args})"

    # lifecycle ------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything seen (the configuration stays)."""
        self._k: int | None = None
        self._state: Any = None

    def update(self, prediction: Any, target: Any, weight: Any = None, mask: Any = None) -> Metric:
        """Add a batch; returns the metric (so ``m.update(p, t).compute()`` works)."""
        batch = self._batch(prediction, target, weight, mask)
        k = batch.shape[1]
        if self._k is None:
            self._k, self._state = k, self._new_state(k)
        elif k != self._k:
            raise ValueError(
                f"{type(self).__name__}: target has {k} output(s) but earlier updates had "
                f"{self._k}; one metric follows one set of outputs (reset() to start over)"
            )
        self._add(batch)
        return self

    def merge(self, other: Metric) -> Metric:
        """Add ``other``'s state to this one (``other`` is unchanged); returns self."""
        if type(other) is not type(self) or other._config() != self._config():
            raise ValueError(
                f"{type(self).__name__}.merge: other is {other!r}, not a metric like {self!r}; "
                "only metrics of one class and configuration merge"
            )
        k = other._k
        if k is None:
            return self
        # merging a metric into itself counts its data twice: from a copy, since the merge
        # grows the very state it reads
        state = copy.deepcopy(other._state) if other is self else other._state
        if self._k is None:
            self._k, self._state = k, self._new_state(k)
        elif k != self._k:
            raise ValueError(
                f"{type(self).__name__}.merge: other has {k} output(s), this one {self._k}"
            )
        self._merge_state(state)
        return self

    def compute(self) -> Any:
        """The metric over everything seen: a float, or an array per output with
        multioutput='raw_values'. NaN where no element (or no weight) was seen."""
        if self._k is None:
            raise ValueError(f"{type(self).__name__}.compute() needs at least one update() first")
        values = self._per_output()
        return self._aggregate(values, None)

    def _aggregate(self, values: np.ndarray, variance: np.ndarray | None) -> Any:
        mo = self.multioutput
        if isinstance(mo, str):
            if mo == "raw_values":
                return values
            if mo == "variance_weighted" and variance is not None and np.any(variance != 0):
                return float(np.average(values, weights=variance))
            return float(np.mean(values))
        if mo.size != values.size:
            raise ValueError(
                f"{type(self).__name__}: multioutput has {mo.size} weights but the targets "
                f"have {values.size} output(s)"
            )
        if not mo.sum() > 0:
            raise ValueError(f"{type(self).__name__}: the multioutput weights sum to 0")
        return float(np.average(values, weights=mo))

    def state_dict(self) -> dict[str, Any]:
        """Plain data (lists, floats, strings): picklable and, with Python's ``json``
        (which writes NaN and Infinity), JSON-able."""
        return {
            "metric": type(self).__name__,
            "config": self._config(),
            "outputs": self._k,
            "state": None if self._k is None else self._state_json(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> Metric:
        """Replace this metric's state by ``state`` (from :meth:`state_dict` of a metric of
        this class and configuration)."""
        if state.get("metric") != type(self).__name__ or state.get("config") != self._config():
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: the state is of "
                f"{state.get('metric')!r} with {state.get('config')!r}, not of {self!r}"
            )
        k = state["outputs"]
        self._k = None if k is None else int(k)
        self._state = None if k is None else self._state_from_json(state["state"])
        return self

    # what each metric defines ----------------------------------------------------------

    def _new_state(self, k: int) -> Any:
        raise NotImplementedError

    def _add(self, batch: _Batch) -> None:
        raise NotImplementedError

    def _merge_state(self, other: Any) -> None:
        raise NotImplementedError

    def _per_output(self) -> np.ndarray:
        raise NotImplementedError

    def _state_json(self) -> Any:
        raise NotImplementedError

    def _state_from_json(self, state: Any) -> Any:
        raise NotImplementedError

    # input --------------------------------------------------------------------------

    def _batch(self, prediction: Any, target: Any, weight: Any, mask: Any) -> _Batch:
        p, t = _as_real(prediction, "prediction"), _as_real(target, "target")
        options = Options(
            NONE,
            None if weight is None else _as_real(weight, "weight"),
            None if mask is None else np.asarray(mask),
            self.nan_policy,
        )
        prep = prepare(np, p, t, options)
        if p.ndim > 2:
            raise ValueError(
                f"prediction has shape {p.shape}; metrics take (n,) for one output or "
                f"(n, outputs) for several (reshape to (n, -1))"
            )
        shape = (p.shape[0], 1) if p.ndim == 1 else ((1, 1) if p.ndim == 0 else p.shape)
        p64 = np.asarray(p, dtype=np.float64).reshape(shape)
        t64 = np.asarray(t, dtype=np.float64).reshape(shape)
        w = np.ones(shape) if prep.weight is None else _to2d(prep.weight, p.shape, shape)
        keep = None if prep.keep is None else _to2d(prep.keep, p.shape, shape).astype(bool)
        return _Batch(p64, t64, w, keep, tuple(p.shape))


class _Batch:
    """One update's float64 (n, k) prediction, target, weight and kept elements, as arrays
    of one library (NumPy here, PyTorch in :mod:`regloss.torch.metrics`)."""

    def __init__(
        self,
        p: Any,
        t: Any,
        w: Any,
        keep: Any,
        orig_shape: tuple[int, ...],
    ) -> None:
        self.xp = namespace(p)
        self.p, self.t, self.keep, self.orig_shape = p, t, keep, orig_shape
        self.w = w if keep is None else self.xp.where(keep, w, 0.0)
        self.shape = tuple(p.shape)

    def sum(self, values: Any) -> Any:
        """Σ w·values per output over the kept elements (left-out ones may hold NaN)."""
        wv = self.w * values
        if self.keep is not None:
            wv = self.xp.where(self.keep, wv, 0.0)
        return self.xp.sum(wv, axis=0)

    def kept(self) -> Any:
        """The elements not left out by mask= or nan_policy='omit' (weights aside)."""
        if self.keep is None:
            return self.xp.ones_like(self.p, dtype=bool)
        return self.keep

    def weight_sum(self) -> Any:
        return self.xp.sum(self.w, axis=0)

    def counted_abs_error(self) -> Any:
        """|ŷ − y| where it counts for a maximum, −inf elsewhere: kept elements of positive
        weight, and a kept NaN whatever its weight (it propagates)."""
        xp = self.xp
        a = xp.abs(self.p - self.t)
        counted = self.kept() & ((self.w > 0) | xp.isnan(a))
        return xp.where(counted, a, -math.inf)


def _weighted_mean(total: Any, weight: Any, empty: float) -> Any:
    """``total / weight`` per output, ``empty`` where no weight was seen."""
    xp = namespace(weight)
    some = weight > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return xp.where(some, total / xp.where(some, weight, 1.0), empty)


def _as_real(x: Any, name: str) -> np.ndarray:
    """An array; integers as float64 (scikit-learn's metrics accept integer targets).
    Everything else goes to the losses' checks."""
    a = x if isinstance(x, np.ndarray) else np.asarray(x)
    if a.dtype.kind in "iu":
        return a.astype(np.float64)
    return a


def _to2d(a: np.ndarray, shape: tuple[int, ...], out: tuple[int, int]) -> np.ndarray:
    """A weight or mask broadcastable to the input's ``shape``, broadcast to (n, k)."""
    return np.broadcast_to(np.broadcast_to(a, shape).reshape(out), out)


# --- sums of an elementwise function ----------------------------------------------------


class MeanLoss(Metric):
    """The weighted mean of a registered loss's ρ(prediction − target) per output:
    Σ w·ρ(r) / Σ w, exact whatever the batching.

    ``MeanLoss("huber", delta=1.345)``; the NLLs (``gaussian_nll``, ``laplace_nll``) take
    their third input as ``update(..., scale=var)`` (``log_var=True`` etc. as for the
    losses).

    Examples
    --------
    >>> import numpy as np
    >>> m = MeanLoss("mse")
    >>> m.update(np.array([1.5, 2.0]), np.array([1.0, 2.0]))
    MeanLoss(name='mse', multioutput='uniform_average', nan_policy='propagate')
    >>> round(m.update(np.array([4.0]), np.array([3.0])).compute(), 4)
    0.4167
    """

    def __init__(
        self,
        name: str,
        *,
        multioutput: Any = "uniform_average",
        nan_policy: str = "propagate",
        **params: Any,
    ) -> None:
        self._loss: Loss | None = None
        if name in available_nll_losses():
            resolve_nll(name, dict(params))  # checks the parameters now, not at update()
            self._nll = True
        elif name in available_losses():
            self._loss = resolve(name, dict(params))
            self._nll = False
        else:
            raise ValueError(
                f"MeanLoss: unknown loss {name!r}; choose one of "
                f"{available_losses() + available_nll_losses()}"
            )
        self.name, self.params = name, dict(params)
        super().__init__(multioutput=multioutput, nan_policy=nan_policy)

    def _config(self) -> dict[str, Any]:
        return {"name": self.name, **self.params, **super()._config()}

    def update(
        self,
        prediction: Any,
        target: Any,
        weight: Any = None,
        mask: Any = None,
        *,
        scale: Any = None,
    ) -> Metric:
        """Add a batch; ``scale``: the NLL's third input (variance or scale), required for
        an NLL and refused otherwise."""
        if (scale is None) == self._nll:
            need = "needs" if self._nll else "takes no"
            raise ValueError(
                f"MeanLoss({self.name!r}).update {need} scale= (the NLL's variance or scale input)"
            )
        self._scale = scale
        try:
            return super().update(prediction, target, weight, mask)
        finally:
            self._scale = None

    def _values(self, batch: _Batch) -> np.ndarray:
        """ρ(r) per element in float64; an NLL's value through ``regloss.numpy.nll`` (its
        floors, log inputs and beta weighting), the weights and mask applied after."""
        if self._loss is not None:
            with np.errstate(invalid="ignore", over="ignore"):
                out: np.ndarray = np.asarray(self._loss.rho(batch.p - batch.t), dtype=np.float64)
            return out
        scale = np.asarray(_as_real(self._scale, "scale"), dtype=np.float64)
        values = _numpy.nll(
            self.name,
            batch.p.reshape(batch.orig_shape),
            batch.t.reshape(batch.orig_shape),
            scale,
            reduction="none",
            **self.params,
        )
        return np.asarray(values, dtype=np.float64).reshape(batch.shape)

    def _new_state(self, k: int) -> dict[str, _Sum]:
        return {"w": _Sum(k), "wv": _Sum(k)}

    def _add(self, batch: _Batch) -> None:
        self._state["wv"].add(batch.sum(self._values(batch)))
        self._state["w"].add(batch.weight_sum())

    def _merge_state(self, other: dict[str, _Sum]) -> None:
        for key, s in self._state.items():
            s.merge(other[key])

    def _means(self) -> np.ndarray:
        state = self._state
        out: np.ndarray = _weighted_mean(state["wv"].value(), state["w"].value(), np.nan)
        return out

    def _per_output(self) -> np.ndarray:
        return self._means()

    def _state_json(self) -> dict[str, Any]:
        return {key: s.state() for key, s in self._state.items()}

    def _state_from_json(self, state: dict[str, Any]) -> dict[str, _Sum]:
        return {key: _Sum.from_state(state[key]) for key in ("w", "wv")}


class MeanSquaredError(MeanLoss):
    """Σw(ŷ − y)² / Σw per output (scikit-learn's ``mean_squared_error``)."""

    def __init__(self, *, multioutput: Any = "uniform_average", nan_policy: str = "propagate"):
        super().__init__("mse", multioutput=multioutput, nan_policy=nan_policy)

    def _config(self) -> dict[str, Any]:
        return Metric._config(self)


class RootMeanSquaredError(MeanSquaredError):
    """√(Σw(ŷ − y)² / Σw) per output, then averaged (scikit-learn's
    ``root_mean_squared_error``); never a mean of batch RMSEs."""

    def _per_output(self) -> np.ndarray:
        out: np.ndarray = np.sqrt(self._means())
        return out


class MeanAbsoluteError(MeanLoss):
    """Σw|ŷ − y| / Σw per output (scikit-learn's ``mean_absolute_error``)."""

    def __init__(self, *, multioutput: Any = "uniform_average", nan_policy: str = "propagate"):
        super().__init__("mae", multioutput=multioutput, nan_policy=nan_policy)

    def _config(self) -> dict[str, Any]:
        return Metric._config(self)


class MeanPinballLoss(MeanLoss):
    """The mean pinball (quantile) loss at level ``q``: q·max(y − ŷ, 0) +
    (1 − q)·max(ŷ − y, 0) (scikit-learn's ``mean_pinball_loss`` with alpha=q; regloss's
    ``quantile`` loss)."""

    def __init__(
        self,
        q: float = 0.5,
        *,
        multioutput: Any = "uniform_average",
        nan_policy: str = "propagate",
    ) -> None:
        super().__init__("quantile", multioutput=multioutput, nan_policy=nan_policy, q=q)

    def _config(self) -> dict[str, Any]:
        return {"q": self.params["q"], **Metric._config(self)}


# --- variances: R² and explained variance --------------------------------------------------


class _Moments:
    """(Σw, weighted mean, M2 = Σw(x − mean)²) per output, merged by Chan's formula. The
    mean is a pair hi + lo (double-double), so the difference of two means is exact to
    ~1e-32 of their size: targets offset by 1e9 lose nothing in the merge. Arrays of one
    library (NumPy or PyTorch)."""

    KEYS = ("w", "hi", "lo", "m2")

    def __init__(self, zeros: Any) -> None:
        self.w, self.hi, self.lo, self.m2 = (zeros * 0.0 for _ in range(4))

    @property
    def xp(self) -> Any:
        return namespace(self.w)

    @staticmethod
    def of(batch: _Batch, x: Any) -> _Moments:
        """Two passes over one batch: the mean, then deviations about it; the deviations'
        own sum corrects the mean (into lo) and M2."""
        xp = batch.xp
        w = batch.weight_sum()
        out = _Moments(w)
        with np.errstate(invalid="ignore", divide="ignore"):
            some = w > 0
            safe = xp.where(some, w, 1.0)
            hi = batch.sum(x) / safe
            d = x - hi
            s1 = batch.sum(d)
            out.w = w
            out.hi = xp.where(some, hi, 0.0)
            out.lo = xp.where(some, s1 / safe, 0.0)
            out.m2 = xp.where(some, batch.sum(d * d) - s1 * s1 / safe, 0.0)
        return out

    def merge(self, other: _Moments) -> None:
        xp = self.xp
        w = self.w + other.w
        with np.errstate(invalid="ignore", divide="ignore"):
            some = w > 0
            safe = xp.where(some, w, 1.0)
            delta = (other.hi - self.hi) + (other.lo - self.lo)
            # the heavier side's mean moves least (either order gives the same answer to
            # rounding)
            mine = self.w >= other.w
            hi = xp.where(mine, self.hi, other.hi)
            lo = xp.where(
                mine, self.lo + delta * (other.w / safe), other.lo - delta * (self.w / safe)
            )
            m2 = self.m2 + other.m2 + delta * delta * (self.w * other.w / safe)
            top = hi + lo  # renormalised: lo stays below hi's last bit
            lo = lo - (top - hi)
        self.hi = xp.where(some, top, 0.0)
        self.lo = xp.where(some, lo, 0.0)
        self.m2 = xp.where(some, m2, 0.0)
        self.w = w

    def state(self) -> dict[str, list[float]]:
        return {k: np.asarray(getattr(self, k)).tolist() for k in self.KEYS}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _Moments:
        out = cls(np.zeros(len(state["w"])))
        for key in cls.KEYS:
            setattr(out, key, np.asarray(state[key], dtype=np.float64))
        return out


def _explained(numerator: Any, denominator: Any) -> Any:
    """1 − num/den per output, finite as scikit-learn's (force_finite): 1 for a perfect fit,
    0 for an imperfect fit of constant targets; NaN in, NaN out."""
    xp = namespace(numerator)
    num_zero, den_zero = numerator == 0, denominator == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = 1.0 - numerator / xp.where(den_zero, 1.0, denominator)
    out = xp.where(num_zero, 1.0, xp.where(den_zero, 0.0, ratio))
    nan = xp.isnan(numerator) | xp.isnan(denominator)
    return xp.where(nan, math.nan, out)


class R2Score(Metric):
    """The coefficient of determination 1 − Σw(y − ŷ)² / Σw(y − ȳ)² per output
    (scikit-learn's ``r2_score``; constant targets give 1 for a perfect fit, else 0)."""

    _variance_weighted = True

    def _new_state(self, k: int) -> dict[str, Any]:
        return {"sse": _Sum(k), "y": _Moments(k)}

    def _add(self, batch: _Batch) -> None:
        r = batch.p - batch.t
        self._state["sse"].add(batch.sum(r * r))
        self._state["y"].merge(_Moments.of(batch, batch.t))

    def _merge_state(self, other: dict[str, Any]) -> None:
        self._state["sse"].merge(other["sse"])
        self._state["y"].merge(other["y"])

    def _parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(numerator, denominator, the outputs' weights for 'variance_weighted')."""
        m2 = self._state["y"].m2
        return self._state["sse"].value(), m2, m2

    def _per_output(self) -> np.ndarray:
        num, den, _ = self._parts()
        out: np.ndarray = _explained(num, den)
        return out

    def compute(self) -> Any:
        if self._k is None:
            return super().compute()
        num, den, variance = self._parts()
        return self._aggregate(_explained(num, den), variance)

    def _state_json(self) -> dict[str, Any]:
        return {"sse": self._state["sse"].state(), "y": self._state["y"].state()}

    def _state_from_json(self, state: dict[str, Any]) -> dict[str, Any]:
        return {"sse": _Sum.from_state(state["sse"]), "y": _Moments.from_state(state["y"])}


class ExplainedVariance(R2Score):
    """1 − Var_w(y − ŷ) / Var_w(y) per output (scikit-learn's ``explained_variance_score``):
    R² that forgives a constant offset of the predictions."""

    def _new_state(self, k: int) -> dict[str, Any]:
        return {"r": _Moments(k), "y": _Moments(k)}

    def _add(self, batch: _Batch) -> None:
        self._state["r"].merge(_Moments.of(batch, batch.t - batch.p))
        self._state["y"].merge(_Moments.of(batch, batch.t))

    def _merge_state(self, other: dict[str, Any]) -> None:
        self._state["r"].merge(other["r"])
        self._state["y"].merge(other["y"])

    def _parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y = self._state["y"]
        return self._state["r"].m2, y.m2, _weighted_mean(y.m2, y.w, 0.0)

    def _state_json(self) -> dict[str, Any]:
        return {"r": self._state["r"].state(), "y": self._state["y"].state()}

    def _state_from_json(self, state: dict[str, Any]) -> dict[str, Any]:
        return {"r": _Moments.from_state(state["r"]), "y": _Moments.from_state(state["y"])}


# --- order statistics -----------------------------------------------------------------


class MaxError(Metric):
    """max |ŷ − y| per output over the elements kept with a positive weight (the weights'
    sizes do not matter; scikit-learn's ``max_error`` has none)."""

    def _new_state(self, k: int) -> np.ndarray:
        return np.full(k, -np.inf)

    def _add(self, batch: _Batch) -> None:
        self._state = np.maximum(self._state, np.max(batch.counted_abs_error(), axis=0))

    def _merge_state(self, other: np.ndarray) -> None:
        self._state = np.maximum(self._state, other)  # NaN wins

    def _per_output(self) -> np.ndarray:
        out: np.ndarray = np.where(self._state == -np.inf, np.nan, self._state)
        return out

    def _state_json(self) -> list[float]:
        out: list[float] = self._state.tolist()
        return out

    def _state_from_json(self, state: list[float]) -> np.ndarray:
        return np.asarray(state, dtype=np.float64)


class MedianAbsoluteError(Metric):
    """The weighted median of |ŷ − y| per output (scikit-learn's
    ``median_absolute_error``: NumPy's median without weights, the averaged inverted CDF
    with them). Exact while at most ``exact_limit`` values have been seen per output;
    beyond, a mergeable histogram answers within ``error_bound`` (2^-10 relative) of the
    value, in memory that grows with the number of occupied bins, not of values."""

    #: relative error of the answer once the values no longer fit
    error_bound = REL_ERROR

    def __init__(
        self,
        *,
        multioutput: Any = "uniform_average",
        nan_policy: str = "propagate",
        exact_limit: int = EXACT_LIMIT,
    ) -> None:
        if isinstance(exact_limit, bool) or not isinstance(exact_limit, int) or exact_limit < 0:
            raise ValueError(
                f"MedianAbsoluteError: exact_limit must be an int >= 0, got {exact_limit!r}"
            )
        self.exact_limit = exact_limit
        super().__init__(multioutput=multioutput, nan_policy=nan_policy)

    def _config(self) -> dict[str, Any]:
        return {"exact_limit": self.exact_limit, **super()._config()}

    @property
    def exact(self) -> bool:
        """Whether compute() is exact (all values kept) rather than within error_bound."""
        return self._state is None or self._state["sketches"] is None

    def _new_state(self, k: int) -> dict[str, Any]:
        return {
            "values": [[] for _ in range(k)],
            "weights": [[] for _ in range(k)],
            "n": 0,
            "nan": [False] * k,
            "sketches": None,
        }

    def _add(self, batch: _Batch) -> None:
        a = np.abs(batch.p - batch.t)
        nan = np.isnan(a) & batch.kept()
        for j in range(batch.shape[1]):
            if nan[:, j].any():  # a kept NaN: this output's median is NaN
                self._state["nan"][j] = True
            use = (batch.w[:, j] > 0) & ~np.isnan(a[:, j])
            self._columns(j, a[use, j], batch.w[use, j])

    def _columns(self, j: int, values: np.ndarray, weights: np.ndarray) -> None:
        st = self._state
        if st["sketches"] is None:
            st["values"][j].append(values)
            st["weights"][j].append(weights)
            if j == len(st["values"]) - 1:
                st["n"] = max(sum(v.size for v in vs) for vs in st["values"])
                if st["n"] > self.exact_limit:
                    self._to_sketches()
            return
        st["sketches"][j].update(values, weights)

    def _to_sketches(self) -> None:
        st = self._state
        sketches = [RelativeSketch() for _ in st["values"]]
        for s, vs, ws in zip(sketches, st["values"], st["weights"], strict=True):
            if vs:
                s.update(np.concatenate(vs), np.concatenate(ws))
        st["sketches"] = sketches
        st["values"] = st["weights"] = None

    def _merge_state(self, other: dict[str, Any]) -> None:
        st = self._state
        st["nan"] = [a or b for a, b in zip(st["nan"], other["nan"], strict=True)]
        if other["sketches"] is None:
            for j, (vs, ws) in enumerate(zip(other["values"], other["weights"], strict=True)):
                for v, w in zip(vs, ws, strict=True):
                    self._columns(j, v, w)
            return
        if st["sketches"] is None:
            self._to_sketches()
        for mine, theirs in zip(st["sketches"], other["sketches"], strict=True):
            mine.merge(theirs)

    def _per_output(self) -> np.ndarray:
        st = self._state
        out = np.empty(len(st["nan"]))
        for j in range(out.size):
            if st["nan"][j]:
                out[j] = np.nan
            elif st["sketches"] is None:
                vs, ws = st["values"][j], st["weights"][j]
                out[j] = _weighted_median(np.concatenate(vs), np.concatenate(ws)) if vs else np.nan
            else:
                out[j] = _sketch_median(st["sketches"][j])
        return out

    def _state_json(self) -> dict[str, Any]:
        st = self._state
        if st["sketches"] is None:
            return {
                "nan": list(st["nan"]),
                "values": [np.concatenate(v).tolist() if v else [] for v in st["values"]],
                "weights": [np.concatenate(w).tolist() if w else [] for w in st["weights"]],
            }
        return {
            "nan": list(st["nan"]),
            "keys": [s.keys.tolist() for s in st["sketches"]],
            "stats": [s.stats.tolist() for s in st["sketches"]],
        }

    def _state_from_json(self, state: dict[str, Any]) -> dict[str, Any]:
        k = len(state["nan"])
        out = self._new_state(k)
        out["nan"] = [bool(v) for v in state["nan"]]
        if "values" in state:
            out["values"] = [[np.asarray(v, dtype=np.float64)] for v in state["values"]]
            out["weights"] = [[np.asarray(w, dtype=np.float64)] for w in state["weights"]]
            out["n"] = max((len(v) for v in state["values"]), default=0)
            return out
        sketches = []
        for keys, stats in zip(state["keys"], state["stats"], strict=True):
            s = RelativeSketch()
            s._sorted = (
                np.asarray(keys, dtype=np.int64),
                np.asarray(stats, dtype=np.float64).reshape(-1, 4),
            )
            sketches.append(s)
        out["sketches"], out["values"], out["weights"] = sketches, None, None
        return out


def _weighted_median(x: np.ndarray, w: np.ndarray) -> float:
    """scikit-learn's weighted median (``_weighted_percentile(average=True)``, the averaged
    inverted CDF): the smallest value whose cumulative weight reaches half the total,
    averaged with the next value of positive weight when it reaches it exactly (within
    float64 eps); NumPy's median for equal weights."""
    if x.size == 0 or not w.sum() > 0:
        return math.nan
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order]
    cdf = np.cumsum(ws)
    half = 0.5 * cdf[-1]
    i = min(int(np.searchsorted(cdf, half, side="left")), xs.size - 1)
    if cdf[i] - half > np.finfo(np.float64).eps:
        return float(xs[i])
    nxt = int(np.searchsorted(cdf, cdf[i], side="right"))
    nxt = min(nxt, xs.size - 1)
    if ws[nxt] == 0:
        nxt = i
    return float(0.5 * (xs[i] + xs[nxt]))


def _sketch_median(sketch: RelativeSketch) -> float:
    """The weighted median from the histogram: the bin where the cumulative weight reaches
    half, its midpoint (within the bin's relative width of every value in it)."""
    lo, hi, stats, _ = sketch.table()
    if lo.size == 0:
        return math.nan
    cum = np.cumsum(stats[:, 1])
    if not cum[-1] > 0:
        return math.nan
    i = min(int(np.searchsorted(cum, 0.5 * cum[-1], side="left")), lo.size - 1)
    return float(0.5 * (lo[i] + hi[i]))
