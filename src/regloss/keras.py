"""Every regloss loss as a Keras 3 loss: ``keras.losses.Loss`` subclasses.

::

    import regloss.keras as rk
    model.compile(optimizer="adam", loss=rk.Loss("tukey", c=4.685))
    model.compile(optimizer="adam", loss=rk.Huber(delta=1.0))

Keras' conventions: ``loss(y_true, y_pred, sample_weight=None)``; the per-sample loss is
the mean of ρ(y_pred − y_true) over the last axis (as Keras' own ``MeanSquaredError``), and
``reduction`` ('sum_over_batch_size', 'sum', 'mean', 'mean_with_sample_weight', None or
'none') and ``sample_weight`` are Keras'. Each loss serialises with ``get_config`` /
``from_config`` and is registered for ``keras.saving`` under the package ``regloss``.

The elementwise values come from regloss's own front-end for the running backend, with its
analytic gradient ψ (a ``custom_jvp`` on JAX, an autograd Function on torch), so training
differentiates the definition, not its overflow-safe branches. Backends: jax, torch and
numpy (tested: jax and torch, in a short ``model.fit``); TensorFlow is refused with a
one-line message.

Needs ``pip install 'regloss[keras]'`` and a backend's own extra (``[jax]`` or ``[torch]``).
"""

from __future__ import annotations

from typing import Any

from ._optional import require
from .losses import Loss as _Loss
from .losses import available_losses, resolve

keras: Any = require("keras", "regloss.keras")

#: the named classes' names, Keras style (``MeanSquaredError``, ``Huber``, ``SmoothL1``, ...)
CLASS_NAMES = {
    name: {"mse": "MeanSquaredError", "mae": "MeanAbsoluteError"}.get(
        name, "".join(part.capitalize() for part in name.split("_"))
    )
    for name in available_losses()
}

__all__ = ["CLASS_NAMES", "Loss", *CLASS_NAMES.values()]

_SUPPORTED = ("jax", "torch", "numpy")


def _values(loss: _Loss, y_true: Any, y_pred: Any) -> Any:
    """ρ(y_pred − y_true) elementwise, through the backend's regloss front-end."""
    backend = keras.backend.backend()
    if backend == "jax":
        from . import jax as front

        return front.loss(loss, y_pred, y_true, reduction="none")
    if backend == "torch":
        from .torch import functional as torch_front

        return torch_front.loss(loss, y_pred, y_true, reduction="none")
    if backend == "numpy":
        from . import numpy as np_front

        return np_front.loss(loss, y_pred, y_true, reduction="none")
    raise ValueError(
        f"regloss.keras runs on the {', '.join(_SUPPORTED)} backends; this Keras uses "
        f"{backend!r} (set KERAS_BACKEND=jax or torch)"
    )


@keras.saving.register_keras_serializable(package="regloss")
class Loss(keras.losses.Loss):  # type: ignore[misc]
    """A registered regloss loss as a Keras loss: ``Loss("huber", delta=1.0)``.

    Parameters
    ----------
    loss : str
        A registered loss name (:func:`regloss.available_losses`).
    reduction, name, dtype
        Keras' (``reduction`` default 'sum_over_batch_size').
    **params
        The loss's parameters (``delta=1.0``).
    """

    def __init__(
        self,
        loss: str = "mse",
        *,
        reduction: Any = "sum_over_batch_size",
        name: str | None = None,
        dtype: Any = None,
        **params: Any,
    ) -> None:
        if not isinstance(loss, str):
            raise TypeError(
                f"loss must be a registered loss name (serialisable), got {type(loss).__name__}; "
                f"choose one of {available_losses()}"
            )
        self.regloss_loss = resolve(loss, dict(params))
        self.loss_name, self.loss_params = loss, dict(params)
        super().__init__(name=name or f"regloss_{loss}", reduction=reduction, dtype=dtype)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        ops = keras.ops
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        return ops.mean(_values(self.regloss_loss, y_true, y_pred), axis=-1)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        return {**config, "loss": self.loss_name, **self.loss_params}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Loss:
        return cls(**config)


def _named(loss_name: str) -> type:
    class_name = CLASS_NAMES[loss_name]

    def __init__(
        self: Any,
        *,
        reduction: Any = "sum_over_batch_size",
        name: str | None = None,
        dtype: Any = None,
        **params: Any,
    ) -> None:
        Loss.__init__(self, loss_name, reduction=reduction, name=name, dtype=dtype, **params)

    def get_config(self: Any) -> dict[str, Any]:
        config = Loss.get_config(self)
        config.pop("loss")
        return config

    cls = type(
        class_name,
        (Loss,),
        {
            "__init__": __init__,
            "get_config": get_config,
            "__doc__": f"regloss's {loss_name} loss for Keras (``Loss({loss_name!r}, ...)``).",
            "__module__": __name__,
        },
    )
    registered: type = keras.saving.register_keras_serializable(package="regloss")(cls)
    return registered


for _name in available_losses():
    _cls = _named(_name)
    globals()[_cls.__name__] = _cls
del _name, _cls
