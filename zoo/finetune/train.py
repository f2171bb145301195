"""Training loops: the stage-1 head on cached embeddings, and end-to-end training on waveform
patches (stage-2 unfreezing of a pretrained backbone, or a model from scratch)."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from zoo.layers import SpecAugment
from zoo.models.classifier import build_head
from zoo.models.pipeline import build_frontend
from zoo.presets import PresetConfig

if TYPE_CHECKING:
    import tensorflow as tf


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
               balance: bool = True, strategy: tf.distribute.Strategy | None = None
               ) -> tuple[keras.Model, dict[str, list[float]]]:
    """Stage 1: train the dense head on cached per-patch embeddings.

    Args:
        x_train, y_train: patch embeddings and their clips' label ids.
        x_val, y_val: validation patches (early stopping on their loss; best epoch restored).
        n_classes: classes.
        head_units, dropout: head shape (`zoo.models.classifier.build_head`).
        epochs: at most this many epochs.
        learning_rate: Adam's.
        patience: epochs without validation improvement before stopping.
        batch_size: patches per step (with a strategy: the global batch, split across its
            replicas).
        log_dir: TensorBoard logs, or None.
        seed: seeds weights and shuffling.
        balance: weight classes inversely to their frequency.
        strategy: a ``tf.distribute`` strategy (`zoo.finetune.distribute.make_strategy`; also
            ``tf.distribute.get_strategy()``, one device) to build, compile and train the head
            under; the patches then come as `array_dataset` batches, whose order depends on
            ``seed`` only, so runs on different replica counts see the same batches. None:
            Keras' own batching and shuffling of the arrays.

    Returns:
        ``(head, history)``.

    Example:
        >>> head, history = train_head(x, y, xv, yv, 10, batch_size=64,
        ...                            strategy=make_strategy("mirrored"))
    """
    keras.utils.set_random_seed(seed)
    weights = class_weights(y_train, n_classes) if balance else None
    if strategy is None:
        head = build_head(x_train.shape[1], n_classes, head_units, dropout)
        head.compile(optimizer=keras.optimizers.Adam(learning_rate),
                     loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        history = head.fit(
            x_train, y_train, validation_data=(x_val, y_val), epochs=epochs,
            batch_size=batch_size, class_weight=weights,
            callbacks=_callbacks(patience, log_dir), verbose=0, shuffle=True)
        return head, {k: [float(v) for v in vals] for k, vals in history.history.items()}
    with strategy.scope():
        head = build_head(x_train.shape[1], n_classes, head_units, dropout)
        head.compile(optimizer=keras.optimizers.Adam(learning_rate),
                     loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    train_ds, steps = array_dataset(x_train, y_train, batch_size, shuffle=True, seed=seed)
    valid_ds, valid_steps = array_dataset(x_val, y_val, batch_size, shuffle=False)
    history = _fit_distributed(head, strategy, train_ds, steps, valid_ds, valid_steps, epochs,
                               weights, _callbacks(patience, log_dir))
    return head, history


def array_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool = True,
                  seed: int = 0) -> tuple[tf.data.Dataset, int]:
    """Batches of ``(x, y)`` rows as a ``tf.data.Dataset``, for training under a strategy.

    Shuffled, the dataset repeats forever, one permutation per epoch drawn statelessly from
    ``(seed, epoch)``: every iterator over it yields the same batches (Keras opens an extra
    iterator under a distribution strategy before training, which would shift a stateful
    shuffle by one epoch), and an epoch's last batch may be partial, as in Keras' own
    batching. Unshuffled, it is one pass in order.

    Args:
        x, y: rows and their labels.
        batch_size: rows per (global) batch.
        shuffle: a new order every epoch.
        seed: the shuffles' seed.

    Returns:
        ``(dataset, batches per epoch)``.

    Example:
        >>> ds, steps = array_dataset(np.zeros((10, 4)), np.zeros(10, int), 4)
        >>> steps
        3
    """
    import tensorflow as tf

    n = len(x)
    steps = max(1, -(-n // batch_size))
    xs, ys = tf.constant(x), tf.constant(y)
    if not shuffle:
        ds = tf.data.Dataset.from_tensor_slices((xs, ys)).batch(batch_size)
    else:
        def epoch(e):
            order = tf.random.experimental.stateless_shuffle(
                tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), e]))
            return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

        ds = tf.data.Dataset.counter().flat_map(epoch).map(
            lambda i: (tf.gather(xs, i), tf.gather(ys, i)))
    return _data_sharded(ds).prefetch(2), steps


def _data_sharded(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Multi-worker: shard by element (every worker runs the whole pipeline and keeps its
    share), the only policy for in-memory and generator datasets; saves TF's warning."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def _fit_distributed(model: keras.Model, strategy: tf.distribute.Strategy,
                     train_ds: tf.data.Dataset, steps: int, valid_ds: tf.data.Dataset,
                     valid_steps: int, epochs: int, weights: dict[int, float] | None,
                     callbacks: list[keras.callbacks.Callback]) -> dict[str, list[float]]:
    """``model.fit`` on global batches under ``strategy``.

    Under a strategy, Keras 3 (TensorFlow backend) builds the model's training state
    (optimizer slots, metrics) from a first batch that it pulls from the distributed dataset
    and averages across replicas. That opens an extra iterator (a dataset that reshuffles per
    iterator then starts one pass late), fails when that batch does not split evenly across
    the replicas, and fails across workers (``MultiWorkerMirroredStrategy``: "Attempt to
    convert a value (PerReplica...)"). So the state is built here from the dataset's element
    spec, under the strategy's scope, and fit runs with the strategy taken from that scope
    (`keras.Model.distribute_strategy` falls back to it), which skips Keras' own build.
    """
    variables = [getattr(v, "value", v) for v in model.weights]  # Keras -> tf.Variable
    if variables and not strategy.extended.variable_created_in_scope(variables[0]):
        raise ValueError(f"the model {model.name!r} was not built under the strategy's scope "
                         "(build it inside `with strategy.scope():`)")
    own_build = hasattr(model, "_symbolic_build") and hasattr(model, "_distribute_strategy")
    # Across workers Keras 3 also fails to average the step's scalar logs ("Invalid reduction
    # dimension 0 for input with 0 dimensions", tensorflow/tensorflow#72388): give it vectors.
    multi_worker = getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)()
    with strategy.scope():
        if own_build:
            spec = train_ds.element_spec
            model._symbolic_build(data_batch=tuple(
                keras.KerasTensor(tuple(s.shape), s.dtype.name) for s in spec))
            saved, model._distribute_strategy = model._distribute_strategy, None
        if multi_worker:
            model.train_step = _vector_logs(model.train_step)
            model.test_step = _vector_logs(model.test_step)
        try:
            history = model.fit(train_ds, validation_data=valid_ds, epochs=epochs,
                                steps_per_epoch=steps, validation_steps=valid_steps,
                                shuffle=False, class_weight=weights, callbacks=callbacks,
                                verbose=0)
        finally:
            if own_build:
                model._distribute_strategy = saved
            if multi_worker:  # back to the class's methods
                del model.train_step, model.test_step
                model.train_function = model.test_function = None
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}


def _vector_logs(step):
    """``step`` with its logs as shape-(1,) tensors (each worker's value; Keras averages them
    over the workers)."""
    import tensorflow as tf

    def vector_step(data):
        return {k: tf.reshape(v, [1]) for k, v in step(data).items()}

    return vector_step


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
        scores = ", ".join(f"{k} {v:.4g}" for k, v in sorted((logs or {}).items())
                           if isinstance(v, (int, float)))
        print(f"zoo finetune: {self.label} epoch {epoch + 1}: {scores} "
              f"({time.perf_counter() - self.started:.0f} s)", file=sys.stderr, flush=True)


# End-to-end training selects (and stops) on validation accuracy; from scratch only after a
# warm-up: in the first epochs validation loss swings while batch-norm statistics settle, and
# stopping on it restored epoch-1 models in the first log-compression grid (docs/results.md).
END_TO_END_MONITOR = "val_accuracy"
WARMUP_EPOCHS = 5
# Validation accuracy of a model trained at a constant rate swings by several points from
# epoch to epoch (0.83-0.90 on 35-word speech), so the restored "best" epoch is partly luck:
# the rate halves whenever it stalls, a third of the early-stopping patience.
LR_FACTOR = 0.5
LR_MIN_FRACTION = 1 / 64


def _plateau_schedule(patience: int, learning_rate: float) -> keras.callbacks.Callback:
    return keras.callbacks.ReduceLROnPlateau(
        monitor=END_TO_END_MONITOR, mode="max", factor=LR_FACTOR,
        patience=max(1, patience // 3), min_lr=learning_rate * LR_MIN_FRACTION, verbose=0)


def train_end_to_end(model: keras.Model, train_data: tuple, valid_data: tuple, n_classes: int,
                     train_labels: np.ndarray, epochs: int, learning_rate: float,
                     patience: int, log_dir: str | os.PathLike | None = None,
                     balance: bool = True, label: str = "train",
                     warmup_epochs: int = 0, strategy: tf.distribute.Strategy | None = None
                     ) -> dict[str, list[float]]:
    """Train a waveform model on `zoo.finetune.datasets.patch_dataset` batches.

    Args:
        model: from `training_model`.
        train_data, valid_data: ``(dataset, steps per epoch)`` from
            `zoo.finetune.datasets.patch_dataset`.
        n_classes: classes.
        train_labels: label ids of the training clips (for the class weights).
        epochs, learning_rate, patience: as `train_head`, but early stopping watches
            validation accuracy (best epoch restored), and the rate halves after a third of
            ``patience`` epochs without improvement (down to 1/64 of ``learning_rate``).
        log_dir: TensorBoard logs, or None.
        balance: weight classes inversely to their frequency.
        label: names the run in the per-epoch log lines.
        warmup_epochs: epochs before early stopping starts watching (and before an epoch can
            be the restored best): `WARMUP_EPOCHS` for models trained from scratch.
        strategy: a ``tf.distribute`` strategy (`zoo.finetune.distribute.make_strategy`) to
            compile and train under; ``model`` must have been built under its scope. The
            datasets' batches are global batches, split across the replicas. None: no
            strategy.

    Returns:
        The Keras history dict.

    Example:
        >>> strategy = make_strategy("mirrored")
        >>> with strategy.scope():
        ...     model, _ = training_model(config, build_backbone(config))
        >>> history = train_end_to_end(model, train, valid, 10, labels, 30, 1e-3, 5,
        ...                            strategy=strategy)
    """
    (train_ds, train_steps), (valid_ds, valid_steps) = train_data, valid_data
    callbacks = [*_callbacks(patience, log_dir, END_TO_END_MONITOR,
                             min(warmup_epochs, max(0, epochs - 1))),
                 _plateau_schedule(patience, learning_rate), EpochLog(label)]
    weights = class_weights(train_labels, n_classes) if balance else None
    if strategy is not None:
        with strategy.scope():
            model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return _fit_distributed(model, strategy, _data_sharded(train_ds), train_steps,
                                _data_sharded(valid_ds), valid_steps, epochs, weights,
                                callbacks)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(train_ds, validation_data=valid_ds, epochs=epochs,
                        steps_per_epoch=train_steps, validation_steps=valid_steps,
                        shuffle=False,  # the datasets shuffle themselves
                        class_weight=weights, callbacks=callbacks, verbose=0)
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}
