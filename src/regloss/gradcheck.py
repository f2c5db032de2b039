"""``check_gradients``: the analytic derivatives of a loss against autodiff and finite differences.

For one loss it checks, in float64:

* elementwise: ``psi`` against central differences of ``rho`` and against autodiff of
  ``rho`` (PyTorch and JAX where installed); ``psi_prime`` likewise against ``psi``;
* every front-end, for every reduction, with and without weights (full and per-sample) and
  masks (with NaN targets under the mask): the NumPy gradient against central
  differences; the PyTorch backward and double backward (Hessian-vector product), for
  prediction and target, against autograd through a naive reference; the JAX gradient and
  Hessian-vector product against the same reference in JAX.

Residuals are sampled (seeded) across scales and kept clear of the loss's kinks, where a
derivative does not exist and finite differences mean nothing.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from . import numpy as rnp
from ._reduction import REDUCTIONS
from .losses import Loss, resolve

__all__ = ["Check", "GradientReport", "check_gradients", "check_nll_gradients"]

FD_TOLERANCE = 1e-6
AUTODIFF_TOLERANCE = 1e-9


@dataclasses.dataclass(frozen=True)
class Check:
    """One comparison: the largest error between two ways of computing a derivative."""

    what: str
    backend: str
    case: str
    max_abs_error: float
    max_rel_error: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return bool(self.max_rel_error <= self.tolerance)


@dataclasses.dataclass(frozen=True)
class GradientReport:
    """All checks of one loss; ``ok`` is True when every check is within tolerance."""

    loss: str
    checks: tuple[Check, ...]
    skipped: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.ok)

    def worst(self, what_prefix: str = "") -> Check:
        """The check with the largest error relative to its tolerance."""
        pool = [c for c in self.checks if c.what.startswith(what_prefix)] or list(self.checks)
        return max(pool, key=lambda c: c.max_rel_error / c.tolerance)

    def __str__(self) -> str:
        rows = [f"{self.loss}: {len(self.checks)} checks, {'OK' if self.ok else 'FAILED'}"]
        for c in self.failures or (self.worst(),):
            tag = "FAIL" if not c.ok else "worst"
            rows.append(
                f"  {tag}: {c.what} [{c.backend}, {c.case}] "
                f"rel {c.max_rel_error:.2e} (tol {c.tolerance:.0e})"
            )
        if self.skipped:
            rows.append(f"  skipped: {', '.join(self.skipped)}")
        return "\n".join(rows)


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch; force=True also converts autograd's ZeroTensor
        out: np.ndarray = np.asarray(x.detach().numpy(force=True), dtype=np.float64)
        return out
    arr: np.ndarray = np.asarray(x, dtype=np.float64)
    return arr


def _errors(actual: Any, expected: Any) -> tuple[float, float]:
    a, e = _np(actual), _np(expected)
    diff = np.abs(a - e)
    rel = diff / np.maximum(1.0, np.abs(e))
    return float(np.max(diff)), float(np.max(rel))


def _residuals(loss: Loss, rng: np.random.Generator, n: int = 48) -> np.ndarray:
    top = loss.check_range()
    mags = np.concatenate(
        [
            rng.uniform(1e-3, 0.5, n // 3),
            rng.uniform(0.5, 4.0, n // 3),
            rng.uniform(min(4.0, top / 2), top, n // 3),
        ]
    )
    r = mags * rng.choice([-1.0, 1.0], size=mags.shape)
    kinks = np.asarray(loss.breakpoints(), dtype=np.float64)
    if kinks.size:
        near = np.min(np.abs(r[:, None] - kinks[None, :]), axis=1) < 1e-3
        r = np.where(near, r + 0.01, r)
    out: np.ndarray = r
    return out


def _fd(f: Callable[[np.ndarray], np.ndarray], r: np.ndarray) -> np.ndarray:
    h = 1e-6 * np.maximum(1.0, np.abs(r))
    out: np.ndarray = (f(r + h) - f(r - h)) / (2 * h)
    return out


def _naive(xp: Any, loss: Loss, p: Any, t: Any, w: Any, keep: Any, reduction: str) -> Any:
    """Independent reference: masked residual, rho by its formula, reduction spelled out."""
    r = p - t if keep is None else xp.where(keep, p - t, 0.0 * p)
    f = xp.ones_like(r)
    if w is not None:
        f = f * w
    if keep is not None:
        f = f * xp.where(keep, 1.0, 0.0)
    v = loss.rho(r) * f
    if reduction == "none":
        return v
    if reduction == "sum":
        return xp.sum(v)
    mean = xp.sum(v) / xp.sum(f)
    return mean if reduction == "mean" else mean * (r.shape[1] if r.ndim > 1 else 1)


def _cases(rng: np.random.Generator, loss: Loss) -> list[tuple[str, dict[str, Any]]]:
    shape = (6, 4)
    r = _residuals(loss, rng, n=72)[:24].reshape(shape)
    target = rng.normal(size=shape)
    pred = target + r
    mask = rng.random(shape) > 0.3
    mask[0, 0] = True
    nan_target = np.where(mask, target, np.nan)
    base = {"prediction": pred, "target": target}
    return [
        ("plain", base),
        ("weight", {**base, "weight": rng.uniform(0.1, 3.0, shape)}),
        ("per-sample weight", {**base, "weight": rng.uniform(0.1, 3.0, shape[0])}),
        ("mask, NaN targets", {"prediction": pred, "target": nan_target, "mask": mask}),
        (
            "weight+mask",
            {
                "prediction": pred,
                "target": nan_target,
                "mask": mask,
                "weight": rng.uniform(0.1, 3.0, shape),
            },
        ),
    ]


def _elementwise_checks(loss: Loss, r: np.ndarray, skipped: list[str]) -> list[Check]:
    out = [
        Check(
            "psi vs finite differences of rho",
            "numpy",
            "elementwise",
            *_errors(loss.psi(r), _fd(loss.rho, r)),
            FD_TOLERANCE,
        ),
        Check(
            "psi_prime vs finite differences of psi",
            "numpy",
            "elementwise",
            *_errors(loss.psi_prime(r), _fd(loss.psi, r)),
            FD_TOLERANCE,
        ),
    ]
    if _has("torch"):
        import torch

        rt = torch.tensor(r, dtype=torch.float64, requires_grad=True)
        (d1,) = torch.autograd.grad(loss.rho(rt).sum(), rt)
        rt2 = torch.tensor(r, dtype=torch.float64, requires_grad=True)
        (d2,) = torch.autograd.grad(loss.psi(rt2).sum(), rt2)
        out += [
            Check(
                "psi vs autograd of rho",
                "torch",
                "elementwise",
                *_errors(loss.psi(r), d1.numpy()),
                AUTODIFF_TOLERANCE,
            ),
            Check(
                "psi_prime vs autograd of psi",
                "torch",
                "elementwise",
                *_errors(loss.psi_prime(r), d2.numpy()),
                AUTODIFF_TOLERANCE,
            ),
        ]
    else:
        skipped.append("torch (not installed)")
    if _has("jax"):
        import jax

        with jax.enable_x64(True):
            rj = jax.numpy.asarray(r)
            d1 = jax.vmap(jax.grad(loss.rho))(rj)
            d2 = jax.vmap(jax.grad(loss.psi))(rj)
            out += [
                Check(
                    "psi vs jax.grad of rho",
                    "jax",
                    "elementwise",
                    *_errors(loss.psi(r), np.asarray(d1)),
                    AUTODIFF_TOLERANCE,
                ),
                Check(
                    "psi_prime vs jax.grad of psi",
                    "jax",
                    "elementwise",
                    *_errors(loss.psi_prime(r), np.asarray(d2)),
                    AUTODIFF_TOLERANCE,
                ),
            ]
    else:
        skipped.append("jax (not installed)")
    return out


def _numpy_checks(loss: Loss, case: str, kw: dict[str, Any], reduction: str) -> list[Check]:
    p, t = kw["prediction"], kw["target"]
    opts = {k: v for k, v in kw.items() if k not in ("prediction", "target")}

    def total(x: np.ndarray) -> float:
        return float(np.sum(rnp.loss(loss, x, t, reduction=reduction, **opts)))

    _, grad = rnp.value_and_grad(loss, p, t, reduction=reduction, **opts)
    fd = np.zeros_like(p)
    h = 1e-6
    for idx in np.ndindex(p.shape):
        e = np.zeros_like(p)
        e[idx] = h * max(1.0, abs(p[idx]))
        fd[idx] = (total(p + e) - total(p - e)) / (2 * e[idx])
    return [
        Check(
            "gradient vs finite differences",
            "numpy",
            f"{reduction}, {case}",
            *_errors(grad, fd),
            FD_TOLERANCE,
        )
    ]


def _torch_checks(
    loss: Loss, case: str, kw: dict[str, Any], reduction: str, v: np.ndarray
) -> list[Check]:
    import torch

    from .torch import functional as tf

    def tensors() -> tuple[Any, Any, Any, Any]:
        p = torch.tensor(kw["prediction"], requires_grad=True)
        t = torch.tensor(kw["target"], requires_grad=True)
        w = None if "weight" not in kw else torch.tensor(kw["weight"])
        m = None if "mask" not in kw else torch.tensor(kw["mask"])
        return p, t, w, m

    p, t, w, m = tensors()
    ours = tf.loss(loss, p, t, reduction, weight=w, mask=m)
    gp, gt = torch.autograd.grad(ours.sum(), (p, t), create_graph=True)
    hvp = _torch_hvp(gp, p, v)

    p2, t2, w2, m2 = tensors()
    if w2 is not None and w2.ndim == 1:
        w2 = w2.reshape(-1, 1)
    ref = _naive(torch, loss, p2, t2, w2, m2, reduction)
    rp, rt = torch.autograd.grad(ref.sum(), (p2, t2), create_graph=True)
    rhvp = _torch_hvp(rp, p2, v)
    label = f"{reduction}, {case}"
    tgt_ref = rt.detach().nan_to_num(0.0)
    return [
        Check(
            "backward (prediction) vs autograd of reference",
            "torch",
            label,
            *_errors(gp.detach(), rp.detach()),
            AUTODIFF_TOLERANCE,
        ),
        Check(
            "backward (target) vs autograd of reference",
            "torch",
            label,
            *_errors(gt.detach(), tgt_ref),
            AUTODIFF_TOLERANCE,
        ),
        Check(
            "double backward (Hessian-vector) vs autograd",
            "torch",
            label,
            *_errors(hvp, rhvp),
            AUTODIFF_TOLERANCE,
        ),
    ]


def _torch_hvp(grad: Any, x: Any, v: np.ndarray) -> Any:
    """d(grad . v)/dx; zero when grad does not depend on x (piecewise-linear losses)."""
    import torch

    out = (grad * torch.tensor(v)).sum()
    if not out.requires_grad:
        return torch.zeros_like(x)
    (h,) = torch.autograd.grad(out, x, allow_unused=True, materialize_grads=True)
    return h


def _jax_checks(
    loss: Loss, case: str, kw: dict[str, Any], reduction: str, v: np.ndarray
) -> list[Check]:
    import jax
    import jax.numpy as jnp

    from . import jax as rjax

    with jax.enable_x64(True):
        p, t = jnp.asarray(kw["prediction"]), jnp.asarray(kw["target"])
        w = None if "weight" not in kw else jnp.asarray(kw["weight"])
        m = None if "mask" not in kw else jnp.asarray(kw["mask"])

        def ours(x: Any) -> Any:
            return jnp.sum(rjax.loss(loss, x, t, reduction=reduction, weight=w, mask=m))

        w2 = w.reshape(-1, 1) if w is not None and w.ndim == 1 else w

        def ref(x: Any) -> Any:
            return jnp.sum(_naive(jnp, loss, x, t, w2, m, reduction))

        vv = jnp.asarray(v)
        g, hv = jax.jvp(jax.grad(ours), (p,), (vv,))
        rg, rhv = jax.jvp(jax.grad(ref), (p,), (vv,))
        label = f"{reduction}, {case}"
        return [
            Check(
                "jax.grad vs autodiff of reference",
                "jax",
                label,
                *_errors(g, rg),
                AUTODIFF_TOLERANCE,
            ),
            Check(
                "Hessian-vector product vs autodiff",
                "jax",
                label,
                *_errors(hv, rhv),
                AUTODIFF_TOLERANCE,
            ),
        ]


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def check_gradients(loss: str | Loss, *, seed: int = 0, **params: Any) -> GradientReport:
    """Check a loss's analytic first and second derivatives.

    Parameters
    ----------
    loss : str or Loss
        A registered name (with ``params``) or a loss object.
    seed : int, default 0
        Seed for the sampled residuals.

    Returns
    -------
    GradientReport
        ``.ok`` is True when every comparison is within tolerance (finite differences
        1e-6 relative, autodiff 1e-9); ``.checks`` holds each one with its errors.

    Examples
    --------
    >>> import regloss
    >>> report = regloss.check_gradients("huber", delta=0.5)
    >>> report.ok
    True
    """
    spec = resolve(loss, params)
    rng = np.random.default_rng(seed)
    skipped: list[str] = []
    checks = _elementwise_checks(spec, _residuals(spec, rng), skipped)
    torch_ok, jax_ok = _has("torch"), _has("jax")
    for case, kw in _cases(rng, spec):
        v = rng.normal(size=kw["prediction"].shape)
        for reduction in REDUCTIONS:
            checks += _numpy_checks(spec, case, kw, reduction)
            if torch_ok:
                checks += _torch_checks(spec, case, kw, reduction, v)
            if jax_ok:
                checks += _jax_checks(spec, case, kw, reduction, v)
    return GradientReport(repr(spec), tuple(checks), tuple(skipped))


def check_nll_gradients(name: str, *, seed: int = 0, **params: Any) -> GradientReport:
    """The same checks for a scale-input (NLL) loss: its ``grad`` against finite differences
    and autodiff of ``value``, its ``hess`` against those of ``grad``, and the NumPy, PyTorch
    and JAX front-ends' gradients (prediction and scale input, plain and log input) against
    finite differences and autodiff of the formula.
    """
    from .losses._nll import get_nll_loss

    spec = get_nll_loss(name, **params)
    rng = np.random.default_rng(seed)
    r = _residuals(_NoBreaks(), rng)
    v = rng.uniform(0.2, 5.0, r.shape)
    checks: list[Check] = []
    skipped: list[str] = []
    g_r, g_v = spec.grad(r, v)
    h = spec.hess(r, v)
    fd_r = _fd(lambda x: spec.value(x, v), r)
    fd_v = _fd(lambda s: spec.value(r, s), v)
    checks += [
        Check(
            "d/dr vs finite differences of value",
            "numpy",
            "elementwise",
            *_errors(g_r, fd_r),
            FD_TOLERANCE,
        ),
        Check(
            "d/ds vs finite differences of value",
            "numpy",
            "elementwise",
            *_errors(g_v, fd_v),
            FD_TOLERANCE,
        ),
        Check(
            "d2/dr2 vs finite differences of d/dr",
            "numpy",
            "elementwise",
            *_errors(h[0], _fd(lambda x: spec.grad(x, v)[0], r)),
            FD_TOLERANCE,
        ),
        Check(
            "d2/drds vs finite differences of d/dr",
            "numpy",
            "elementwise",
            *_errors(h[1], _fd(lambda s: spec.grad(r, s)[0], v)),
            FD_TOLERANCE,
        ),
        Check(
            "d2/ds2 vs finite differences of d/ds",
            "numpy",
            "elementwise",
            *_errors(h[2], _fd(lambda s: spec.grad(r, s)[1], v)),
            FD_TOLERANCE,
        ),
    ]
    if _has("torch"):
        checks += _torch_nll_checks(name, spec, rng)
    else:
        skipped.append("torch (not installed)")
    return GradientReport(repr(spec), tuple(checks), tuple(skipped))


class _NoBreaks(Loss):
    """Samples residuals clear of 0, where the Laplace NLL's |r| has its kink."""

    def breakpoints(self) -> tuple[float, ...]:
        return (0.0,)


def _torch_nll_checks(name: str, spec: Any, rng: np.random.Generator) -> list[Check]:
    import torch

    from .torch.nll import _evaluate

    out: list[Check] = []
    shape = (6, 4)
    for log_input in (False, True):
        for reduction in REDUCTIONS:
            p = torch.tensor(rng.normal(size=shape), requires_grad=True)
            t = torch.tensor(rng.normal(size=shape))
            raw = rng.uniform(0.2, 3.0, (6, 1))
            s = torch.tensor(np.log(raw) if log_input else raw, requires_grad=True)
            mask = torch.tensor(rng.random(shape) > 0.3)
            val = _evaluate(spec, p, t, s, log_input, reduction, None, mask, "propagate", False)
            gp, gs = torch.autograd.grad(val.sum(), (p, s), create_graph=True)
            vvec = torch.tensor(rng.normal(size=shape))
            hp = torch.autograd.grad(
                (gp * vvec).sum(), (p, s), allow_unused=True, materialize_grads=True
            )
            # reference: autodiff of the formula, masking and reduction spelled out
            p2, s2 = p.detach().clone().requires_grad_(), s.detach().clone().requires_grad_()
            v2 = torch.exp(s2) if log_input else s2
            r2 = torch.where(mask, p2 - t, 0.0)
            v2 = torch.where(mask, v2.expand(shape), 1.0)
            elem = spec.value(r2, v2) * mask
            ref = elem if reduction == "none" else elem.sum()
            if reduction in ("mean", "batchmean"):
                ref = ref / mask.sum() * (shape[1] if reduction == "batchmean" else 1)
            rp, rs = torch.autograd.grad(ref.sum(), (p2, s2), create_graph=True)
            rhp = torch.autograd.grad(
                (rp * vvec).sum(), (p2, s2), allow_unused=True, materialize_grads=True
            )
            label = f"{reduction}, {'log ' if log_input else ''}{spec.scale_input}, mask"
            out += [
                Check(
                    "backward (prediction) vs autograd of formula",
                    "torch",
                    label,
                    *_errors(gp, rp),
                    AUTODIFF_TOLERANCE,
                ),
                Check(
                    "backward (scale input) vs autograd of formula",
                    "torch",
                    label,
                    *_errors(gs, rs),
                    AUTODIFF_TOLERANCE,
                ),
                Check(
                    "double backward vs autograd of formula",
                    "torch",
                    label,
                    *_errors(
                        torch.cat([hp[0].flatten(), hp[1].flatten()]),
                        torch.cat([rhp[0].flatten(), rhp[1].flatten()]),
                    ),
                    AUTODIFF_TOLERANCE,
                ),
            ]
    return out
