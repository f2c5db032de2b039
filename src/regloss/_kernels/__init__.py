"""Kernels generated from the loss definitions: the backends that run a form in one pass.

``trace.py`` turns a definition's methods into an expression graph; ``c.py`` generates,
compiles and caches a CPU kernel from it and ``cpu.py`` runs it as a backend of the
contract in :mod:`regloss._backend`; ``gpu.py`` does both for CUDA with Triton. Which
backend serves a call is decided by the front-ends' route tables
(``regloss/_numpy_routes.py``, ``regloss/torch/_routes.py``), never here.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TRITON_DEVICES", "enabled", "multiply_into", "triton"]

#: device types the Triton kernels serve. The tests add "cpu" with TRITON_INTERPRET=1 set,
#: which runs the generated kernels on the CPU through Triton's interpreter.
TRITON_DEVICES: set[str] = {"cuda"}

_TRITON: Any = None


def enabled() -> bool:
    """Whether generated kernels may be used (``REGLOSS_KERNELS`` is not 0)."""
    from . import c

    return c.enabled()


def triton() -> Any:
    """The Triton kernel module (:mod:`regloss._kernels.gpu`) where Triton imports and
    kernels are enabled, else None."""
    global _TRITON
    if not enabled():
        return None
    if _TRITON is None:
        found: Any = False
        try:
            import triton as _  # noqa: F401  (the optional dependency itself)

            from . import gpu

            found = gpu
        except ImportError:
            pass
        _TRITON = found
    return _TRITON or None


def multiply_into(g: Any, s: Any) -> Any:
    """``g *= s`` for a gradient buffer ``g`` nobody else sees and a 0-d incoming gradient
    ``s``. On a Triton device, from ``gpu.SCALE_ON_DEVICE_FROM`` elements, the
    multiplication is decided on the device (no pass where ``s`` is exactly 1, and no host
    synchronisation to find that out); elsewhere ``mul_``."""
    import torch

    if (
        type(s) is torch.Tensor
        and type(g) is torch.Tensor
        and s.device == g.device
        and s.dim() == 0
        and g.device.type in TRITON_DEVICES
        and g.is_contiguous()
        and not torch.compiler.is_compiling()
        and (tk := triton()) is not None
        and g.numel() >= tk.SCALE_ON_DEVICE_FROM
    ):
        tk.scale_into(g, s)
        return g
    return g.mul_(s)
