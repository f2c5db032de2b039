"""Shared test configuration: hypothesis profiles and float64 JAX."""

from __future__ import annotations

import os

# Triton's interpreter must be chosen before triton is first imported (its standard library
# is decorated at import): the generated GPU kernels run on the CPU in tests/test_triton.py,
# and anything that imports triton earlier (torch.compile) must not decide it first.
os.environ.setdefault("TRITON_INTERPRET", "1")

import jax
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)

#: runs only as a subprocess with KERAS_BACKEND set (tests/test_keras.py): Keras fixes its
#: backend at import, and its default (TensorFlow) is not installed
collect_ignore = ["keras_worker.py"]

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Generated kernels build in the background and take over once ready; the suite's exact
# comparisons must not depend on that timing. tests/test_kernels.py turns them on itself.
os.environ.setdefault("REGLOSS_KERNELS", "0")
