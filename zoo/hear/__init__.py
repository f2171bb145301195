"""The HEAR 2021 embedding API over any zoo preset: ``load_model``, ``get_timestamp_embeddings``,
``get_scene_embeddings``.

HEAR (Holistic Evaluation of Audio Representations) tools import a module and call these three
functions; ``zoo.hear`` serves every zoo preset with an embedding, and ``zoo.hear.<preset>``
(e.g. ``zoo.hear.musicnn_msd``) is the same with that preset as the default, for tools that take
only a module name (``hear-validator zoo.hear.musicnn_msd``).

What the embeddings are:

* **Timestamp embeddings** are the model's own frame-level features, at its own time resolution:
  every frame-level feature at the coarsest hop that is still <= 50 ms, concatenated per frame
  (feature maps averaged over frequency first). musicnn (and the Siamese models' musicnn
  encoder): its mid-end, the front-end and the three mid-end convolutions, 753 values every 16 ms
  (what musicnn's own ``mean_pool`` / ``max_pool`` pool); VGG: ``pool1``, 128 values every
  32 ms; sampleCNN: ``block5``, 64 values every 45.6 ms. The audio is cut into back-to-back
  patches, so the frames of consecutive patches form one regular grid; each timestamp is the
  centre of its frame, in milliseconds, and frames past the end of the audio are left out.
* **Scene embeddings** are the mean of a sound's timestamp embeddings.

Audio is ``(n_sounds, n_samples)`` float32 in [-1, 1] at ``model.sample_rate`` (a TensorFlow
tensor, a NumPy array or a PyTorch tensor); outputs are float32 TensorFlow tensors.

Example:
    >>> import zoo.hear as hear
    >>> model = hear.load_model("musicnn_msd")
    >>> emb, ts = hear.get_timestamp_embeddings(tf.zeros([2, 32000]), model)
    >>> emb.shape, ts.shape    # (2, 125, 753), (2, 125): every 16 ms
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

MAX_HOP_MS = 50.0  # HEAR's suggested largest interval between timestamps
DEFAULT_PRESET = "musicnn_msd"


@dataclass(frozen=True)
class FrameTaps:
    """The frame-level features of a model that make its timestamp embeddings.

    Args:
        names: feature names (of `zoo.extract`), concatenated in this order.
        frames_per_patch: frames of each of them per patch.
        stride: preset frames (mel frames, or samples for a waveform model) per feature frame.
        dims: values per frame after averaging over frequency, per name.
    """

    names: tuple[str, ...]
    frames_per_patch: int
    stride: int
    dims: tuple[int, ...]

    @property
    def size(self) -> int:
        return sum(self.dims)


class HearModel(tf.Module):
    """A zoo model behind the HEAR API (a ``tf.Module``, as HEAR's validator requires).

    Attributes:
        sample_rate: the rate the audio must have (Hz).
        scene_embedding_size, timestamp_embedding_size: the embedding widths.
        timestamp_hop_ms: the interval between timestamps (milliseconds).
        preset: the preset's name.
    """

    def __init__(self, model: Any, taps: FrameTaps) -> None:
        super().__init__(name="zoo_hear_model")
        config = model.zoo_preset
        prep = config.preprocessing
        self._model = model
        self.taps = taps
        self.preset = config.name
        self.sample_rate = int(prep.sample_rate)
        self.timestamp_embedding_size = int(taps.size)
        self.scene_embedding_size = int(taps.size)
        self._hop_length = int(prep.hop_length)
        self._tile_frames = taps.frames_per_patch * taps.stride
        self._patch_samples = int(prep.patch_samples)
        self.timestamp_hop_ms = 1000.0 * taps.stride * self._hop_length / self.sample_rate

    def frame_times_ms(self, n_frames: int) -> np.ndarray:
        """Centres of the first ``n_frames`` feature frames, in milliseconds (float64)."""
        stride, hop = self.taps.stride, self._hop_length
        # A mel frame t is centred on sample t * hop (the whole-file STFT is centred); a feature
        # frame pools `stride` consecutive frames.
        centre = (np.arange(n_frames) * stride + (stride - 1) / 2.0) * hop
        return 1000.0 * centre / self.sample_rate

    def sound_embeddings(self, sound: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(frames, D)`` float32 timestamp embeddings and ``(frames,)`` times of one sound."""
        from zoo.inference.tagging import embed

        tile_samples = self._tile_frames * self._hop_length
        tiles = max(1, math.ceil(sound.size / tile_samples))
        # Zeros after the end, so every tile is a whole patch (no short-clip tiling, no
        # end-aligned extra patch), and frames past the audio are dropped below.
        padded = np.zeros((tiles - 1) * tile_samples + self._patch_samples, np.float32)
        padded[: sound.size] = sound
        features = embed(padded, model=self._model, features=self.taps.names,
                         hop_seconds=tile_samples / self.sample_rate,
                         source_sr=self.sample_rate, tail="drop")
        per_frame = [_per_frame(features[name], self.taps.frames_per_patch)
                     for name in self.taps.names]
        frames = np.concatenate(per_frame, axis=-1)
        times = self.frame_times_ms(len(frames))
        duration_ms = 1000.0 * sound.size / self.sample_rate
        keep = max(1, int(np.searchsorted(times, duration_ms, side="left")))
        return frames[:keep].astype(np.float32), times[:keep]


def _per_frame(values: np.ndarray, frames_per_patch: int) -> np.ndarray:
    """``(patches, frames, ...)`` -> ``(patches * frames, D)``, averaging over frequency axes."""
    values = values[:, :frames_per_patch]
    if values.ndim > 3:  # (patches, frames, freq, channels): mean over frequency
        values = values.mean(axis=tuple(range(2, values.ndim - 1)))
    return values.reshape(-1, values.shape[-1])


def frame_taps(model: Any) -> FrameTaps:
    """The timestamp features of a zoo model (module docstring), found from its feature shapes.

    Raises:
        ValueError: the model has no frame-level feature at a hop <= 50 ms.
    """
    from zoo.inference.tagging import embed, embedding_features

    config = model.zoo_preset
    prep = config.preprocessing
    probe = embed(np.zeros(prep.patch_samples, np.float32), model=model,
                  features=[n for n in embedding_features(model) if n not in ("tags",
                                                                                "embedding")],
                  source_sr=prep.sample_rate, tail="drop")
    grid = {}
    for name in probe.names:
        shape = probe[name].shape
        if len(shape) < 3 or shape[1] < 2:  # pooled over time
            continue
        stride = prep.patch_frames // shape[1]
        hop_ms = 1000.0 * stride * prep.hop_length / prep.sample_rate
        if hop_ms <= MAX_HOP_MS:
            grid.setdefault((stride, shape[1]), []).append((name, int(shape[-1])))
    if not grid:
        raise ValueError(f"{config.name}: no frame-level feature with a hop <= {MAX_HOP_MS:g} ms "
                         f"for HEAR timestamp embeddings")
    (stride, frames), taps = max(grid.items(), key=lambda item: item[0][0])
    return FrameTaps(tuple(n for n, _ in taps), frames, stride, tuple(d for _, d in taps))


def load_model(model_file_path: str = "") -> HearModel:
    """A zoo preset for the HEAR API.

    Args:
        model_file_path: a preset name, a preset directory or an ``hf://owner/repo[@rev]``
            address; empty means ``musicnn_msd``.
    """
    import zoo

    model = zoo.load(model_file_path or DEFAULT_PRESET, include_top=True, features=True)
    return HearModel(model, frame_taps(model))


def preset_loader(preset: str) -> Callable[[str], HearModel]:
    """``load_model`` of a ``zoo.hear.<preset>`` module: `load_model` with ``preset`` as the
    default."""

    def load(model_file_path: str = "") -> HearModel:
        return load_model(model_file_path or preset)

    load.__doc__ = f"`zoo.hear.load_model`, loading {preset!r} unless told otherwise."
    return load


def sounds_of(audio: Any, model: Any, model_type: type = HearModel) -> np.ndarray:
    """HEAR's ``(n_sounds, n_samples)`` float audio as float32 numpy, checked.

    Raises:
        TypeError: ``model`` is not a ``model_type`` (from this package's ``load_model``).
        ValueError: wrong rank, an empty batch or sound, a non-float dtype, NaN or inf.
    """
    if not isinstance(model, model_type):
        raise TypeError(f"model must come from zoo.hear's load_model, got "
                        f"{type(model).__name__}")
    if hasattr(audio, "detach"):  # a PyTorch tensor
        audio = audio.detach().cpu().numpy()
    array = np.asarray(audio)
    if array.ndim != 2:
        raise ValueError(f"audio must be (n_sounds, n_samples), got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"audio is empty: shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"audio must be float32 samples in [-1, 1], got dtype {array.dtype}")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise ValueError("audio holds NaN or infinite samples")
    return array


def get_timestamp_embeddings(audio: Any, model: HearModel) -> tuple[tf.Tensor, tf.Tensor]:
    """``(embeddings (n_sounds, n_timestamps, D), timestamps (n_sounds, n_timestamps))``,
    float32, timestamps centred in milliseconds (module docstring)."""
    sounds = sounds_of(audio, model)
    pairs = [model.sound_embeddings(sound) for sound in sounds]
    embeddings = np.stack([e for e, _ in pairs])
    timestamps = np.stack([t for _, t in pairs]).astype(np.float32)
    return tf.constant(embeddings, tf.float32), tf.constant(timestamps, tf.float32)


def get_scene_embeddings(audio: Any, model: HearModel) -> tf.Tensor:
    """``(n_sounds, D)`` float32: the mean over time of each sound's timestamp embeddings."""
    sounds = sounds_of(audio, model)
    return tf.constant(np.stack([model.sound_embeddings(s)[0].mean(axis=0) for s in sounds]),
                       tf.float32)


__all__ = ["HearModel", "get_scene_embeddings", "get_timestamp_embeddings", "load_model",
           "preset_loader", "sounds_of"]
