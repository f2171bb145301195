"""Mel scales and mel filterbanks in plain numpy (float64 maths).

Two mel scales are provided: Slaney's (Auditory Toolbox: linear below 1 kHz, logarithmic above)
and HTK's (``2595 * log10(1 + f / 700)``). The filterbank is a set of triangles whose corners sit
on mel-spaced frequencies, optionally area-normalised as Slaney did, and matches
``librosa.filters.mel`` for the same arguments.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

# Slaney scale: 200/3 Hz per mel up to 1 kHz, then a constant ratio of 6.4 per 27 mels.
_F_SP = 200.0 / 3.0
_BREAK_HZ = 1000.0
_BREAK_MEL = _BREAK_HZ / _F_SP
_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(frequencies: ArrayLike, htk: bool = False) -> np.ndarray:
    """Convert frequencies in Hz to mels.

    Args:
        frequencies: frequencies in Hz (scalar or array).
        htk: use the HTK formula instead of Slaney's.

    Returns:
        float64 array of mels, same shape as ``frequencies``.

    Example:
        >>> round(float(hz_to_mel(1000.0)), 6)
        15.0
    """
    f = np.asarray(frequencies, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    linear = f / _F_SP
    # np.maximum keeps log() defined on the linear branch; np.where discards that branch anyway.
    log = _BREAK_MEL + np.log(np.maximum(f, _BREAK_HZ) / _BREAK_HZ) / _LOG_STEP
    return np.where(f >= _BREAK_HZ, log, linear)


def mel_to_hz(mels: ArrayLike, htk: bool = False) -> np.ndarray:
    """Convert mels to frequencies in Hz (inverse of :func:`hz_to_mel`).

    Args:
        mels: mel values (scalar or array).
        htk: use the HTK formula instead of Slaney's.

    Returns:
        float64 array of frequencies in Hz, same shape as ``mels``.

    Example:
        >>> round(float(mel_to_hz(15.0)), 6)
        1000.0
    """
    m = np.asarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    linear = m * _F_SP
    log = _BREAK_HZ * np.exp(_LOG_STEP * (np.maximum(m, _BREAK_MEL) - _BREAK_MEL))
    return np.where(m >= _BREAK_MEL, log, linear)


def mel_frequencies(
    n_mels: int = 128, fmin: float = 0.0, fmax: float = 11025.0, htk: bool = False
) -> np.ndarray:
    """``n_mels`` frequencies (Hz) evenly spaced on the mel scale from ``fmin`` to ``fmax``.

    Args:
        n_mels: number of frequencies.
        fmin: lowest frequency (Hz).
        fmax: highest frequency (Hz).
        htk: use the HTK mel scale instead of Slaney's.

    Returns:
        float64 array of shape ``(n_mels,)``.

    Example:
        >>> mel_frequencies(3, fmin=0.0, fmax=2000.0, htk=True).round(1).tolist()
        [0.0, 674.8, 2000.0]
    """
    lo, hi = hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk)
    return mel_to_hz(np.linspace(lo, hi, int(n_mels)), htk=htk)


def mel_filterbank(
    sr: float,
    n_fft: int,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | float | None = "slaney",
    dtype: np.dtype | type = np.float32,
) -> np.ndarray:
    """Triangular mel filterbank mapping ``n_fft // 2 + 1`` FFT bins to ``n_mels`` bands.

    Computed in float64 and cast to ``dtype`` at the end. The layout is librosa's:
    ``(n_mels, n_fft // 2 + 1)``, so ``mel = filterbank @ power_spectrum``.

    Args:
        sr: sample rate (Hz).
        n_fft: FFT size.
        n_mels: number of mel bands.
        fmin: lowest band edge (Hz).
        fmax: highest band edge (Hz); ``None`` means ``sr / 2``.
        htk: use the HTK mel scale instead of Slaney's.
        norm: ``"slaney"`` divides each triangle by its width in Hz over 2 (equal area);
            a number ``p`` scales each filter to unit ``p``-norm; ``None`` leaves peaks at 1.
        dtype: dtype of the returned array.

    Returns:
        array of shape ``(n_mels, n_fft // 2 + 1)``.

    Example:
        >>> fb = mel_filterbank(sr=16000, n_fft=512, n_mels=96, fmax=8000.0)
        >>> fb.shape
        (96, 257)
    """
    if fmax is None:
        fmax = float(sr) / 2.0
    if n_mels < 1 or n_fft < 1:
        raise ValueError(f"n_mels and n_fft must be positive, got {n_mels} and {n_fft}")
    if not 0.0 <= fmin < fmax:
        raise ValueError(f"need 0 <= fmin < fmax, got fmin={fmin}, fmax={fmax}")
    fft_hz = np.arange(n_fft // 2 + 1, dtype=np.float64) * (float(sr) / n_fft)
    # n_mels + 2 corners: band i rises from corner i to i+1 and falls to i+2.
    corners = mel_frequencies(n_mels + 2, fmin=fmin, fmax=fmax, htk=htk)
    left, centre, right = corners[:-2, None], corners[1:-1, None], corners[2:, None]
    rising = (fft_hz - left) / (centre - left)
    falling = (right - fft_hz) / (right - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    if norm == "slaney":
        weights *= 2.0 / (right - left)
    elif norm is not None and not isinstance(norm, str):
        sizes = np.linalg.norm(weights, ord=float(norm), axis=1, keepdims=True)
        weights /= np.where(sizes > 0, sizes, 1.0)
    elif norm is not None:
        raise ValueError(f"norm must be 'slaney', a number or None, got {norm!r}")
    return weights.astype(dtype)
