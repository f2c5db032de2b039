"""Optional dependencies, imported lazily: a missing one is one line naming the extra.

Every optional import in regloss goes through :func:`require`, so a user who installed the
wheel without an extra gets ``MissingExtra: reading CSV files needs pyarrow: pip install
'regloss[diagnose]'`` instead of a bare ``ModuleNotFoundError`` deep in a call; the CLI
prints that line and exits 2.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRAS", "MissingExtra", "missing", "pyplot", "require"]

#: The extra that installs each optional top-level package (pyproject's optional-dependencies).
EXTRAS = {
    "torch": "torch",
    "jax": "jax",
    "scipy": "stats",
    "pyarrow": "diagnose",
    "matplotlib": "plot",  # also in [diagnose] and [demo]
    "rich": "diagnose",
    "dask": "dask",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "sklearn": "sklearn",
    "keras": "keras",
    "distributed": "dask",
}


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` (e.g. ``"pyarrow.csv"``) or raise :class:`MissingExtra`.

    ``feature`` completes "``feature`` needs ...", e.g. ``"reading CSV files"``.

    Examples
    --------
    >>> require("numpy", "everything").__name__
    'numpy'
    >>> require("no_such_module", "this doctest")
    Traceback (most recent call last):
    ...
    regloss._optional.MissingExtra: this doctest needs no_such_module: pip install no_such_module
    """
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        # Only the package itself missing is a missing extra; a broken install is not.
        if exc.name is not None and exc.name.split(".")[0] != top:
            raise
        raise missing(top, feature) from None


def missing(package: str, feature: str) -> MissingExtra:
    """The error for ``feature`` when ``package`` is not installed."""
    extra = EXTRAS.get(package)
    how = f"pip install 'regloss[{extra}]'" if extra else f"pip install {package}"
    return MissingExtra(f"{feature} needs {package}: {how}")


def pyplot(feature: str) -> ModuleType:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (figures go to files)."""
    matplotlib = require("matplotlib", feature)
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", feature)
