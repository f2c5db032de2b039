"""Which array library an input belongs to, without importing the ones that are absent.

The loss definitions are written once against the subset of the array API that NumPy,
PyTorch and ``jax.numpy`` all expose natively (``abs``, ``where``, ``clip``, ``sign``,
``sum``, ``vdot``...). We hand them the native module rather than
``array_api_compat``'s wrapper namespace because the wrappers add Python calls on the
torch hot path (measured: several microseconds per loss call at small N); other array
libraries (CuPy, Dask, ...) fall back to ``array_api_compat.array_namespace``.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

__all__ = ["astype", "backend_name", "namespace", "promoted_dtype"]


_BACKENDS: dict[type, str] = {np.ndarray: "numpy"}
_MODULES: dict[str, Any] = {"numpy": np}


def backend_name(x: Any) -> str:
    """Return ``"numpy"``, ``"torch"``, ``"jax"`` or ``"other"`` for an array."""
    # Cached per type: this runs on every loss call, and array_api_compat's checks cost
    # about a microsecond each.
    try:
        return _BACKENDS[type(x)]
    except KeyError:
        pass
    if isinstance(x, (np.ndarray, np.generic)):
        name = "numpy"
    elif array_api_compat.is_torch_array(x):
        name = "torch"
    elif array_api_compat.is_jax_array(x):
        name = "jax"
    else:
        name = "other"
    if name != "jax":  # JAX tracer types are created on the fly; do not grow the cache.
        _BACKENDS[type(x)] = name
    return name


def namespace(*arrays: Any) -> Any:
    """The array module for ``arrays`` (all from one library; Python scalars are ignored)."""
    for a in arrays:
        if a is None or isinstance(a, (int, float)):
            continue
        name = backend_name(a)
        module = _MODULES.get(name)
        if module is not None:
            return module
        if name == "torch":
            import torch

            module = torch
        elif name == "jax":
            import jax.numpy as jnp

            module = jnp
        else:
            return array_api_compat.array_namespace(*arrays)
        _MODULES[name] = module
        return module
    return np


def astype(x: Any, dtype: Any) -> Any:
    """``x`` converted to ``dtype`` (no copy when it already has it)."""
    if x.dtype == dtype:
        return x
    if backend_name(x) == "torch":
        return x.to(dtype)
    return x.astype(dtype)


def promoted_dtype(xp: Any, a: Any, b: Any) -> Any:
    """The dtype ``a`` and ``b`` promote to (``torch.promote_types`` for torch: unlike
    ``result_type`` it is traceable by torch.compile)."""
    if a.dtype == b.dtype:
        return a.dtype
    if xp.__name__ == "torch":
        return xp.promote_types(a.dtype, b.dtype)
    return xp.result_type(a, b)
