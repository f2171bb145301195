"""Audio input: decode files, bytes, file objects and arrays into float32 signals.

Every public function returns float32 samples in [-1, 1] and raises :class:`zoo.AudioError`
(message ``"<source>: <reason>"``) for input it cannot use; no soundfile, libsndfile or
TensorFlow exception escapes unwrapped (the original is chained as ``__cause__``).

Conventions:
    * Mono output has shape ``(samples,)``; ``mono=False`` gives ``(channels, samples)``
      (channels first, as model front-ends expect), also for a mono file: ``(1, samples)``.
      Arrays passed *in* use soundfile's layout, ``(samples,)`` or ``(samples, channels)``.
    * Downmixing is the mean of the channels; resampling is soxr "HQ".
    * Integer PCM is scaled by ``2 ** (bits - 1)`` (unsigned: offset first), like libsndfile.
    * Float sources may exceed full scale and resampling can overshoot a little, so output is
      clipped to [-1, 1].
    * Limits: 1 to :data:`MAX_CHANNELS` (8) channels; sample rates from
      :data:`MIN_SAMPLE_RATE` (1 kHz) to :data:`MAX_SAMPLE_RATE` (384 kHz), for files, arrays
      and requested output rates alike.
    * A signal so short that resampling leaves no sample (1 frame at 44.1 kHz -> 16 kHz) is
      refused like zero-length audio ("too short to resample").
    * A file with no recognised header is refused, also where libsndfile would guess headerless
      raw data from its name (``.au``/``.snd``: 8 kHz u-law) and decode any bytes as noise.
    * A broken symbolic link and a link loop are named as such, not as "file not found".

Truncated files (libsndfile 1.2 does not always notice, so zoo checks the container itself):
    * WAV: libsndfile silently returns only the samples present. zoo compares the ``data``
      chunk size in the header with the bytes in the file and raises :class:`AudioError`.
    * FLAC: libsndfile stops with "flac decoder lost sync", or decodes fewer frames than the
      STREAMINFO header declares; both raise :class:`AudioError`.
    * OGG (Vorbis, Opus): libsndfile fails to open the file, or silently returns fewer (even
      zero) frames. zoo checks that the file ends with a complete Ogg page: a partial last
      page raises :class:`AudioError`; a complete last page without the end-of-stream flag
      (a cut exactly at a page boundary, or a live-stream capture) only warns
      (:class:`zoo.errors.AudioWarning`).
    * MP3: libsndfile returns fewer frames than the Xing/Info/VBRI header declares (mpg123 also
      prints a warning on stderr, which Python cannot capture); zoo raises :class:`AudioError`.
      Without such a header the frame count is only libsndfile's estimate, so a shortfall
      warns instead. A file cut inside its first frame cannot be opened: :class:`AudioError`.
    * :func:`stream` detects header-visible truncation before the first block; a decode
      failure or shortfall found later raises from the iterator after the blocks before it.

Backends: ``"soundfile"`` (default) or ``"tfio"`` (tensorflow-io 0.37.1, optional, used only
by :func:`load`). ``backend=None`` reads the ``ZOO_AUDIO_BACKEND`` environment variable. If
tfio is requested but its ops do not run here (tensorflow-io is built for TF <= 2.17), zoo
warns once per process and decodes with soundfile.

Degradations for augmentation and robustness tests (gain, noise, EQ, speed, MP3 round trip)
are in :mod:`zoo.audio.degrade`.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Iterator
from typing import IO, TypeAlias

import numpy as np

from zoo.audio import _backends, _checks, _containers, _decode, _sources, _tfio, degrade
from zoo.audio._backends import BACKEND_ENV, BACKENDS
from zoo.audio._checks import MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from zoo.errors import AudioError

__all__ = [
    "BACKENDS",
    "BACKEND_ENV",
    "MAX_CHANNELS",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "AudioInfo",
    "AudioSource",
    "degrade",
    "info",
    "load",
    "stream",
    "tfio_available",
]

DEFAULT_BLOCK_SAMPLES = 16_000
"""Default block length of :func:`stream`: one second at the default 16 kHz."""

AudioSource: TypeAlias = (
    str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes] | np.ndarray
)
"""What :func:`load`, :func:`stream` and :func:`info` accept."""


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What a file header says, without decoding samples.

    Attributes:
        sample_rate: native sample rate in Hz.
        channels: channel count.
        frames: samples per channel (for MP3 without a Xing/Info header, libsndfile's
            estimate).
        duration: ``frames / sample_rate`` in seconds.
        format: soundfile's container name, e.g. ``"WAV"``, ``"FLAC"``, ``"OGG"``, ``"MP3"``.
        subtype: soundfile's encoding name, e.g. ``"PCM_16"``, ``"FLOAT"``, ``"VORBIS"``.
    """

    sample_rate: int
    channels: int
    frames: int
    duration: float
    format: str
    subtype: str


def tfio_available() -> bool:
    """Whether the optional tensorflow-io decoder really works in this process.

    Imports ``tensorflow_io`` lazily and runs one of its ops on a tiny in-memory WAV, because
    tensorflow-io 0.37.1 imports fine with TF 2.18+ but every op then fails with "undefined
    symbol". The result is cached for the process.

    Returns:
        True if tensorflow-io decoded the probe correctly; False otherwise (never raises).

    Example:
        >>> backend = "tfio" if tfio_available() else "soundfile"
    """
    return _tfio.available()


def load(
    source: AudioSource,
    sr: int | None = 16000,
    mono: bool = True,
    *,
    source_sr: int | None = None,
    backend: str | None = None,
    offset: float = 0.0,
    duration: float | None = None,
) -> np.ndarray:
    """Decode audio into a float32 signal, downmixed and resampled as asked.

    Args:
        source: a path (str or os.PathLike), the encoded file as bytes, a binary file object,
            or a numpy array of shape (samples,) or (samples, channels), float or integer PCM.
            Formats: WAV, FLAC, OGG Vorbis/Opus, MP3 (and the rest libsndfile reads: AIFF,
            AU, CAF, W64, ...).
        sr: output sample rate in Hz; None keeps the native rate.
        mono: True averages the channels into shape (samples,); False keeps them as
            (channels, samples).
        source_sr: the sample rate of an array ``source`` (required for arrays, ignored
            otherwise).
        backend: ``"soundfile"`` or ``"tfio"``; None reads ``$ZOO_AUDIO_BACKEND`` (default
            soundfile). tfio falls back to soundfile, with a one-time warning, when its ops do
            not run here, and for encodings it does not decode correctly (Opus, 32-bit PCM
            WAV, ...).
        offset: seconds to skip from the start (at the native rate).
        duration: seconds to keep after ``offset``; None keeps the rest.

    Returns:
        float32 array in [-1, 1]: shape (samples,) when ``mono``, else (channels, samples).

    Raises:
        AudioError: missing, empty, unreadable, non-audio, truncated or zero-length input
            (or too short to leave a sample once resampled); NaN/inf samples; unsupported
            channel count or sample rate; an array without ``source_sr`` or with a bad shape
            or dtype; offset beyond the end.
        ValueError: unknown backend name.

    Example:
        >>> x = load("speech.flac")                        # mono, 16 kHz
        >>> stereo = load(data, sr=None, mono=False)       # bytes, native rate, (2, n)
        >>> y = load(array, sr=16000, source_sr=44100)     # (n,) or (n, ch) array
    """
    name = _sources.source_name(source)
    chosen = _backends.resolve_backend(backend)
    if sr is not None:
        sr = _checks.check_rate(sr, name, "target sample rate sr")
    if isinstance(source, np.ndarray):
        if source_sr is None:
            raise AudioError(name, "source_sr is required for array input (its sample rate)")
        rate = _checks.check_rate(source_sr, name, "source_sr")
        x = _sources.array_frames(source, name)
        start, count = _checks.frame_range(name, len(x), rate, offset, duration)
        return _decode.finish(x[start : start + count], rate, sr, mono, name)
    raw = _sources.as_raw(source)
    with _containers.open_checked(raw) as (f, meta):
        start, count = _checks.frame_range(name, meta.frames, meta.rate, offset, duration)
        x = _decode.decode(raw, f, meta, start, count, chosen)
    if len(x) == 0:
        raise AudioError(name, "zero-length audio: no frames could be decoded")
    return _decode.finish(x, meta.rate, sr, mono, name)


def info(source: AudioSource) -> AudioInfo:
    """Read a file's header (and check its container) without decoding samples.

    Args:
        source: a path, the encoded file as bytes, or a binary file object. Arrays have no
            header and are refused.

    Returns:
        :class:`AudioInfo`. A valid file with 0 frames is reported, not refused.

    Raises:
        AudioError: missing, empty, unreadable, non-audio or header-visibly truncated input
            (see the module notes), unsupported channel count or sample rate, or an array.

    Example:
        >>> meta = info("song.mp3")
        >>> meta.sample_rate, meta.channels, round(meta.duration, 1)
        (44100, 2, 215.3)
    """
    if isinstance(source, np.ndarray):
        raise AudioError("<array>", "info() reads a file header; an array has none")
    raw = _sources.as_raw(source)
    with _containers.open_checked(raw) as (_, meta):
        return AudioInfo(
            sample_rate=meta.rate,
            channels=meta.channels,
            frames=meta.frames,
            duration=meta.frames / meta.rate,
            format=meta.format,
            subtype=meta.subtype,
        )


def stream(
    source: AudioSource,
    sr: int | None = 16000,
    block_samples: int = DEFAULT_BLOCK_SAMPLES,
    mono: bool = True,
    *,
    source_sr: int | None = None,
    backend: str | None = None,
) -> Iterator[np.ndarray]:
    """Iterate over a long recording in fixed-length blocks, in bounded memory.

    The file is decoded ``65536`` frames at a time and resampled chunk by chunk with
    ``soxr.ResampleStream`` (HQ), so memory does not grow with the file length. Joined, the
    blocks equal :func:`load`'s result to soxr's streaming tolerance (about 1e-6).

    The input is opened and checked when ``stream`` is called, so a missing, non-audio or
    header-visibly truncated file raises here; a decode failure later in the file raises from
    the iterator after the blocks before it.

    Args:
        source: as for :func:`load` (path, bytes, binary file object or array).
        sr: output sample rate in Hz; None keeps the native rate.
        block_samples: samples per block (per channel) at the output rate.
        mono: True yields (block_samples,) blocks; False yields (channels, block_samples).
        source_sr: sample rate of an array ``source`` (required for arrays).
        backend: validated like :func:`load`'s, but blocks are always decoded with soundfile:
            tensorflow-io's decoders need the whole encoded file and return the whole signal.

    Returns:
        An iterator of float32 blocks in [-1, 1]; all have ``block_samples`` samples except
        possibly the last, which is shorter (never empty).

    Raises:
        AudioError: as :func:`load` (from the call, or from the iterator for problems found
            while decoding), or ``block_samples`` not a positive integer.

    Example:
        >>> for block in stream("podcast.mp3", sr=16000, block_samples=16000 * 10):
        ...     scores = model.predict(block[None, :])      # 10 s at a time
    """
    name = _sources.source_name(source)
    _backends.backend_name(backend)  # validated only: blocks are always decoded with soundfile
    if sr is not None:
        sr = _checks.check_rate(sr, name, "target sample rate sr")
    if isinstance(block_samples, bool) or not isinstance(block_samples, numbers.Integral):
        raise AudioError(name, f"block_samples must be a positive integer, got {block_samples!r}")
    if block_samples <= 0:
        raise AudioError(name, f"block_samples must be a positive integer, got {block_samples}")
    block = int(block_samples)
    if isinstance(source, np.ndarray):
        if source_sr is None:
            raise AudioError(name, "source_sr is required for array input (its sample rate)")
        rate = _checks.check_rate(source_sr, name, "source_sr")
        x = _sources.array_frames(source, name)
        pos = [0]

        def read_array(n: int) -> np.ndarray:
            piece = x[pos[0] : pos[0] + n]
            pos[0] += len(piece)
            return piece

        meta = _containers.Meta(name, "array", str(x.dtype), rate, x.shape[1], len(x), True)
        return _decode.blocks(read_array, meta, sr, block, mono)
    raw = _sources.as_raw(source)
    with _containers.open_checked(raw) as (_, meta):
        _checks.frame_range(name, meta.frames, meta.rate, 0.0, None)  # zero-length check
    return _decode.stream_file(raw, meta, sr, block, mono)
