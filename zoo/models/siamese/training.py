"""Stage 1 of the Siamese model: train the projection head on cached, frozen-encoder embeddings.

The encoder is **frozen** (its per-excerpt embeddings are computed once and cached, as
`zoo.finetune.embeddings` does for classifiers); only the projection head trains, on batches of
P tracks x K excerpts from `TrackBatchSampler`, with a triplet or NT-Xent loss. Early stopping
watches same-track recall@1 on validation tracks (`retrieval_metrics`) and restores the best
epoch's weights. The head's layer names equal those of `build_siamese`, so its weights copy into
the full waveform model by name.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from zoo.models.siamese.losses import NTXentLoss, TripletLoss
from zoo.models.siamese.model import build_projection_head
from zoo.models.siamese.retrieval import retrieval_metrics
from zoo.models.siamese.samplers import TrackBatchSampler


@dataclass
class HeadTrainingConfig:
    """Hyper-parameters of `train_projection` (defaults: those of `siamese_musicnn_msd`: a
    linear 128-d projection and batch-hard triplets, which beat a 256 -> 128 ReLU head, NT-Xent
    and semi-hard mining on the validation tracks of music_styles).

    Attributes:
        projection_units, activation, dropout: the head (see `build_projection_head`).
        loss: ``"triplet"`` or ``"ntxent"``.
        margin, mining: of the triplet loss. temperature: of NT-Xent.
        p, k: tracks per batch and excerpts per track. min_gap: seconds between two excerpts
            of a group.
        epochs: at most this many epochs; an epoch is ``passes`` sweeps over the tracks.
        learning_rate, weight_decay: AdamW.
        patience: epochs without a better validation ``monitor`` before stopping.
        monitor: a key of `retrieval_metrics` (higher is better).
        seed: of the weights, dropout and the sampler.
    """

    projection_units: Sequence[int] = (128,)
    activation: str = "relu"
    dropout: float = 0.0
    loss: str = "triplet"
    margin: float = 0.2
    mining: str = "batch_hard"
    temperature: float = 0.1
    p: int = 16
    k: int = 4
    min_gap: float = 3.0
    epochs: int = 200
    passes: int = 4
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 20
    monitor: str = "recall@1"
    seed: int = 0


@dataclass
class HeadTrainingResult:
    """The trained head and its curves."""

    model: keras.Model
    best_epoch: int
    best_value: float
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0


def make_loss(config: HeadTrainingConfig) -> keras.losses.Loss:
    if config.loss == "triplet":
        return TripletLoss(margin=config.margin, mining=config.mining)
    if config.loss == "ntxent":
        return NTXentLoss(temperature=config.temperature)
    raise ValueError(f"loss must be 'triplet' or 'ntxent', got {config.loss!r}")


def _codes(values: Sequence) -> np.ndarray:
    return np.unique(np.asarray(values), return_inverse=True)[1].astype(np.int32)


def train_projection(x_train: np.ndarray, tracks_train: Sequence, times_train: Sequence[float],
                     x_val: np.ndarray, tracks_val: Sequence, times_val: Sequence[float],
                     config: HeadTrainingConfig | None = None, window: float = 3.0,
                     verbose: bool = False) -> HeadTrainingResult:
    """Train a projection head on cached encoder embeddings.

    Args:
        x_train, x_val: ``(n, dim)`` encoder embeddings of the excerpts.
        tracks_train, tracks_val: track of every excerpt (positives = same track).
        times_train, times_val: start (s) of every excerpt in its track.
        config: hyper-parameters.
        window: excerpts of one track closer than this (s) overlap (validation retrieval
            leaves them out of the gallery); the patch length.
        verbose: print one line per epoch.

    Returns:
        `HeadTrainingResult` with the best epoch's weights.
    """
    config = config or HeadTrainingConfig()
    keras.utils.set_random_seed(config.seed)
    started = time.perf_counter()
    x_train = np.asarray(x_train, np.float32)
    x_val = np.asarray(x_val, np.float32)
    y_train = _codes(tracks_train)
    model = build_projection_head(x_train.shape[1], config.projection_units, config.activation,
                                  config.dropout)
    model.compile(optimizer=keras.optimizers.AdamW(config.learning_rate,
                                                   weight_decay=config.weight_decay),
                  loss=make_loss(config))
    sampler = TrackBatchSampler(y_train, times_train, config.p, config.k, config.min_gap,
                                seed=config.seed)

    def validate() -> dict[str, float]:
        z = np.asarray(model.predict(x_val, batch_size=1024, verbose=0))
        return retrieval_metrics(z, tracks_val, times=times_val, window=window)

    history: dict[str, list[float]] = {"loss": [], f"val_{config.monitor}": []}
    best = validate()[config.monitor]
    best_epoch, best_weights, waited = 0, model.get_weights(), 0
    history[f"val_{config.monitor}"].append(best)
    history["loss"].append(float("nan"))
    for epoch in range(1, config.epochs + 1):
        losses = []
        for _ in range(config.passes):
            for idx in sampler.epoch():
                losses.append(float(model.train_on_batch(x_train[idx], y_train[idx])))
        value = validate()[config.monitor]
        history["loss"].append(float(np.mean(losses)))
        history[f"val_{config.monitor}"].append(value)
        if verbose:
            print(f"epoch {epoch}: loss {np.mean(losses):.4f} val {config.monitor} {value:.4f}")
        if value > best:
            best, best_epoch, best_weights, waited = value, epoch, model.get_weights(), 0
        else:
            waited += 1
            if waited >= config.patience:
                break
    model.set_weights(best_weights)
    return HeadTrainingResult(model, best_epoch, best, history, time.perf_counter() - started)


def head_architecture_config(config: HeadTrainingConfig, encoder: dict[str, Any]
                             ) -> dict[str, Any]:
    """The ``architecture_config`` of a ``siamese`` preset with this head on ``encoder``."""
    return {"encoder": encoder, "projection_units": [int(u) for u in config.projection_units],
            "activation": config.activation, "dropout": float(config.dropout)}
