"""What every front-end shares: naming rules and generated signatures/docstrings."""

from __future__ import annotations

import dataclasses
import inspect

from .losses import Loss, PairLoss, registered, registered_nll

__all__ = ["OPTION_DOC", "log_flag", "loss_signature_params", "module_names", "torch_names"]

#: Names PyTorch uses for the losses it already has; every other loss follows the rule
#: ``<name>_loss`` / ``<CamelCase>Loss``. The rule-based names are kept as aliases.
_TORCH_FUNCTIONAL = {"mse": "mse_loss", "mae": "l1_loss", "huber": "huber_loss"}
_TORCH_MODULE = {
    "mse": "MSELoss",
    "mae": "L1Loss",
    "smooth_l1": "SmoothL1Loss",
    "geman_mcclure": "GemanMcClureLoss",
}

OPTION_DOC = """
Shared options (keyword-only; argument order is always ``(prediction, target)``):

reduction : {'none', 'sum', 'mean', 'batchmean'}, default 'mean'
    'mean' averages over all elements (as torch.nn.MSELoss); 'batchmean' sums over every
    dimension but the first and averages over the first. regloss.torch also takes
    'global_mean': under torch.distributed, the mean over every rank's elements (DDP's
    averaged gradients then equal one process's 'mean' on the whole batch); else 'mean'.
weight : array, optional
    Non-negative weights of the prediction's shape, or shape (N,) for one per sample.
    'mean' becomes sum(w * rho) / sum(w).
mask : bool array, optional
    The prediction's shape or (N,); False elements contribute nothing and get exactly
    zero gradient even when their target is NaN or inf. 'mean' divides by the (weighted)
    count of kept elements; everything masked gives 0.
nan_policy : {'propagate', 'omit', 'raise'}, default 'propagate'
    'omit' treats NaN targets as masked (missing labels); 'raise' reports how many NaNs
    there are and where the first is.
broadcast : bool, default False
    Shapes must match unless this is True.
"""


def log_flag(name: str) -> str:
    """Keyword that says the NLL's third input is a logarithm: ``log_var``, ``log_scale``."""
    return f"log_{registered_nll()[name].scale_input}"


def loss_signature_params(cls: type[Loss] | type[PairLoss]) -> list[inspect.Parameter]:
    """Keyword-only parameters of a loss, with defaults, for generated signatures."""
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else inspect.Parameter.empty
        out.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default))
    return out


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def torch_names() -> dict[str, str]:
    """Functional name -> registry name, the torch-compatible name first, then the rule."""
    out: dict[str, str] = {}
    for name in registered():
        if name in _TORCH_FUNCTIONAL:
            out[_TORCH_FUNCTIONAL[name]] = name
        out[f"{name}_loss"] = name
    return out


def module_names() -> dict[str, str]:
    """Module class name -> registry name (``MSELoss``, ``HuberLoss``, ``MseLoss``...)."""
    out: dict[str, str] = {}
    for name in registered():
        if name in _TORCH_MODULE:
            out[_TORCH_MODULE[name]] = name
        out[f"{_camel(name)}Loss"] = name
    return out
