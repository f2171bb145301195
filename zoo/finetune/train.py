"""Training loops: the stage-1 head on cached embeddings, and end-to-end training on waveform
patches (stage-2 unfreezing of a pretrained backbone, or a model from scratch)."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from zoo.layers import SpecAugment
from zoo.models.classifier import build_head
from zoo.models.pipeline import build_frontend
from zoo.presets import PresetConfig


def class_weights(labels: np.ndarray, n_classes: int) -> dict[int, float]:
    """"Balanced" weights ``n / (k * count_c)``: every class weighs the same in the loss
    (classes without examples get weight 1).

    Example:
        >>> class_weights(np.array([0, 0, 0, 1]), 2)
        {0: 0.6666666666666666, 1: 2.0}
    """
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = counts > 0
    k = int(present.sum())
    return {c: (float(labels.size / (k * counts[c])) if present[c] else 1.0)
            for c in range(n_classes)}


def _callbacks(patience: int, log_dir: str | os.PathLike | None, monitor: str = "val_loss",
               warmup_epochs: int = 0) -> list[keras.callbacks.Callback]:
    callbacks: list[keras.callbacks.Callback] = [keras.callbacks.EarlyStopping(
        monitor=monitor, mode="max" if "accuracy" in monitor else "min", patience=patience,
        restore_best_weights=True, start_from_epoch=warmup_epochs)]
    if log_dir is not None:
        if importlib.util.find_spec("tensorboard") is None:
            # tf.summary needs the tensorboard package; training works without its logs.
            warnings.warn("tensorboard is not installed: no TensorBoard logs (pip install "
                          "tensorboard)", stacklevel=3)
        else:
            callbacks.append(keras.callbacks.TensorBoard(log_dir=os.fspath(log_dir),
                                                         write_graph=False))
    return callbacks


def train_head(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
               n_classes: int, head_units: Sequence[int] = (256,), dropout: float = 0.3,
               epochs: int = 100, learning_rate: float = 1e-3, patience: int = 10,
               batch_size: int = 64, log_dir: str | os.PathLike | None = None, seed: int = 0,
               balance: bool = True) -> tuple[keras.Model, dict[str, list[float]]]:
    """Stage 1: train the dense head on cached per-patch embeddings.

    Args:
        x_train, y_train: patch embeddings and their clips' label ids.
        x_val, y_val: validation patches (early stopping on their loss; best epoch restored).
        n_classes: classes.
        head_units, dropout: head shape (`zoo.models.classifier.build_head`).
        epochs: at most this many epochs.
        learning_rate: Adam's.
        patience: epochs without validation improvement before stopping.
        batch_size: patches per step.
        log_dir: TensorBoard logs, or None.
        seed: seeds weights and shuffling.
        balance: weight classes inversely to their frequency.

    Returns:
        ``(head, history)``.
    """
    keras.utils.set_random_seed(seed)
    head = build_head(x_train.shape[1], n_classes, head_units, dropout)
    head.compile(optimizer=keras.optimizers.Adam(learning_rate),
                 loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = head.fit(
        x_train, y_train, validation_data=(x_val, y_val), epochs=epochs, batch_size=batch_size,
        class_weight=class_weights(y_train, n_classes) if balance else None,
        callbacks=_callbacks(patience, log_dir), verbose=0, shuffle=True)
    return head, {k: [float(v) for v in vals] for k, vals in history.history.items()}


def default_spec_augment(config: PresetConfig) -> dict[str, int]:
    """Mild SpecAugment for a preset: two masks of up to 1/10 of the mel bands and frames."""
    prep = config.preprocessing
    return {"freq_mask_param": max(1, prep.n_mels // 10),
            "time_mask_param": max(1, prep.patch_frames // 10),
            "n_freq_masks": 2, "n_time_masks": 2}


def training_model(config: PresetConfig, backbone: keras.Model,
                   spec_augment: dict[str, Any] | None = None
                   ) -> tuple[keras.Model, keras.layers.Layer]:
    """Waveform patch -> front-end -> SpecAugment (training only) -> ``backbone``.

    Returns:
        ``(model, compression layer)``: the layer's trained values (LogLearn, PCEN) go into
        the saved preset (`zoo.models.pipeline.compression_weights`).
    """
    prep = config.preprocessing
    waveform = keras.Input((prep.patch_samples,), name="waveform")
    frontend = build_frontend(prep)
    x = waveform
    for layer in frontend:
        x = layer(x)
    if spec_augment:
        x = SpecAugment(**spec_augment, name="spec_augment")(x)
    return keras.Model(waveform, backbone(x), name=f"{config.name}_train"), frontend[-1]


def freeze_batch_norm(model: keras.Model) -> None:
    """Keep batch-norm statistics fixed: small fine-tuning batches would otherwise overwrite the
    pretrained statistics (a non-trainable BN layer runs in inference mode in Keras 3)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


class EpochLog(keras.callbacks.Callback):
    """One line per epoch on stderr (end-to-end epochs take minutes: show they advance)."""

    def __init__(self, label: str):
        super().__init__()
        self.label = label
        self.started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        scores = ", ".join(f"{k} {v:.4f}" for k, v in sorted((logs or {}).items())
                           if isinstance(v, (int, float)))
        print(f"zoo finetune: {self.label} epoch {epoch + 1}: {scores} "
              f"({time.perf_counter() - self.started:.0f} s)", file=sys.stderr, flush=True)


# End-to-end training selects (and stops) on validation accuracy; from scratch only after a
# warm-up: in the first epochs validation loss swings while batch-norm statistics settle, and
# stopping on it restored epoch-1 models in the first log-compression grid (docs/results.md).
END_TO_END_MONITOR = "val_accuracy"
WARMUP_EPOCHS = 5


def train_end_to_end(model: keras.Model, train_data: tuple, valid_data: tuple, n_classes: int,
                     train_labels: np.ndarray, epochs: int, learning_rate: float,
                     patience: int, log_dir: str | os.PathLike | None = None,
                     balance: bool = True, label: str = "train",
                     warmup_epochs: int = 0) -> dict[str, list[float]]:
    """Train a waveform model on `zoo.finetune.datasets.patch_dataset` batches.

    Args:
        model: from `training_model`.
        train_data, valid_data: ``(dataset, steps per epoch)`` from
            `zoo.finetune.datasets.patch_dataset`.
        n_classes: classes.
        train_labels: label ids of the training clips (for the class weights).
        epochs, learning_rate, patience: as `train_head`, but early stopping watches
            validation accuracy (best epoch restored).
        log_dir: TensorBoard logs, or None.
        balance: weight classes inversely to their frequency.
        label: names the run in the per-epoch log lines.
        warmup_epochs: epochs before early stopping starts watching (and before an epoch can
            be the restored best): `WARMUP_EPOCHS` for models trained from scratch.

    Returns:
        The Keras history dict.
    """
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    (train_ds, train_steps), (valid_ds, valid_steps) = train_data, valid_data
    history = model.fit(train_ds, validation_data=valid_ds, epochs=epochs,
                        steps_per_epoch=train_steps, validation_steps=valid_steps,
                        shuffle=False,  # the datasets shuffle themselves
                        class_weight=class_weights(train_labels, n_classes) if balance else None,
                        callbacks=[*_callbacks(patience, log_dir, END_TO_END_MONITOR,
                                                   min(warmup_epochs, max(0, epochs - 1))),
                                   EpochLog(label)],
                        verbose=0)
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}
