"""End-to-end training halves its learning rate when validation accuracy stalls."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.finetune.train import LR_FACTOR, train_end_to_end


def _batches(x: np.ndarray, y: np.ndarray) -> tuple[tf.data.Dataset, int]:
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat(), len(x) // 8


def _model() -> keras.Model:
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))


def test_rate_halves_while_validation_accuracy_stalls():
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    # Trained on class 1 only and validated on class 0 only: validation accuracy falls to 0
    # and stays there, so every epoch after the first is a stall.
    train = _batches(x, np.ones(32, "int32"))
    valid = _batches(x[:16], np.zeros(16, "int32"))
    history = train_end_to_end(_model(), train, valid, 2, np.ones(32, "int32"), epochs=5,
                               learning_rate=0.1, patience=3, log_dir=None)
    rates = history["learning_rate"]
    assert history["val_accuracy"][1:] == [0.0] * (len(rates) - 1)
    assert rates[0] == pytest.approx(0.1)
    assert rates[-1] < rates[0]
    assert all(later in (pytest.approx(r), pytest.approx(r * LR_FACTOR))
               for r, later in zip(rates, rates[1:], strict=False))


def test_rate_stays_while_validation_accuracy_improves():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    history = train_end_to_end(_model(), _batches(x, y), _batches(x, y), 2, y, epochs=2,
                               learning_rate=0.05, patience=30, log_dir=None)
    assert history["learning_rate"] == [pytest.approx(0.05)] * 2
