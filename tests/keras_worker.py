"""Runs in a fresh process with KERAS_BACKEND set (Keras fixes its backend at import):
prints one JSON object of checks for ``tests/test_keras.py``."""

from __future__ import annotations

import json
import os
import sys
import tempfile

import keras
import numpy as np
from tests.settings import SETTINGS

import regloss
import regloss.keras as rk
import regloss.numpy as rnp


def main() -> None:
    out: dict[str, object] = {"backend": keras.backend.backend()}
    rng = np.random.default_rng(0)
    y_true = rng.normal(size=(16, 3)).astype("float32")
    y_pred = (y_true + rng.standard_t(3, size=(16, 3))).astype("float32")
    w = rng.uniform(0, 2, size=16).astype("float32")

    # values against regloss.numpy, every setting, every Keras reduction
    worst = 0.0
    for name, params in SETTINGS:
        if regloss.get_loss(name, **params).depends_on_position():
            continue
        per_sample = np.asarray(rnp.loss(name, y_pred, y_true, reduction="none", **params)).mean(-1)
        for reduction, want in (
            ("sum_over_batch_size", float((per_sample * w).sum() / 16)),
            ("sum", float((per_sample * w).sum())),
            ("mean_with_sample_weight", float((per_sample * w).sum() / w.sum())),
        ):
            got = float(rk.Loss(name, reduction=reduction, **params)(y_true, y_pred, w))
            worst = max(worst, abs(got - want) / max(abs(want), 1e-30))
    out["worst_value_vs_numpy"] = worst

    # Keras' own losses where the definitions coincide
    pairs = [
        (rk.MeanSquaredError(), keras.losses.MeanSquaredError()),
        (rk.MeanAbsoluteError(), keras.losses.MeanAbsoluteError()),
        (rk.Huber(delta=0.7), keras.losses.Huber(delta=0.7)),
        (rk.LogCosh(), keras.losses.LogCosh()),
    ]
    out["worst_vs_keras"] = max(
        abs(float(a(y_true, y_pred, w)) - float(b(y_true, y_pred, w))) / float(b(y_true, y_pred, w))
        for a, b in pairs
    )

    # the gradient Keras' backend takes is regloss's analytic psi
    loss = rk.Tukey(c=2.0)
    if out["backend"] == "jax":
        import jax

        g = np.asarray(jax.grad(lambda p: loss(y_true, p))(y_pred))
    else:
        import torch

        p = torch.tensor(y_pred, requires_grad=True)
        loss(torch.tensor(y_true), p).backward()
        g = p.grad.numpy()
    _, want_g = rnp.value_and_grad(
        "tukey", y_pred.astype("float64"), y_true.astype("float64"), c=2.0
    )
    out["worst_grad"] = float(np.max(np.abs(g - want_g)) / np.max(np.abs(want_g)))

    # a short model.fit, saved and loaded with its loss
    x = rng.normal(size=(256, 4)).astype("float32")
    y = (x @ rng.normal(size=(4, 2)) + 0.1 * rng.standard_cauchy(size=(256, 2))).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=rk.Loss("cauchy", c=0.5))
    history = model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    out["losses"] = [float(v) for v in history.history["loss"]]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        again = keras.models.load_model(path)
    out["reloaded_loss"] = type(again.loss).__name__
    out["reloaded_config"] = again.loss.get_config()
    out["same_predictions"] = bool(
        np.allclose(again.predict(x, verbose=0), model.predict(x, verbose=0))
    )
    config = rk.Huber(delta=0.7, reduction="sum").get_config()
    clone = rk.Huber.from_config(config)
    out["config_round_trip"] = clone.get_config() == config
    out["serialised"] = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(rk.Loss("welsch", c=2.0))
    ).get_config()["c"]
    try:
        rk.Loss("l2")
    except ValueError as exc:
        out["unknown_loss"] = str(exc)
    real = keras.backend.backend
    keras.backend.backend = lambda: "tensorflow"  # a backend regloss does not serve
    try:
        rk.Huber()(y_true, y_pred)
    except ValueError as exc:
        out["unsupported_backend"] = str(exc)
    finally:
        keras.backend.backend = real
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
