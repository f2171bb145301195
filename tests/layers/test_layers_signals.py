"""Deterministic test signals for the front-end layer tests (imported by other test modules)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.signal


def _normalise(y: np.ndarray, peak: float = 0.5) -> np.ndarray:
    return (y * (peak / max(np.max(np.abs(y)), 1e-12))).astype(np.float32)


def speech_like(sr: int, n: int, seed: int = 0) -> np.ndarray:
    """Glottal pulse train (gliding pitch) through three formant resonators, syllable envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    f0 = 120.0 + 30.0 * np.sin(2 * np.pi * 0.7 * t)
    phase = np.cumsum(f0 / sr)
    pulses = np.diff(np.floor(phase), prepend=0.0) + 0.01 * rng.standard_normal(n)
    y = pulses
    for formant, bandwidth in ((700.0, 90.0), (1200.0, 110.0), (2600.0, 170.0)):
        radius = np.exp(-np.pi * bandwidth / sr)
        theta = 2 * np.pi * min(formant, 0.45 * sr) / sr
        y = scipy.signal.lfilter([1.0 - radius], [1.0, -2 * radius * np.cos(theta), radius**2], y)
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 4.0 * t)) + 0.05
    return _normalise(y * envelope)


def music_like(sr: int, n: int, seed: int = 0) -> np.ndarray:
    """Harmonic chords with sharp onsets every 0.25 s and exponential decays."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    y = np.zeros(n)
    chords = ([220.0, 261.63, 329.63], [196.0, 246.94, 293.66], [174.61, 220.0, 261.63])
    for k, start in enumerate(np.arange(0.0, n / sr, 0.25)):
        local = t - start
        on = local >= 0
        for f in chords[k % len(chords)]:
            for h in range(1, min(30, int(0.5 * sr / f))):
                amp = rng.uniform(0.5, 1.0) / h
                y[on] += amp * np.sin(2 * np.pi * f * h * local[on]) * np.exp(-6.0 * local[on])
    return _normalise(y)


def white_noise(sr: int, n: int, seed: int = 0) -> np.ndarray:
    return _normalise(np.random.default_rng(seed).standard_normal(n))


def pink_noise(sr: int, n: int, seed: int = 0) -> np.ndarray:
    """Noise with a 1/f power spectrum (amplitude shaped by 1/sqrt(f) in the FFT domain)."""
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    f = np.arange(spectrum.size, dtype=np.float64)
    spectrum /= np.sqrt(np.maximum(f, 1.0))
    return _normalise(np.fft.irfft(spectrum, n))


def silence(sr: int, n: int, seed: int = 0) -> np.ndarray:
    return np.zeros(n, np.float32)


def clicks(sr: int, n: int, seed: int = 0) -> np.ndarray:
    """Sparse impulses of random sign and size."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n)
    where = rng.choice(n, size=max(1, n // 2000), replace=False)
    y[where] = rng.uniform(-1.0, 1.0, where.size)
    return _normalise(y)


SIGNALS = {
    "speech": speech_like,
    "music": music_like,
    "white": white_noise,
    "pink": pink_noise,
    "silence": silence,
    "clicks": clicks,
}


@functools.lru_cache(maxsize=64)
def _cached(name: str, sr: int, n: int, seed: int) -> np.ndarray:
    return SIGNALS[name](sr, n, seed)


def get_signal(name: str, sr: int, n: int, seed: int = 0) -> np.ndarray:
    """A (cached) copy of signal ``name`` with ``n`` samples at ``sr``."""
    return _cached(name, sr, n, seed).copy()


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_signals_are_deterministic_and_finite(name):
    a, b = SIGNALS[name](16000, 8000, seed=3), SIGNALS[name](16000, 8000, seed=3)
    assert a.dtype == np.float32 and a.shape == (8000,)
    np.testing.assert_array_equal(a, b)
    assert np.all(np.isfinite(a)) and np.max(np.abs(a)) <= 0.5 + 1e-6
