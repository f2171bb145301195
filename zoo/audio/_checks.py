"""Limits and argument checks shared by every :mod:`zoo.audio` entry point.

Sample rates (of files, arrays and requested outputs), channel counts, ``offset``/``duration``
windows and decoded samples are validated here; each check raises :class:`zoo.AudioError`
naming the source and the reason, and none of them touches a file or a decoder.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from zoo.errors import AudioError

MAX_CHANNELS = 8
"""Most channels accepted (7.1 surround; also FLAC's limit)."""
MIN_SAMPLE_RATE = 1_000
"""Lowest sample rate accepted, in Hz, for files, arrays and requested rates."""
MAX_SAMPLE_RATE = 384_000
"""Highest sample rate accepted, in Hz."""


def check_rate(value: Any, name: str, what: str) -> int:
    """A sample rate as int, or AudioError naming the source and what the rate is for."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise AudioError(name, f"{what} must be a whole number of Hz, got {value!r}")
    if isinstance(value, numbers.Integral):
        rate = int(value)
    elif math.isfinite(value) and float(value).is_integer():
        rate = int(value)
    else:
        raise AudioError(name, f"{what} must be a whole number of Hz, got {value!r}")
    if rate <= 0:
        raise AudioError(name, f"{what} must be positive, got {rate} Hz")
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(
            name,
            f"unsupported {what}: {rate} Hz (supported: {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz)",
        )
    return rate


def check_channels(channels: int, name: str) -> None:
    """AudioError unless 1 <= channels <= MAX_CHANNELS."""
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(
            name, f"unsupported channel count {channels} (supported: 1..{MAX_CHANNELS})"
        )


def frame_range(name: str, frames: int, rate: int, offset: Any, duration: Any) -> tuple[int, int]:
    """(first frame, frame count) for offset/duration in seconds, or AudioError."""
    if isinstance(offset, bool) or not isinstance(offset, numbers.Real):
        raise AudioError(name, f"offset must be a number of seconds, got {offset!r}")
    if not math.isfinite(offset) or offset < 0:
        raise AudioError(name, f"offset must be a finite number of seconds >= 0, got {offset!r}")
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, numbers.Real):
            raise AudioError(name, f"duration must be a number of seconds, got {duration!r}")
        if not math.isfinite(duration) or duration <= 0:
            raise AudioError(
                name, f"duration must be a finite number of seconds > 0, got {duration!r}"
            )
    if frames <= 0:
        raise AudioError(name, "zero-length audio: the header is valid but holds 0 frames")
    start = int(round(offset * rate))
    if start >= frames:
        raise AudioError(
            name, f"offset {offset:g} s is beyond the end of the audio ({frames / rate:g} s)"
        )
    count = frames - start
    if duration is not None:
        count = min(count, int(round(duration * rate)))
        if count <= 0:
            raise AudioError(
                name, f"duration {duration:g} s is shorter than one sample at {rate} Hz"
            )
    return start, count


def check_finite(x: np.ndarray, name: str, first_frame: int = 0) -> None:
    """Raise if decoded samples contain NaN/inf: they would poison resampling and models."""
    if not np.isfinite(x).all():
        bad = int(np.argwhere(~np.isfinite(x))[0][0]) + first_frame
        raise AudioError(name, f"audio contains NaN or infinite samples (first at frame {bad})")
