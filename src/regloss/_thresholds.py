"""Every performance threshold, in one table, each naming the benchmark row that set it.

The routes (``regloss/_numpy_routes.py``, ``regloss/torch/_routes.py``) and the backends
read their sizes from here. Each entry names its row in ``benchmarks/RESULTS.md`` (the
``row`` id), where the measurement behind the number is written down with its date,
machine and torch version; ``tests/test_layers.py`` fails when a row is missing there.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["THRESHOLDS", "Threshold", "value"]


class Threshold(NamedTuple):
    """A size where one way of computing starts to beat another."""

    value: int
    #: the row of benchmarks/RESULTS.md that measured it
    row: str
    #: what changes at this size
    meaning: str


THRESHOLDS: dict[str, Threshold] = {
    "c_kernel_l1": Threshold(
        1 << 14, "native-vs-kernel-l1", "l1: the generated CPU kernel instead of PyTorch's"
    ),
    "c_kernel_huber": Threshold(
        1 << 18, "native-vs-kernel-huber", "huber: the generated CPU kernel instead of PyTorch's"
    ),
    "c_kernel_smooth_l1": Threshold(
        1 << 18,
        "native-vs-kernel-smooth-l1",
        "smooth_l1: the generated CPU kernel instead of PyTorch's",
    ),
    "weighted_sum_kernel": Threshold(
        1 << 14,
        "weighted-sum-native-vs-kernel",
        "a weighted 'sum' takes the generated kernel instead of PyTorch's loss times w",
    ),
    "triton_over_native": Threshold(
        1 << 26,
        "gpu-native-vs-triton",
        "CUDA float32: the generated Triton kernel instead of PyTorch's own loss",
    ),
    "eager_blocks": Threshold(
        4 << 18, "eager-blocked", "eager CPU calls run in blocks of 2^18 elements (cache)"
    ),
    "eager_block": Threshold(1 << 18, "eager-blocked", "elements per eager CPU block"),
    "into_block": Threshold(
        1 << 16, "numpy-out-blocks", "elements per block of NumPy's value_and_grad(out=)"
    ),
    "c_threads": Threshold(
        1 << 16, "c-kernel-threads", "the generated CPU kernels start OpenMP threads"
    ),
    "gpu_scale_on_device": Threshold(
        1 << 22,
        "gpu-scale-on-device",
        "CUDA: the backward's multiplication by the incoming gradient as a Triton kernel",
    ),
}


def value(name: str) -> int:
    """The size of threshold ``name``."""
    return THRESHOLDS[name].value
