"""Shared test configuration: hypothesis profiles, float64 JAX, and the generated kernels
built before the tests start."""

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


def pytest_configure(config: object) -> None:
    """The suite runs with the generated kernels as a user gets them: on. A kernel is
    built when a call first asks for it, before that call runs; building every kernel of
    tests/settings.py (both dtypes, and the NLLs') here first, two at a time, into the
    disk cache, lets the test processes load them in milliseconds instead of each
    compiling its own (the controller only: xdist's workers find them on disk)."""
    if hasattr(config, "workerinput"):
        return
    from tests.settings import SETTINGS

    from regloss._kernels import c
    from regloss.losses import available_nll_losses, form_of, get_definition, get_nll_loss

    forms = [form_of(get_definition(name, **p)) for name, p in SETTINGS]
    for name in available_nll_losses():
        forms += [form_of(get_nll_loss(name), log) for log in (False, True)]
    c.warm(forms, ("float32", "float64"), jobs=os.cpu_count() or 2)
