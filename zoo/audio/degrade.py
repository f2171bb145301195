"""Waveform degradations for augmentation and robustness tests: gain, noise, EQ, speed, MP3.

Every function takes and returns float32 numpy signals; randomness comes only from a
``numpy.random.Generator`` passed in, so a seed reproduces the result exactly. Outputs are finite
and clipped to [-1, 1] (the range `zoo.audio.load` returns); a non-finite input raises
``ValueError``.

- `gain`: scale by a level in dB.
- `add_noise`: white or pink Gaussian noise at an exact signal-to-noise ratio.
- `equalize`: low-shelf, high-shelf and peaking bands (RBJ "Audio EQ Cookbook" biquads), applied
  as their magnitude response in the FFT domain (zero phase; numpy only).
- `speed`: resampling with soxr, which changes tempo and pitch together (a record played fast).
- `mp3_roundtrip`: encode to MP3 in memory with libsndfile (LAME), decode, re-align.
- `random_chain` (with `sample_chain` / `apply_chain`): a random subset of the above.

No dependency beyond zoo's own (numpy, soundfile, soxr).

Example:
    >>> rng = np.random.default_rng(0)
    >>> y = mp3_roundtrip(add_noise(gain(x, -6.0), 30.0, rng), 16000, bitrate_kbps=32)
    >>> z = random_chain(x, 16000, np.random.default_rng(1))
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "MP3_BITRATES",
    "Band",
    "ChainStep",
    "add_noise",
    "apply_chain",
    "equalize",
    "gain",
    "mp3_roundtrip",
    "random_bands",
    "random_chain",
    "sample_chain",
    "speed",
]

NOISE_COLORS = ("white", "pink")
BAND_KINDS = ("lowshelf", "highshelf", "peaking")
MP3_BITRATES = {  # (min, max) kbps of the MPEG version libsndfile picks for the sample rate
    "mpeg1": (32, 320),  # sample rate >= 32 kHz
    "mpeg2": (8, 160),  # 16 kHz <= sample rate < 32 kHz
    "mpeg2.5": (8, 64),  # below 16 kHz
}
_LAME_DELAY = 1105  # encoder (576) + decoder (529) delay when the decoder does not remove it


def _signal(x: Any, name: str = "x") -> np.ndarray:
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name} must be a float waveform, got dtype {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} has NaN or infinite samples")
    return x


def _mono(x: Any) -> np.ndarray:
    x = _signal(x)
    if x.ndim != 1:
        raise ValueError(f"expected a mono waveform of shape (samples,), got shape {x.shape}")
    return x


def _clip(x: np.ndarray) -> np.ndarray:
    return np.clip(np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0).astype(
        np.float32, copy=False)


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0


def gain(x: np.ndarray, db: float) -> np.ndarray:
    """Scale a signal by ``db`` decibels (amplitude factor ``10 ** (db / 20)``), clipped.

    Args:
        x: float waveform, any shape.
        db: level change in dB (negative: quieter).

    Returns:
        float32 ``x * 10 ** (db / 20)``, clipped to [-1, 1] (only a boost can clip).

    Example:
        >>> quieter = gain(x, -6.0)      # about half the amplitude
    """
    x = _signal(x)
    if not np.isfinite(db):
        raise ValueError(f"db must be finite, got {db}")
    return _clip(x * np.float32(10.0 ** (float(db) / 20.0)))


def _colored_noise(n: int, color: str, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(n)
    if color == "white" or n < 4:
        return white
    # Pink: 1/f power, i.e. amplitude 1/sqrt(f) on the spectrum of white noise (DC gets f_1's).
    spectrum = np.fft.rfft(white)
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spectrum / np.sqrt(f), n)


def add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator,
              color: str = "white") -> np.ndarray:
    """Add Gaussian noise at a signal-to-noise ratio, measured over the whole signal.

    The noise is scaled so that ``10 log10(mean(x^2) / mean(noise^2))`` equals ``snr_db``
    exactly before clipping to [-1, 1]. A silent input (all zeros) has no defined SNR and is
    returned unchanged.

    Args:
        x: float waveform, any shape.
        snr_db: signal-to-noise ratio in dB (e.g. 30).
        rng: source of the noise (``np.random.default_rng(seed)``).
        color: ``"white"`` (flat spectrum) or ``"pink"`` (power falling as 1/f).

    Returns:
        float32 ``x + noise``, clipped to [-1, 1].

    Example:
        >>> noisy = add_noise(x, 30.0, np.random.default_rng(0))
        >>> hiss = add_noise(x, 20.0, np.random.default_rng(0), color="pink")
    """
    x = _signal(x)
    if color not in NOISE_COLORS:
        raise ValueError(f"color must be one of {NOISE_COLORS}, got {color!r}")
    if not np.isfinite(snr_db):
        raise ValueError(f"snr_db must be finite, got {snr_db}")
    signal_power = _power(x)
    if signal_power == 0.0:
        return x.copy()
    noise = _colored_noise(x.size, color, rng).reshape(x.shape)
    noise *= np.sqrt(signal_power / 10.0 ** (float(snr_db) / 10.0) / max(_power(noise), 1e-30))
    return _clip(x + noise.astype(np.float32))


@dataclass(frozen=True)
class Band:
    """One equaliser band (an RBJ cookbook biquad).

    Attributes:
        kind: ``"lowshelf"``, ``"highshelf"`` or ``"peaking"``.
        freq: centre (peaking) or corner (shelves) frequency in Hz, below Nyquist.
        gain_db: boost (> 0) or cut (< 0) in dB: at ``freq`` for a peak, the plateau for a
            shelf.
        q: quality factor (peaking: bandwidth; shelves: 0.707 gives the steepest shelf without
            overshoot).
    """

    kind: str
    freq: float
    gain_db: float
    q: float = 0.707

    def response(self, freqs: np.ndarray, sr: int) -> np.ndarray:
        """Magnitude response ``|H|`` at ``freqs`` (Hz) for sample rate ``sr``."""
        if self.kind not in BAND_KINDS:
            raise ValueError(f"band kind must be one of {BAND_KINDS}, got {self.kind!r}")
        if not 0 < self.freq < sr / 2:
            raise ValueError(f"band frequency must be in (0, {sr / 2:g}) Hz, got {self.freq}")
        if not self.q > 0:
            raise ValueError(f"band q must be > 0, got {self.q}")
        a = 10.0 ** (self.gain_db / 40.0)
        w0 = 2.0 * np.pi * self.freq / sr
        cos, alpha = np.cos(w0), np.sin(w0) / (2.0 * self.q)
        if self.kind == "peaking":
            b = [1 + alpha * a, -2 * cos, 1 - alpha * a]
            den = [1 + alpha / a, -2 * cos, 1 - alpha / a]
        else:
            s = 2.0 * np.sqrt(a) * alpha
            sign = 1.0 if self.kind == "lowshelf" else -1.0
            b = [a * ((a + 1) - sign * (a - 1) * cos + s),
                 sign * 2 * a * ((a - 1) - sign * (a + 1) * cos),
                 a * ((a + 1) - sign * (a - 1) * cos - s)]
            den = [(a + 1) + sign * (a - 1) * cos + s,
                   -sign * 2 * ((a - 1) + sign * (a + 1) * cos),
                   (a + 1) + sign * (a - 1) * cos - s]
        z = np.exp(-1j * 2.0 * np.pi * np.asarray(freqs, np.float64) / sr)
        num = b[0] + b[1] * z + b[2] * z * z
        return np.abs(num / (den[0] + den[1] * z + den[2] * z * z))


def equalize(x: np.ndarray, sr: int, bands: Sequence[Band | tuple]) -> np.ndarray:
    """Apply equaliser bands (shelves and peaks) to a mono signal.

    Each band's biquad *magnitude* response multiplies the signal's spectrum (zero phase; the
    signal is zero-padded by up to 0.25 s so that the filters' ringing does not wrap around).

    Args:
        x: mono float waveform ``(samples,)``.
        sr: its sample rate in Hz.
        bands: `Band` objects or ``(kind, freq, gain_db[, q])`` tuples.

    Returns:
        float32, same length, clipped to [-1, 1].

    Example:
        >>> brighter = equalize(x, 16000, [("lowshelf", 200.0, -4.0),
        ...                                ("peaking", 2500.0, 3.0, 1.0)])
    """
    x = _mono(x)
    bands = [b if isinstance(b, Band) else Band(*b) for b in bands]
    if not bands or not len(x):
        return x.copy()
    n = len(x) + min(len(x), int(sr) // 4)
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    response = np.ones(len(freqs))
    for band in bands:
        response *= band.response(freqs, sr)
    y = np.fft.irfft(np.fft.rfft(x.astype(np.float64), n) * response, n)[: len(x)]
    return _clip(y)


def random_bands(rng: np.random.Generator, sr: int, n_bands: tuple[int, int] = (1, 3),
                 max_db: float = 6.0) -> list[Band]:
    """A random equaliser: 1 to 3 bands (low shelf 60-400 Hz, high shelf 2-6 kHz below
    Nyquist, peaks 150 Hz-5 kHz with Q 0.5-2), each within +-``max_db``.

    Example:
        >>> equalize(x, 16000, random_bands(np.random.default_rng(0), 16000))
    """
    top = 0.45 * sr
    out = []
    for _ in range(int(rng.integers(n_bands[0], n_bands[1] + 1))):
        kind = BAND_KINDS[int(rng.integers(len(BAND_KINDS)))]
        db = float(rng.uniform(-max_db, max_db))
        if kind == "lowshelf":
            out.append(Band(kind, float(np.exp(rng.uniform(np.log(60), np.log(400)))), db))
        elif kind == "highshelf":
            hi = min(6000.0, top)
            out.append(Band(kind, float(np.exp(rng.uniform(np.log(min(2000.0, hi / 2)),
                                                           np.log(hi)))), db))
        else:
            hi = min(5000.0, top)
            out.append(Band(kind, float(np.exp(rng.uniform(np.log(150), np.log(hi)))), db,
                            float(rng.uniform(0.5, 2.0))))
    return out


def speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play a signal ``factor`` times faster: tempo and pitch change together.

    The signal is resampled by ``1 / factor`` (soxr, HQ) and read at the original rate, so the
    output has ``round(len(x) / factor)`` samples and every frequency is multiplied by
    ``factor`` (1.04: 4 % faster and ~0.68 semitone higher).

    Args:
        x: mono float waveform ``(samples,)``.
        factor: speed ratio, in (0.5, 2) (augmentation: e.g. 0.96 to 1.04).

    Returns:
        float32, ``round(len(x) / factor)`` samples, clipped to [-1, 1].

    Example:
        >>> slower = speed(x, 0.97)    # 3 % slower and lower; len(slower) ~ len(x) / 0.97
    """
    import soxr

    x = _mono(x)
    factor = float(factor)
    if not 0.5 < factor < 2.0:
        raise ValueError(f"speed factor must be in (0.5, 2), got {factor}")
    if factor == 1.0 or not len(x):
        return x.copy()
    y = soxr.resample(x, 1000.0 * factor, 1000.0, quality="HQ")
    target = int(round(len(x) / factor))
    if len(y) < target:
        y = np.concatenate([y, np.zeros(target - len(y), np.float32)])
    return _clip(y[:target])


def mp3_bitrate_range(sr: int) -> tuple[int, int]:
    """(min, max) constant bitrate in kbps that libsndfile's MP3 encoder offers at ``sr``."""
    if sr >= 32000:
        return MP3_BITRATES["mpeg1"]
    return MP3_BITRATES["mpeg2"] if sr >= 16000 else MP3_BITRATES["mpeg2.5"]


def _best_lag(x: np.ndarray, y: np.ndarray, max_lag: int) -> int:
    """The delay ``d`` in ``[0, max_lag]`` that best aligns ``y[d:]`` with ``x``."""
    if max_lag <= 0:
        return 0
    n = len(x) + len(y)
    corr = np.fft.irfft(np.fft.rfft(y.astype(np.float64), n)
                        * np.conj(np.fft.rfft(x.astype(np.float64), n)), n)[: max_lag + 1]
    if not np.any(corr > 0):
        return min(_LAME_DELAY, max_lag)
    return int(np.argmax(corr))


def mp3_roundtrip(x: np.ndarray, sr: int, bitrate_kbps: int = 32) -> np.ndarray:
    """Encode a mono signal to MP3 at a constant bitrate in memory, decode it, re-align it.

    libsndfile (LAME) picks MPEG-1 at >= 32 kHz (32-320 kbps), MPEG-2 at 16-24 kHz (8-160 kbps;
    16 kHz audio at 32 kbps sounds like a ~64 kbps file at 32 kHz: band-limited, with
    audible artefacts) and MPEG-2.5 below. LAME rounds to its nearest standard bitrate (MPEG-2:
    8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160). The file's real bitrate is
    within ~1 % of the request. At some low bitrates the decoder keeps the codec delay (1105
    samples); it is found by cross-correlation and removed, so the output lines up with the
    input sample for sample.

    Args:
        x: mono float waveform ``(samples,)``.
        sr: its sample rate in Hz (8 to 48 kHz; the MP3 is encoded at this rate).
        bitrate_kbps: constant bitrate; clamped to the range `mp3_bitrate_range` gives.

    Returns:
        float32, ``len(x)`` samples, clipped to [-1, 1].

    Example:
        >>> lossy = mp3_roundtrip(x, 16000, bitrate_kbps=32)
    """
    import soundfile as sf

    x = _mono(x)
    sr = int(sr)
    if not len(x):
        return x.copy()
    low, high = mp3_bitrate_range(sr)
    kbps = min(max(float(bitrate_kbps), low), high)
    # libsndfile: bitrate = high - level * (high - low); +0.5 so that truncation cannot step
    # one standard bitrate down. Level 1.0 is refused by the encoder.
    level = min(max((high - kbps - 0.5) / (high - low), 0.0), 0.999)
    buffer = io.BytesIO()
    sf.write(buffer, _clip(x), sr, format="MP3", subtype="MPEG_LAYER_III",
             compression_level=level, bitrate_mode="CONSTANT")
    buffer.seek(0)
    y, _ = sf.read(buffer, dtype="float32")
    if y.ndim > 1:
        y = y.mean(axis=1)
    lag = _best_lag(x, y, min(len(y) - len(x), 2 * _LAME_DELAY))
    y = y[lag: lag + len(x)]
    if len(y) < len(x):
        y = np.concatenate([y, np.zeros(len(x) - len(y), np.float32)])
    return _clip(y)


@dataclass(frozen=True)
class ChainStep:
    """One degradation of a chain: ``name`` (a function of this module) and its arguments."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


_CHAIN_ORDER = ("speed", "equalize", "gain", "add_noise", "mp3_roundtrip")


def sample_chain(rng: np.random.Generator, sr: int = 16000, p: float = 0.5,
                 speed_range: tuple[float, float] = (0.96, 1.04),
                 gain_db: tuple[float, float] = (-10.0, 2.0),
                 snr_db: tuple[float, float] = (20.0, 40.0),
                 mp3_kbps: Sequence[int] = (24, 32, 48, 64),
                 eq_db: float = 6.0) -> list[ChainStep]:
    """Draw a random degradation chain: each step is kept with probability ``p``, in the order
    speed, EQ, gain, noise (white or pink), MP3 (the codec last, as in real pipelines).

    Args:
        rng: the random generator.
        sr: sample rate the chain will be applied at (bounds the EQ frequencies).
        p: probability of each step.
        speed_range: uniform range of the `speed` factor.
        gain_db: uniform range of `gain`.
        snr_db: uniform range of `add_noise`'s SNR.
        mp3_kbps: bitrates `mp3_roundtrip` picks from.
        eq_db: largest boost or cut of an EQ band.

    Returns:
        The steps (possibly none); `apply_chain` runs them.

    Example:
        >>> steps = sample_chain(np.random.default_rng(3))
        >>> [s.name for s in steps]
        ['speed', 'add_noise', 'mp3_roundtrip']
    """
    steps = []
    for name in _CHAIN_ORDER:
        if rng.random() >= p:
            continue
        if name == "speed":
            params: dict[str, Any] = {"factor": float(rng.uniform(*speed_range))}
        elif name == "equalize":
            params = {"bands": random_bands(rng, sr, max_db=eq_db)}
        elif name == "gain":
            params = {"db": float(rng.uniform(*gain_db))}
        elif name == "add_noise":
            params = {"snr_db": float(rng.uniform(*snr_db)),
                      "color": NOISE_COLORS[int(rng.integers(len(NOISE_COLORS)))]}
        else:
            params = {"bitrate_kbps": int(mp3_kbps[int(rng.integers(len(mp3_kbps)))])}
        steps.append(ChainStep(name, params))
    return steps


def apply_chain(x: np.ndarray, sr: int, steps: Sequence[ChainStep],
                rng: np.random.Generator) -> np.ndarray:
    """Run degradation steps from `sample_chain` in order (``rng`` draws the noise).

    Example:
        >>> y = apply_chain(x, 16000, [ChainStep("gain", {"db": -6.0})], rng)
    """
    y = _mono(x).copy()
    for step in steps:
        if step.name == "speed":
            y = speed(y, **step.params)
        elif step.name == "equalize":
            y = equalize(y, sr, **step.params)
        elif step.name == "gain":
            y = gain(y, **step.params)
        elif step.name == "add_noise":
            y = add_noise(y, rng=rng, **step.params)
        elif step.name == "mp3_roundtrip":
            y = mp3_roundtrip(y, sr, **step.params)
        else:
            raise ValueError(f"unknown degradation {step.name!r}; known: {_CHAIN_ORDER}")
    return y


def random_chain(x: np.ndarray, sr: int, rng: np.random.Generator, **options: Any
                 ) -> np.ndarray:
    """A random subset of the degradations, each with probability ``p`` (default 0.5): speed
    0.96-1.04, EQ (1-3 bands, +-6 dB), gain -10 to +2 dB, white or pink noise at 20-40 dB SNR,
    MP3 at 24-64 kbps. `speed` changes the length (by ``1 / factor``); the rest keep it.

    Args:
        x: mono float waveform ``(samples,)``.
        sr: its sample rate in Hz.
        rng: the random generator (the same seed gives the same output).
        **options: `sample_chain`'s ranges (``p``, ``speed_range``, ``gain_db``, ``snr_db``,
            ``mp3_kbps``, ``eq_db``).

    Returns:
        float32 in [-1, 1].

    Example:
        >>> view = random_chain(x, 16000, np.random.default_rng(7), p=0.6)
    """
    return apply_chain(x, sr, sample_chain(rng, sr, **options), rng)
