"""Type aliases shared by the package."""

from __future__ import annotations

from typing import Any, TypeAlias

#: An array of any supported library (NumPy, PyTorch, JAX, or an array-API array).
#: The definitions are library-agnostic, so static typing cannot say more than ``Any``.
Array: TypeAlias = Any

__all__ = ["Array"]
