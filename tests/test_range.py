"""Every loss over the whole floating-point range, against a 60-digit mpmath reference.

For every registered loss (default and extreme parameters), float32 and float64, the
residual is swept from 0 through the subnormals, log-spaced up to ``finfo.max``, plus the
points around each breakpoint, with both signs. The contract checked:

* rho, psi and psi' are never NaN; they are finite wherever the exact value is
  representable, and ±inf only where it is not (|exact| beyond ``finfo.max``);
* rho and psi are within ``RTOL`` relative (a few ulps) of the exact value, with an
  absolute allowance of ``RTOL * smallest_normal`` for results in the subnormal range;
* rho >= 0; a bounded loss never exceeds its bound; psi has the sign of r;
* psi' is accurate to ``RTOL_PSI_PRIME`` relative to its scale for the default settings.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import mpmath
import numpy as np
import pytest
from tests.reference_mp import REFERENCE
from tests.settings import SETTINGS, params

import regloss
from regloss.losses import get_loss

RTOL = {np.float32: 1e-5, np.float64: 1e-12}
RTOL_PSI_PRIME = {np.float32: 1e-4, np.float64: 1e-10}

#: Parameters at the limits the constructors accept (see ``check_scale_param``) and
#: Barron's alpha at the edges of its range and near its special values.
EXTREMES: list[tuple[str, dict[str, Any]]] = [
    *(
        (name, {key: v})
        for name, key in [
            ("huber", "delta"),
            ("smooth_l1", "beta"),
            ("pseudo_huber", "delta"),
            ("cauchy", "c"),
            ("geman_mcclure", "c"),
            ("welsch", "c"),
            ("tukey", "c"),
            ("fair", "c"),
            ("barron", "scale"),
        ]
        for v in (1e-18, 1e18)
    ),
    ("quantile", {"q": 1e-300}),
    ("quantile", {"q": 1 - 1e-16}),
    ("barron", {"alpha": 1e-300}),
    ("barron", {"alpha": -1e-46}),
    ("barron", {"alpha": 1e18}),
    ("barron", {"alpha": -1e18}),
    ("barron", {"alpha": 2 - 1e-12}),
    ("barron", {"alpha": 2 + 1e-7}),
    ("barron", {"alpha": float("inf")}),
    ("barron", {"alpha": 0.5, "scale": 1e-18}),
    # the closed forms (Barron.CLOSED) at the scale limits
    *(("barron", {"alpha": a, "scale": c}) for a in (0.0, -2.0) for c in (1e-18, 1e18)),
]

CASES = params(SETTINGS + EXTREMES)
SCALES = ("delta", "beta", "c", "scale")


def _as_computed(params: dict[str, Any], dtype: Any) -> dict[str, Any]:
    """The parameters as a computation in ``dtype`` sees them: a float32 loss can only know
    its scale rounded to float32 (the exact reference then differs by that rounding alone)."""
    return {k: float(dtype(v)) if k in SCALES else v for k, v in params.items()}


def test_extremes_cover_every_scale_parameter() -> None:
    """A new loss with a scale parameter must add its limits to EXTREMES."""
    extreme = {(n, k) for n, p in EXTREMES for k in p}
    for name in regloss.available_losses():
        loss = get_loss(name)
        for key in loss.params:
            if key in ("delta", "beta", "c", "scale"):
                assert (name, key) in extreme, f"add {name}.{key} at 1e-18 and 1e18 to EXTREMES"


def _grid(dtype: Any, loss: Any) -> np.ndarray:
    fi = np.finfo(dtype)
    tiny = float(fi.smallest_subnormal)
    pts = [0.0, tiny, 2 * tiny, 3 * tiny, float(fi.smallest_normal), 1e-30, 1e-8, 0.5, 1.0]
    pts += list(np.geomspace(tiny, float(fi.max), 320))
    pts += [float(fi.max), float(np.nextafter(fi.max, 0, dtype=dtype))]
    for k in loss.breakpoints() + tuple(loss.params.get(n, 1.0) for n in SCALES):
        k = abs(float(k))
        if 0 < k < float(fi.max) / 4:
            pts += [k * f for f in (0.25, 0.5, 0.999, 1.0, 1.001, 2.0, 64.0, 1e4)]
    g = np.unique(np.asarray(pts, dtype=np.float64).astype(dtype))
    g = g[np.isfinite(g)]
    return np.concatenate([g, -g[g > 0]])


@cache
def _reference(name: str, key: tuple[tuple[str, Any], ...], values: tuple[float, ...]) -> Any:
    fn, p = REFERENCE[name], dict(key)
    scales = [abs(float(v)) for k, v in p.items() if k in SCALES]
    smallest = min([1.0, *[s for s in scales if s > 0]])
    biggest = max([1.0, *scales])
    out = np.empty((3, len(values)), dtype=object)
    for i, v in enumerate(values):
        # Formulas like sqrt(1 + u²) - 1 or 1 - (1 - u²)³ cancel for small u = |r|/scale;
        # enough working digits keep the reference exact to 40 digits anyway.
        log_u = math.log10(abs(v)) - math.log10(biggest) if v else 0.0
        extra = 2 * max(0, -math.floor(log_u)) + 2 * max(0, math.ceil(-math.log10(smallest)))
        with mpmath.workdps(60 + extra):
            out[:, i] = [+x for x in fn(mpmath.mpf(v), p)]
    return out


def _as_float(x: Any) -> float:
    try:
        return float(x)
    except OverflowError:  # pragma: no cover - mpmath returns inf instead
        return math.copysign(math.inf, x)


def _check(
    what: str,
    got: np.ndarray,
    ref: np.ndarray,
    r: np.ndarray,
    dtype: Any,
    rtol: float,
    scale: Any = 0.0,
    flush: bool = False,
) -> None:
    fi = np.finfo(dtype)
    top = float(fi.max)
    # flush: a backend that flushes subnormals to zero (XLA on the CPU), intermediates too,
    # so a result up to a few times the smallest normal number can be lost with them
    atol = (16.0 if flush else rtol) * float(fi.smallest_normal) + rtol * scale
    exact = np.array([_as_float(x) for x in ref])
    g = got.astype(np.float64)
    assert not np.isnan(g).any(), f"{what} is NaN at r = {r[np.isnan(g)][:5]}"
    fits = np.abs(exact) <= top * (1 - 4 * rtol)
    beyond = np.abs(exact) > top * (1 + 4 * rtol)
    bad = fits & ~np.isfinite(g)
    assert not bad.any(), f"{what} overflows at r = {r[bad][:5]} (exact {exact[bad][:5]})"
    bad = beyond & (g != np.where(exact > 0, np.inf, -np.inf))
    assert not bad.any(), f"{what} should be ±inf at r = {r[bad][:5]}, got {g[bad][:5]}"
    err = np.abs(g[fits] - exact[fits])
    ok = err <= rtol * np.abs(exact[fits]) + np.broadcast_to(atol, exact.shape)[fits]
    if not ok.all():
        i = np.flatnonzero(~ok)[:5]
        rel = err[i] / np.maximum(np.abs(exact[fits][i]), 1e-300)
        raise AssertionError(
            f"{what} inaccurate at r = {r[fits][i]}: got {g[fits][i]}, exact {exact[fits][i]}, "
            f"relative error {rel}"
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("name", "params"), CASES)
def test_rho_psi_psi_prime_over_the_whole_range(name: str, params: dict, dtype: Any) -> None:
    loss = get_loss(name, **params)
    r = _grid(dtype, loss)
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        rho, psi, psi_prime = loss.rho(r), loss.psi(r), loss.psi_prime(r)
    check_contract(name, loss.params, dtype, r, rho, psi, psi_prime)


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("name", "params"), CASES)
def test_the_contract_holds_in_every_backend(
    name: str, params: dict, dtype: Any, backend: str
) -> None:
    """The same sweep on PyTorch tensors and JAX arrays: a definition NumPy evaluates well
    can still fail in another backend. Found so: Barron at alpha = -1e-46 clipped float32
    tensors at 2e46, which PyTorch refuses to convert; PyTorch's log1p of a float32
    subnormal is 20% off, which broke log1p(u)/u for tiny u (now 1 below 2^-60). XLA flushes
    subnormals to zero on the CPU (inputs, intermediates, results): for JAX the sweep starts
    at the smallest normal number and allows results below 16 times it to be 0."""
    loss = get_loss(name, **params)
    r = _grid(dtype, loss)
    flush = backend == "jax"
    if backend == "torch":
        import torch

        x: Any = torch.from_numpy(r)
    else:
        import jax.numpy as jnp

        r = r[(r == 0) | (np.abs(r) >= np.finfo(dtype).smallest_normal)]
        x = jnp.asarray(r)
    rho, psi, psi_prime = (np.asarray(getattr(loss, m)(x)) for m in ("rho", "psi", "psi_prime"))
    check_contract(name, loss.params, dtype, r, rho, psi, psi_prime, flush)


def check_contract(
    name: str,
    params: dict[str, Any],
    dtype: Any,
    r: np.ndarray,
    rho: np.ndarray,
    psi: np.ndarray,
    psi_prime: np.ndarray,
    flush: bool = False,
) -> None:
    """rho, psi and psi' of loss ``name`` at ``r`` against the mpmath reference: the
    numerical contract (also applied to generated kernels, ``test_kernels``). ``flush``:
    results below the normal range may be 0 (a backend that flushes subnormals)."""
    for out in (rho, psi, psi_prime):
        assert out.dtype == dtype and out.shape == r.shape
    seen = _as_computed(params, dtype)
    ref = _reference(name, tuple(sorted(seen.items())), tuple(float(v) for v in r))
    rtol = RTOL[dtype]
    _check("rho", rho, ref[0], r, dtype, rtol, flush=flush)
    _check("psi", psi, ref[1], r, dtype, rtol, flush=flush)
    # psi' crosses zero (1 - u² and the like): its error is measured against its own scale.
    pp_scale = float(np.max(np.abs([_as_float(x) for x in ref[2]])))
    pp_scale = min(pp_scale, float(np.finfo(dtype).max))
    _check("psi_prime", psi_prime, ref[2], r, dtype, RTOL_PSI_PRIME[dtype], pp_scale, flush)

    assert np.all(rho >= 0), f"rho < 0 at r = {r[rho < 0][:5]}"
    nz = r != 0
    assert np.all(np.sign(psi[nz]) * np.sign(r[nz]) >= 0), "psi has the wrong sign"
    assert np.all(psi[~nz] == 0) and np.all(rho[~nz] == 0)


def _sup(name: str, params: dict[str, Any]) -> Any:
    """The loss's supremum (its value at r = 10^1000), or None when it grows without bound."""
    fn = REFERENCE[name]
    sup = fn(mpmath.mpf(10) ** 1000, params)[0]
    return None if sup > fn(mpmath.mpf(10) ** 500, params)[0] * (1 + 1e-9) else sup


BOUNDED = [p for p in CASES if _sup(*p.values) is not None]


def test_bounded_cases_are_the_bounded_losses() -> None:
    names = {p.values[0] for p in BOUNDED}
    assert {"geman_mcclure", "welsch", "tukey", "barron"} <= names
    assert not names & {"mse", "mae", "huber", "cauchy", "fair", "pseudo_huber"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("name", "params"), BOUNDED)
def test_bounded_losses_never_exceed_their_bound(name: str, params: dict, dtype: Any) -> None:
    # The bound as the loss forms it: from its float64 parameters, rounded once to dtype.
    loss = get_loss(name, **params)
    bound = np.asarray(_as_float(_sup(name, params)), dtype=dtype)
    r = _grid(dtype, loss)
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        rho = loss.rho(r)
    assert np.all(rho <= bound), f"rho exceeds its bound {bound} at r = {r[rho > bound][:5]}"


# --- Negative log-likelihoods: residual and scale input over their ranges ------------------

_NLL_EXACT = {
    # (value, d/dr, d/d third input) for the plain and the log-input forms, exact.
    # (value, d/dr, d/d third input, size of that derivative's two terms), exact. The
    # derivative in the scale is a difference that crosses zero (r² = v): its error is
    # measured against the size of its terms.
    ("gaussian_nll", False): lambda r, v: (
        (mpmath.log(v) + r * r / v) / 2,
        r / v,
        (1 - r * r / v) / (2 * v),
        (1 + r * r / v) / (2 * v),
    ),
    ("gaussian_nll", True): lambda r, t: (
        (t + r * r * mpmath.exp(-t)) / 2,
        r * mpmath.exp(-t),
        (1 - r * r * mpmath.exp(-t)) / 2,
        (1 + r * r * mpmath.exp(-t)) / 2,
    ),
    ("laplace_nll", False): lambda r, b: (
        mpmath.log(2 * b) + abs(r) / b,
        _sgn(r) / b,
        (1 - abs(r) / b) / b,
        (1 + abs(r) / b) / b,
    ),
    ("laplace_nll", True): lambda r, t: (
        mpmath.log(2) + t + abs(r) * mpmath.exp(-t),
        _sgn(r) * mpmath.exp(-t),
        1 - abs(r) * mpmath.exp(-t),
        1 + abs(r) * mpmath.exp(-t),
    ),
}


def _sgn(r: Any) -> int:
    return (r > 0) - (r < 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("log_input", [False, True], ids=["plain", "log"])
@pytest.mark.parametrize("name", ["gaussian_nll", "laplace_nll"])
def test_nll_over_the_whole_range(name: str, log_input: bool, dtype: Any) -> None:
    """Value and both gradients finite wherever exact, and accurate, for residuals up to
    finfo.max and log-variances/log-scales up to 10^4 (e^t itself overflows past 88.7 in
    float32) or variances/scales up to finfo.max."""
    from regloss import numpy as rnp

    fi = np.finfo(dtype)
    rs = np.concatenate([[0.0, 1e-30, 0.5, 3.0], np.geomspace(1e-3, float(fi.max), 24)])
    if log_input:
        ss = np.array([-13.8, -1.0, 0.0, 1.0, 50.0, 88.0, 89.0, 200.0, 700.0, 710.0, 1e4])
    else:
        ss = np.concatenate([[1e-6, 0.5, 1.0], np.geomspace(1e-3, float(fi.max), 16)])
    r, s = (a.astype(dtype).ravel() for a in np.meshgrid(rs, ss))
    flag = {"gaussian_nll": "log_var", "laplace_nll": "log_scale"}[name]
    with np.errstate(all="ignore"):
        value, g_pred, g_scale = rnp.nll_value_and_grads(
            name, r, np.zeros_like(r), s, reduction="none", **{flag: log_input}
        )
    exact = np.array(
        [
            [x for x in _NLL_EXACT[name, log_input](mpmath.mpf(a), mpmath.mpf(b))]
            for a, b in zip(r.astype(float), s.astype(float))
        ],
        dtype=object,
    ).T
    rtol = RTOL[dtype] * 10  # a sum of two rounded terms; log(v) itself carries an ulp
    _check(f"{name} value", np.asarray(value), exact[0], r, dtype, rtol)
    _check(f"{name} d/dprediction", np.asarray(g_pred), exact[1], r, dtype, rtol)
    terms = np.array([min(_as_float(x), float(fi.max)) for x in exact[3]])
    _check(f"{name} d/dscale", np.asarray(g_scale), exact[2], r, dtype, rtol, terms)
