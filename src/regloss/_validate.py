"""The only place that checks user input.

Every front-end calls :func:`prepare`; it checks shapes, dtypes, weights, masks and the
NaN policy, and returns a :class:`Prepared` record that :mod:`regloss._reduce` consumes.
With every option off the checks cost no pass over the data: only shapes and dtypes are
looked at.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ._namespace import backend_name, promoted_dtype
from ._reduction import Options, Reduction, check_reduction
from ._typing import Array

__all__ = [
    "NAN_POLICIES",
    "Prepared",
    "check_loss_param",
    "check_mask",
    "check_nan_policy",
    "check_param_array",
    "check_scale_input",
    "check_scale_param",
    "check_tensor",
    "check_weight",
    "check_weight_values",
    "has_negative",
    "is_traced",
    "prepare",
]

NAN_POLICIES = ("propagate", "omit", "raise")
_HALF = frozenset({"float16", "bfloat16"})


class Prepared(NamedTuple):
    """Checked inputs, ready for a backend."""

    #: prediction, target (and an NLL's scale input), as given (not yet cast)
    inputs: tuple[Array, ...]
    #: Broadcast shape of prediction and target (equal to both unless ``broadcast=True``).
    shape: tuple[int, ...]
    #: Non-negative weights broadcastable to ``shape``, or None.
    weight: Array | None
    #: Boolean "use this element" array broadcastable to ``shape``, or None for all.
    keep: Array | None
    reduction: Reduction
    #: True when the inputs are float16/bfloat16 and are computed in float32.
    upcast: bool
    #: False while the weights' values (finite, >= 0, within the compute dtype) are not yet
    #: checked: CPU weights are checked by the generated weighted kernel in its own pass,
    #: or by :func:`check_weight_values` before any other use (the eager factor).
    weight_checked: bool = True

    @property
    def prediction(self) -> Array:
        return self.inputs[0]

    @property
    def target(self) -> Array:
        return self.inputs[1]

    @property
    def plain(self) -> bool:
        """No weight and no mask (nor NaN omission)."""
        return self.weight is None and self.keep is None


def check_loss_param(
    loss: str, name: str, value: Any, *, low: float, allow_low: bool = False
) -> float:
    """A finite real tuning parameter ``> low`` (``>= low`` with ``allow_low``), as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(
            f"{loss}: parameter {name} must be a real number, got {value!r} "
            f"({type(value).__name__})"
        )
    v = float(value)
    bad = not math.isfinite(v) or (v < low if allow_low else v <= low)
    if bad:
        bound = f">= {low:g}" if allow_low else f"> {low:g}"
        raise ValueError(f"{loss}: parameter {name} must be finite and {bound}, got {value!r}")
    return v


#: Range of the scale-type tuning parameters (delta, beta, c, scale). Inside it c² and 1/c²
#: are normal float32 numbers, so every loss computes without overflow or underflow of its
#: constants in float32 and float64 alike; residuals are what may span the whole range.
SCALE_MIN, SCALE_MAX = 1e-18, 1e18


def check_scale_param(loss: str, name: str, value: Any, *, allow_zero: bool = False) -> float:
    """A scale-type tuning parameter in [SCALE_MIN, SCALE_MAX] (or exactly 0 with
    ``allow_zero``), as a float."""
    v = check_loss_param(loss, name, value, low=0.0, allow_low=allow_zero)
    if (v == 0.0 and allow_zero) or SCALE_MIN <= v <= SCALE_MAX:
        return v
    zero = " or exactly 0" if allow_zero else ""
    raise ValueError(
        f"{loss}: parameter {name} must be in [{SCALE_MIN:g}, {SCALE_MAX:g}]{zero}, got {value!r}; "
        "outside that range its square is not a normal float32 number: rescale the residuals "
        "(e.g. predict in other units) instead"
    )


def check_param_array(loss: str, name: str, value: Array, *, positive: bool) -> None:
    """A tuning parameter given as an array (per element): finite, and > 0 with
    ``positive``; values that cannot be inspected (traced, meta, fake) are taken as given."""
    if is_traced(value):
        return
    arr = np.asarray(value.detach().cpu() if backend_name(value) == "torch" else value)
    if not np.all(np.isfinite(arr)) or (positive and not np.all(arr > 0)):
        bound = "finite and > 0" if positive else "finite"
        raise ValueError(f"{loss}: parameter {name} given as an array must be {bound} everywhere")


def check_tensor(name: str, x: Any, *, optional: bool = False) -> None:
    """TypeError naming the argument unless ``x`` is a torch tensor (or None if optional)."""
    if (optional and x is None) or backend_name(x) == "torch":
        return
    raise TypeError(
        f"{name} must be a torch.Tensor, got {type(x).__name__}; "
        f"convert it with torch.as_tensor({name})"
    )


def check_nan_policy(nan_policy: Any) -> str:
    """``nan_policy`` if it is one of :data:`NAN_POLICIES`."""
    if nan_policy not in NAN_POLICIES:
        raise ValueError(
            f"nan_policy must be one of {', '.join(map(repr, NAN_POLICIES))}, got {nan_policy!r}"
        )
    return str(nan_policy)


def _dtype_name(x: Array) -> str:
    return str(x.dtype).removeprefix("torch.")


_FLOAT_KIND: dict[Any, bool] = {}


def _check_float(name: str, x: Array) -> bool:
    """Raise unless ``x`` is real floating point; return whether it is half precision."""
    dtype = x.dtype
    half = _FLOAT_KIND.get(dtype)
    if half is not None:
        return half
    dt = _dtype_name(x)
    if dt.startswith(("float", "bfloat")):
        half = dt in _HALF or dt.startswith("float8")
        _FLOAT_KIND[dtype] = half
        return half
    raise TypeError(
        f"{name} has dtype {dt}; losses need floating-point inputs: cast first "
        f"(e.g. {name}.float() in PyTorch, {name}.astype(np.float32) in NumPy)"
    )


def _shape(x: Array) -> tuple[int, ...]:
    return tuple(int(s) for s in x.shape)


def is_traced(x: Array) -> bool:
    """True where values cannot be inspected: a JAX tracer (jit/grad/vmap), or a torch
    tensor on the meta device, a FakeTensor, or one seen by torch.compile or torch.func.

    Value checks (weights finite and >= 0, nan_policy='raise') are skipped there, as they
    would need the data on the host; everything else is checked as usual.
    """
    name = backend_name(x)
    if name == "jax":
        import jax

        return isinstance(x, jax.core.Tracer)
    if name != "torch":
        return False
    import torch

    return (
        x.device.type == "meta"
        or isinstance(x, torch._subclasses.FakeTensor)
        or torch.compiler.is_compiling()
        or bool(torch._C._are_functorch_transforms_active())
    )


def _per_sample_view(xp: Any, name: str, arr: Array, shape: tuple[int, ...]) -> Array:
    """``arr`` of ``shape`` or ``(N,)`` (one value per sample), viewed to broadcast to shape."""
    s = _shape(arr)
    if s == shape:
        return arr
    if len(shape) >= 1 and s == (shape[0],):
        return xp.reshape(arr, (shape[0],) + (1,) * (len(shape) - 1))
    per_sample = f" or ({shape[0]},) for one {name} per sample along dimension 0" if shape else ""
    raise ValueError(
        f"{name} has shape {s} but must have the prediction's shape {shape}{per_sample}"
    )


def _first_index(flags: Array, shape: tuple[int, ...]) -> tuple[int, ...]:
    flat = int(np.argmax(np.asarray(_to_numpy(flags)).reshape(-1)))
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


def _to_numpy(x: Array) -> Any:
    if backend_name(x) == "torch":
        return x.detach().cpu().numpy()
    return np.asarray(x)


def check_weight(xp: Any, weight: Array, shape: tuple[int, ...]) -> Array:
    """The weights' dtype and shape (viewed to broadcast to ``shape``); their values are
    :func:`_check_weight_values`'s."""
    if backend_name(weight) == "numpy" and not isinstance(weight, np.ndarray):
        weight = np.asarray(weight)
    dt = _dtype_name(weight)
    if dt == "bool" or not dt.startswith(("float", "bfloat", "int", "uint")):
        raise TypeError(
            f"weight has dtype {dt}; pass real-valued weights (for a boolean selection use mask=)"
        )
    return _per_sample_view(xp, "weight", weight, shape)


def _check_weight_values(xp: Any, weight: Array, compute: Any, reduction: Reduction) -> None:
    if is_traced(weight):
        return
    # One pass (torch.aminmax) and one synchronisation on the happy path; NaN makes
    # lo >= 0 false, so the detailed count runs only when something is wrong.
    lo, hi = _extremes(xp, weight)
    if not (lo >= 0.0 and math.isfinite(hi)):
        _explain_bad_weights(xp, weight)
    if not reduction.rescales_weights:  # normalised means rescale the weights first
        limit = float(xp.finfo(compute).max)
        if hi > limit:
            name = str(compute).removeprefix("torch.")
            raise ValueError(
                f"weight has values up to {hi:g}, beyond the largest {name} ({limit:g}), "
                f"the dtype this loss is computed in; rescale the weights or compute in "
                f"float64"
            )


def check_weight_values(xp: Any, prep: Prepared, compute: Any) -> None:
    """Check weights whose check :func:`prepare` deferred (``prep.weight_checked`` False):
    finite, >= 0 and, for sums, within ``compute`` (the loss's compute dtype); raise the
    detailed error."""
    if prep.weight is not None and not prep.weight_checked:
        _check_weight_values(xp, prep.weight, compute, prep.reduction)


def _deferrable(xp: Any, weight: Array, keep: Array | None, reduction: Reduction) -> bool:
    """Whether the weights' value check may wait for the generated weighted kernel, which
    finds the weights' extremes in its own pass: a reduction to one number without a
    mask, and weights on the CPU (a NumPy array or a plain CPU tensor; the GPU kernels
    and traced inputs take the check as before)."""
    if keep is not None or reduction.elementwise:
        return False
    name = backend_name(weight)
    if name == "numpy":
        return True
    return name == "torch" and weight.device.type == "cpu" and not is_traced(weight)


def _float(v: Any) -> float:
    """A 0-d array as a Python float, through ``item()``: PyTorch's ``float()`` of a tensor
    that requires grad warns (a weight or a variance being learned is such a tensor)."""
    return float(v.item()) if hasattr(v, "item") else float(v)


def _extremes(xp: Any, x: Array) -> tuple[float, float]:
    """(min, max) of ``x`` as Python floats; NaN if ``x`` holds one."""
    if backend_name(x) == "torch":
        lo, hi = xp.stack(xp.aminmax(x)).tolist()
        return float(lo), float(hi)
    return _float(xp.min(x)), _float(xp.max(x))


def _explain_bad_weights(xp: Any, weight: Array) -> None:
    """Raise the ValueError describing non-finite or negative weights."""
    finite = xp.isfinite(weight)
    if not bool(xp.all(finite)):
        n = int(xp.sum(xp.logical_not(finite)))
        raise ValueError(
            f"weight has {n} non-finite value(s) (NaN or inf); weights must be finite and >= 0"
        )
    negative = weight < 0
    n = int(xp.sum(negative))
    raise ValueError(
        f"weight has {n} negative value(s) (smallest {_float(xp.min(weight)):g}); "
        "weights must be finite and >= 0"
    )


def check_mask(xp: Any, mask: Array, shape: tuple[int, ...]) -> Array:
    if backend_name(mask) == "numpy" and not isinstance(mask, np.ndarray):
        mask = np.asarray(mask)
    dt = _dtype_name(mask)
    if dt != "bool":
        raise TypeError(
            f"mask has dtype {dt}; it must be boolean with True = use this element "
            "(e.g. mask.bool() in PyTorch, mask.astype(bool) in NumPy)"
        )
    return _per_sample_view(xp, "mask", mask, shape)


def _raise_on_nan(xp: Any, name: str, x: Array, keep: Array | None, shape: tuple[int, ...]) -> None:
    if is_traced(x):
        raise ValueError(
            "nan_policy='raise' cannot inspect values while tracing (jax.jit/grad/vmap, "
            "torch.compile, torch.func, meta or fake tensors); check the data before "
            "tracing, or use nan_policy='omit' or 'propagate'"
        )
    bad = xp.isnan(x)
    if keep is not None:
        bad = xp.logical_and(bad, keep)
    n = int(xp.sum(bad))
    if n:
        full = xp.broadcast_to(bad, shape) if _shape(bad) != shape else bad
        raise ValueError(
            f"{name} contains {n} NaN value(s), the first at index {_first_index(full, shape)}; "
            "drop or impute them, mask them out with mask=, or pass nan_policy='omit' to treat "
            "NaN targets as missing labels"
        )


def prepare(xp: Any, prediction: Array, target: Array, options: Options) -> Prepared:
    """Check the inputs of a loss call; see the front-ends for the meaning of each option."""
    reduction, weight, mask, nan_policy = options[:4]
    if not isinstance(reduction, Reduction):
        check_reduction(reduction)
    if nan_policy not in NAN_POLICIES:
        check_nan_policy(nan_policy)
    pb, tb = backend_name(prediction), backend_name(target)
    if pb != tb:
        raise TypeError(
            f"prediction is a {pb} array but target is a {tb} array; pass both from one library"
        )
    upcast = _check_float("prediction", prediction) | _check_float("target", target)
    shape = tuple(prediction.shape)
    if shape != tuple(target.shape):
        ps, ts = _shape(prediction), _shape(target)
        if not options.broadcast:
            raise ValueError(
                f"target has shape {ts} but prediction has shape {ps}; reshape one "
                "(e.g. target.view_as(prediction) or target.reshape(prediction.shape)) "
                "or pass broadcast=True"
            )
        try:
            shape = tuple(np.broadcast_shapes(ps, ts))
        except ValueError:
            raise ValueError(
                f"prediction shape {ps} and target shape {ts} cannot be broadcast together"
            ) from None
    if 0 in shape:
        raise ValueError(f"prediction is empty (shape {shape}); a loss needs at least one element")
    if reduction.per_sample and not shape:
        raise ValueError(
            "reduction='batchmean' averages over dimension 0, but the inputs are 0-d; "
            "use reduction='mean' or 'sum'"
        )
    if weight is None and mask is None and nan_policy == "propagate":
        return Prepared((prediction, target), shape, None, None, reduction, upcast)

    keep = None if mask is None else check_mask(xp, mask, shape)
    if nan_policy == "omit":
        present = xp.logical_not(xp.isnan(target))
        keep = present if keep is None else xp.logical_and(keep, present)
    elif nan_policy == "raise":
        _raise_on_nan(xp, "target", target, keep, shape)
        _raise_on_nan(xp, "prediction", prediction, keep, shape)
    w = None
    checked = True
    if weight is not None:
        compute = xp.float32 if upcast else promoted_dtype(xp, prediction, target)
        w = check_weight(xp, weight, shape)
        checked = not _deferrable(xp, w, keep, reduction)
        if checked:
            _check_weight_values(xp, w, compute, reduction)
    return Prepared((prediction, target), shape, w, keep, reduction, upcast, checked)


def has_negative(xp: Any, x: Array) -> bool:
    """Whether ``x`` holds a value below 0, from one reduction and one read (a comparison,
    any() and bool() cost three times that on small inputs); the minimum is NaN where x
    holds a NaN, which can hide a negative value: then the comparison decides."""
    lo = _float(xp.min(x))
    return lo < 0 or (lo != lo and bool(xp.any(x < 0)))


def check_scale_input(
    xp: Any, name: str, s: Array, shape: tuple[int, ...], *, log_input: bool
) -> Array:
    """The third input of an NLL loss (variance, log-variance or scale): real floating point,
    of the prediction's shape, one dimension short of it (one value per row, as
    ``torch.nn.functional.gaussian_nll_loss`` reads it), or broadcastable to it without
    enlarging it; and (unless it is a logarithm, or traced) non-negative."""
    if backend_name(s) == "numpy" and not isinstance(s, np.ndarray):
        s = np.asarray(s, dtype=np.float64)
    _check_float(name, s)
    ss = _shape(s)
    if ss != shape and shape and ss == shape[:-1]:
        # (N,) for an (N, D) prediction: one value per row, never broadcast along the rows.
        s = xp.reshape(s, (*ss, 1))
        ss = (*ss, 1)
    try:
        out = shape if ss == shape else tuple(np.broadcast_shapes(ss, shape))
    except ValueError:
        out = None
    if out != shape:
        example = (*shape[:-1], 1) if shape else ()
        raise ValueError(
            f"{name} has shape {ss}, which does not broadcast to the prediction's shape "
            f"{shape}; give it the prediction's shape, one dimension less (one value per row) "
            f"or one that broadcasts to it (e.g. {example})"
        )
    if not log_input and not is_traced(s) and has_negative(xp, s):
        raise ValueError(
            f"{name} has negative entry/entries ({int(xp.sum(s < 0))} below 0); it must "
            f"be >= 0 (values below eps are floored), or pass its logarithm with "
            f"log_{name}=True"
        )
    return s
