"""Harmony and rhythm descriptors of a log-mel patch: what a timbre embedding leaves out.

Two excerpts of one piece share its key and its pulse more surely than its instrumentation;
a tagger's embedding (musicnn's) mostly describes the latter. These weightless layers read the
same compressed log-mel patch the backbone reads, so they add almost no work and stay inside
the exported graph (matmul, mean, slicing: core TensorFlow ops; any Keras backend).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from zoo.layers.filterbank import mel_frequencies


def mel_chroma_matrix(n_mels: int, fmin: float, fmax: float, htk: bool = False,
                      pitch_fmin: float = 400.0, pitch_fmax: float = 4000.0,
                      width: float = 1.0) -> np.ndarray:
    """``(n_mels, 12)`` weights folding mel bands onto pitch classes (C = 0, ..., B = 11).

    A band whose centre lies within ``width`` semitones of a pitch class contributes to it
    with a triangular weight; bands outside ``[pitch_fmin, pitch_fmax]`` contribute nothing
    (below ~400 Hz a mel band of a 512-point STFT at 16 kHz spans several semitones).

    Example:
        >>> m = mel_chroma_matrix(96, 0.0, 8000.0)
        >>> m.shape, bool(m[:10].any())
        ((96, 12), False)
    """
    if not 0.0 < pitch_fmin < pitch_fmax:
        raise ValueError(f"need 0 < pitch_fmin < pitch_fmax, got {pitch_fmin}, {pitch_fmax}")
    if width <= 0:
        raise ValueError(f"width must be > 0 semitones, got {width}")
    centres = mel_frequencies(int(n_mels) + 2, fmin=fmin, fmax=fmax, htk=htk)[1:-1]
    matrix = np.zeros((int(n_mels), 12))
    for band, hz in enumerate(centres):
        if pitch_fmin <= hz <= pitch_fmax:
            pitch = 12.0 * np.log2(hz / 440.0) + 9.0  # semitones above C, A4 = 440 Hz
            distance = np.abs((pitch - np.arange(12) + 6.0) % 12.0 - 6.0)
            matrix[band] = np.maximum(0.0, 1.0 - distance / width)
    if not matrix.any():
        raise ValueError(f"no mel band of {n_mels} between {fmin} and {fmax} Hz has its centre "
                         f"in [{pitch_fmin}, {pitch_fmax}] Hz")
    return matrix.astype(np.float32)


@keras.saving.register_keras_serializable(package="zoo")
class MelChroma(keras.layers.Layer):
    """Mean pitch-class profile of a log-mel patch: ``(batch, frames, n_mels) -> (batch, 12)``.

    Each frame's compressed mel energies are folded onto the 12 pitch classes
    (`mel_chroma_matrix`) and averaged over the patch: a coarse key / chord profile.

    Args:
        n_mels, fmin, fmax, htk: the mel scale of the input (the preset's preprocessing).
        pitch_fmin, pitch_fmax: the bands used (Hz).
        width: triangular weight half-width, semitones.

    Example:
        >>> chroma = MelChroma(n_mels=96, fmin=0.0, fmax=8000.0)
        >>> chroma(np.ones((2, 187, 96), "float32")).shape
        (2, 12)
    """

    def __init__(self, n_mels: int = 96, fmin: float = 0.0, fmax: float = 8000.0,
                 htk: bool = False, pitch_fmin: float = 400.0, pitch_fmax: float = 4000.0,
                 width: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.n_mels, self.fmin, self.fmax = int(n_mels), float(fmin), float(fmax)
        self.htk = bool(htk)
        self.pitch_fmin, self.pitch_fmax = float(pitch_fmin), float(pitch_fmax)
        self.width = float(width)
        self._matrix = mel_chroma_matrix(self.n_mels, self.fmin, self.fmax, self.htk,
                                         self.pitch_fmin, self.pitch_fmax, self.width)

    def build(self, input_shape):
        if input_shape[-1] is not None and int(input_shape[-1]) != self.n_mels:
            raise ValueError(f"MelChroma expects {self.n_mels} mel bands, got input shape "
                             f"{tuple(input_shape)}")
        super().build(input_shape)

    def call(self, logmel):
        matrix = keras.ops.cast(self._matrix, logmel.dtype)
        return keras.ops.mean(keras.ops.matmul(logmel, matrix), axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 12)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n_mels": self.n_mels, "fmin": self.fmin,
                "fmax": self.fmax, "htk": self.htk, "pitch_fmin": self.pitch_fmin,
                "pitch_fmax": self.pitch_fmax, "width": self.width}


@keras.saving.register_keras_serializable(package="zoo")
class OnsetAutocorrelation(keras.layers.Layer):
    """Periodicity of a log-mel patch's onsets: ``(batch, frames, mels) -> (batch, max_lag)``.

    The onset strength is the mean over bands of the rectified frame-to-frame increase of the
    compressed energy (as in spectral-flux onset detection); its mean is removed and its
    autocorrelation at lags ``1 ... max_lag`` frames is returned: a tempo and metre profile.
    With a 256-sample hop at 16 kHz, 94 lags span 1.5 s (40 beats per minute and faster).

    Args:
        max_lag: the longest lag, in frames (fewer than the patch's frames minus one).

    Example:
        >>> OnsetAutocorrelation(max_lag=94)(np.ones((2, 187, 96), "float32")).shape
        (2, 94)
    """

    def __init__(self, max_lag: int = 94, **kwargs):
        super().__init__(**kwargs)
        if int(max_lag) < 1:
            raise ValueError(f"max_lag must be >= 1, got {max_lag}")
        self.max_lag = int(max_lag)

    def build(self, input_shape):
        frames = input_shape[1]
        if frames is not None and int(frames) - 1 <= self.max_lag:
            raise ValueError(f"OnsetAutocorrelation(max_lag={self.max_lag}) needs more than "
                             f"{self.max_lag + 1} frames, got input shape {tuple(input_shape)}")
        super().build(input_shape)

    def call(self, logmel):
        ops = keras.ops
        flux = ops.mean(ops.relu(logmel[:, 1:, :] - logmel[:, :-1, :]), axis=-1)
        flux = flux - ops.mean(flux, axis=1, keepdims=True)
        lags = [ops.sum(flux[:, :-lag] * flux[:, lag:], axis=1)
                for lag in range(1, self.max_lag + 1)]
        return ops.stack(lags, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.max_lag)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_lag": self.max_lag}
