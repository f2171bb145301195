"""The HEAR API for the MFCC baseline of `zoo.finetune.baseline`, at 16 kHz.

Timestamp embeddings: each frame's MFCCs and their deltas (2 x 20 values, one frame every 32 ms,
frame t centred on sample 512 t). Scene embeddings: the baseline's own clip vector, the mean,
standard deviation, minimum and maximum over time of those (160 values).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from zoo.finetune.baseline import MfccExtractor, MfccSettings, deltas, summarize
from zoo.hear import sounds_of

SETTINGS = MfccSettings(sample_rate=16000)


class MfccModel(tf.Module):
    """The MFCC baseline behind the HEAR API (HEAR's attributes: ``sample_rate``,
    ``scene_embedding_size``, ``timestamp_embedding_size``)."""

    def __init__(self, settings: MfccSettings = SETTINGS) -> None:
        super().__init__(name="zoo_hear_mfcc")
        self.settings = settings
        self.extractor = MfccExtractor(settings)
        self.sample_rate = int(settings.sample_rate)
        self.timestamp_embedding_size = 2 * settings.n_mfcc
        self.scene_embedding_size = int(settings.dim)
        self.timestamp_hop_ms = 1000.0 * settings.hop_length / settings.sample_rate

    def frames(self, sound: np.ndarray) -> np.ndarray:
        mfcc = self.extractor.mfcc(sound)
        return np.concatenate([mfcc, deltas(mfcc, self.settings.delta_width)], axis=1)


def load_model(model_file_path: str = "") -> MfccModel:
    """The MFCC baseline (it has no weights: ``model_file_path`` must be empty)."""
    if model_file_path:
        raise ValueError("the MFCC baseline has no weights file")
    return MfccModel()


def get_timestamp_embeddings(audio: Any, model: MfccModel) -> tuple[tf.Tensor, tf.Tensor]:
    """``(n_sounds, frames, 40)`` MFCCs + deltas and ``(n_sounds, frames)`` centres in ms."""
    sounds = sounds_of(audio, model, MfccModel)
    frames = np.stack([model.frames(s) for s in sounds]).astype(np.float32)
    times = np.arange(frames.shape[1]) * model.timestamp_hop_ms
    return (tf.constant(frames, tf.float32),
            tf.constant(np.broadcast_to(times, frames.shape[:2]), tf.float32))


def get_scene_embeddings(audio: Any, model: MfccModel) -> tf.Tensor:
    """``(n_sounds, 160)``: the baseline's statistics vector of each sound."""
    sounds = sounds_of(audio, model, MfccModel)
    return tf.constant(np.stack([summarize(model.extractor.mfcc(s), model.settings)
                                 for s in sounds]), tf.float32)


__all__ = ["MfccModel", "get_scene_embeddings", "get_timestamp_embeddings", "load_model"]
