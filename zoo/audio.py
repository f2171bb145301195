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
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import numbers
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import IO, Any, TypeAlias

import numpy as np
import soundfile as sf
import soxr

from zoo import _tfio
from zoo.errors import AudioError, AudioWarning

__all__ = [
    "BACKENDS",
    "BACKEND_ENV",
    "MAX_CHANNELS",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "AudioInfo",
    "AudioSource",
    "info",
    "load",
    "stream",
    "tfio_available",
]

MAX_CHANNELS = 8
"""Most channels accepted (7.1 surround; also FLAC's limit)."""
MIN_SAMPLE_RATE = 1_000
"""Lowest sample rate accepted, in Hz, for files, arrays and requested rates."""
MAX_SAMPLE_RATE = 384_000
"""Highest sample rate accepted, in Hz."""
BACKENDS = ("soundfile", "tfio")
"""Decoder names accepted by ``backend=`` and ``$ZOO_AUDIO_BACKEND``."""
BACKEND_ENV = "ZOO_AUDIO_BACKEND"
"""Environment variable consulted when ``backend`` is None."""
DEFAULT_BLOCK_SAMPLES = 16_000
"""Default block length of :func:`stream`: one second at the default 16 kHz."""

AudioSource: TypeAlias = (
    str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes] | np.ndarray
)
"""What :func:`load`, :func:`stream` and :func:`info` accept."""

# Frames decoded per read by stream() and by MP3 skipping: 64 Ki frames bounds memory to
# about 256 KiB per channel while keeping per-call overhead negligible.
_READ_FRAMES = 65_536
# Header sniffing needs only the first bytes; the Ogg check needs the last page, which is at
# most 27 + 255 + 255 * 255 = 65_307 bytes long.
_HEAD_BYTES = 4_096
_OGG_TAIL_BYTES = 65_536 + 1_024
_WAV_MAX_CHUNKS = 64
# Containers libsndfile cannot read, named so the error can say what the file is.
_UNSUPPORTED_CONTAINERS = ("MP4/M4A (AAC/ALAC)", "Matroska/WebM")


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


# --------------------------------------------------------------------------------------------
# backend selection


_notice_lock = threading.Lock()
_fallback_noticed = False


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


def _backend_name(backend: str | None) -> str:
    """The requested backend's canonical name (``None``: ``$ZOO_AUDIO_BACKEND``), or ValueError."""
    from_env = backend is None
    chosen = (os.environ.get(BACKEND_ENV, "").strip() or "soundfile") if from_env else backend
    key = chosen.strip().lower() if isinstance(chosen, str) else chosen
    if key not in BACKENDS:
        where = f" (from ${BACKEND_ENV})" if from_env else ""
        raise ValueError(f"unknown audio backend {chosen!r}{where}; choose one of {BACKENDS}")
    return key


def _resolve_backend(backend: str | None) -> str:
    """The decoder to use: tfio only if it really works, else soundfile with a notice."""
    key = _backend_name(backend)
    if key == "tfio" and not _tfio.available():
        _notice_fallback()
        return "soundfile"
    return key


def _notice_fallback() -> None:
    global _fallback_noticed
    with _notice_lock:
        if _fallback_noticed:
            return
        _fallback_noticed = True
    reason = _tfio.unavailable_reason() or "not installed"
    warnings.warn(
        f"zoo.audio: tensorflow-io backend unavailable ({reason}); decoding with soundfile",
        AudioWarning,
        stacklevel=4,
    )


# --------------------------------------------------------------------------------------------
# argument checks


def _check_rate(value: Any, name: str, what: str) -> int:
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


def _check_channels(channels: int, name: str) -> None:
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioError(
            name, f"unsupported channel count {channels} (supported: 1..{MAX_CHANNELS})"
        )


def _frame_range(name: str, frames: int, rate: int, offset: Any, duration: Any) -> tuple[int, int]:
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


def _check_finite(x: np.ndarray, name: str, first_frame: int = 0) -> None:
    """Raise if decoded samples contain NaN/inf: they would poison resampling and models."""
    if not np.isfinite(x).all():
        bad = int(np.argwhere(~np.isfinite(x))[0][0]) + first_frame
        raise AudioError(name, f"audio contains NaN or infinite samples (first at frame {bad})")


# --------------------------------------------------------------------------------------------
# in-memory arrays


def _array_frames(array: np.ndarray, name: str) -> np.ndarray:
    """An input array as float32 (frames, channels), or AudioError explaining the layout."""
    kind = array.dtype.kind
    if kind not in "fiu":
        raise AudioError(
            name, f"unsupported dtype {array.dtype}; expected float samples or integer PCM"
        )
    if array.ndim == 0 or array.ndim > 2:
        raise AudioError(
            name,
            f"{array.ndim}-D array of shape {array.shape}; expected (samples,) or "
            "(samples, channels)",
        )
    x = array.reshape(-1, 1) if array.ndim == 1 else array
    rows, cols = x.shape
    if cols > MAX_CHANNELS and 1 <= rows <= MAX_CHANNELS:
        raise AudioError(
            name,
            f"array of shape {array.shape} looks like (channels, samples); zoo takes "
            f"soundfile's (samples, channels) layout, so pass array.T",
        )
    _check_channels(cols, name)
    if rows == 0:
        raise AudioError(name, "zero-length audio: the array holds 0 samples")
    if kind == "f":
        return x.astype(np.float32, copy=False)
    bits = array.dtype.itemsize * 8
    # Integer PCM: the same scaling libsndfile applies, so arrays and files agree.
    scaled = x.astype(np.float64)
    if kind == "u":
        scaled -= 2.0 ** (bits - 1)
    scaled *= 2.0 ** -(bits - 1)
    return scaled.astype(np.float32)


# --------------------------------------------------------------------------------------------
# encoded sources


class _Raw:
    """A non-array source: what soundfile opens, plus raw byte access for container checks."""

    def __init__(self, name: str, target: Any, size: int):
        self.name = name
        self.target = target  # a path (str) or a seekable binary file object holding the file
        self.size = size

    def read_at(self, pos: int, n: int) -> bytes:
        if isinstance(self.target, str):
            with open(self.target, "rb") as fh:
                fh.seek(pos)
                return fh.read(n)
        here = self.target.tell()
        try:
            self.target.seek(pos)
            return self.target.read(n)
        finally:
            self.target.seek(here)

    def read_all(self) -> bytes:
        return self.read_at(0, self.size)

    def rewind(self) -> None:
        if not isinstance(self.target, str):
            self.target.seek(0)


def _source_name(source: Any) -> str:
    if isinstance(source, np.ndarray):
        return "<array>"
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    if isinstance(source, (str, os.PathLike)):
        return os.fsdecode(os.fspath(source))
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        return name if isinstance(name, str) and name else "<file object>"
    return f"<{type(source).__name__}>"


def _as_raw(source: Any) -> _Raw:
    """Validate a path / bytes / file object up to the point where soundfile can open it."""
    name = _source_name(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise AudioError(name, "empty input (0 bytes)")
        return _Raw(name, io.BytesIO(data), len(data))
    if isinstance(source, (str, os.PathLike)):
        if os.path.isdir(name):
            raise AudioError(name, "is a directory, not an audio file")
        if not os.path.exists(name):
            raise AudioError(name, "file not found")
        try:
            with open(name, "rb"):
                pass
            size = os.path.getsize(name)
        except OSError as err:
            raise AudioError(name, f"cannot read the file ({err.strerror or err})") from err
        if size == 0:
            raise AudioError(name, "empty file (0 bytes)")
        return _Raw(name, name, size)
    if hasattr(source, "read"):
        if isinstance(source, io.TextIOBase):
            raise AudioError(name, "file object is in text mode; open it with mode 'rb'")
        try:
            seekable = bool(getattr(source, "seekable", lambda: False)())
            if seekable and source.tell() == 0:
                # soundfile's virtual I/O seeks to absolute positions, so an object can be
                # used in place only when the audio starts at position 0.
                source.seek(0, io.SEEK_END)
                size = source.tell()
                source.seek(0)
                target = source
            else:
                data = source.read()
                if isinstance(data, str):
                    raise AudioError(name, "file object is in text mode; open it with mode 'rb'")
                target, size = io.BytesIO(data), len(data)
        except (OSError, ValueError, TypeError) as err:
            if isinstance(err, AudioError):
                raise
            raise AudioError(name, f"cannot read the file object ({err})") from err
        if not size:
            raise AudioError(name, "empty input (0 bytes)")
        return _Raw(name, target, size)
    raise AudioError(
        name,
        "unsupported source type; pass a path, bytes, a binary file object or a numpy array",
    )


def _sniff(head: bytes) -> str | None:
    """The container named by the magic bytes, for messages about files libsndfile rejects."""
    if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
        return "WAV"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:4] == b"OggS":
        return "OGG"
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "MP3"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "AIFF"
    if head[4:8] == b"ftyp":
        return _UNSUPPORTED_CONTAINERS[0]
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return _UNSUPPORTED_CONTAINERS[1]
    return None


def _wav_header(raw: _Raw) -> dict[str, int]:
    """Channels, rate and data-chunk extent from a RIFF/WAVE header (walks chunk headers)."""
    out: dict[str, int] = {}
    if raw.read_at(0, 4) != b"RIFF":  # RIFX (big-endian) and RF64 headers are left to libsndfile
        return out
    pos = 12
    for _ in range(_WAV_MAX_CHUNKS):
        hdr = raw.read_at(pos, 8)
        if len(hdr) < 8:
            break
        cid, size = hdr[:4], int.from_bytes(hdr[4:], "little")
        if cid == b"fmt ":
            fmt = raw.read_at(pos + 8, 8)
            if len(fmt) == 8:
                out["channels"] = int.from_bytes(fmt[2:4], "little")
                out["rate"] = int.from_bytes(fmt[4:8], "little")
        elif cid == b"data":
            out["data_offset"], out["data_size"] = pos + 8, size
            break
        pos += 8 + size + (size & 1)  # RIFF chunks are padded to even sizes
    return out


def _ogg_tail_state(tail: bytes) -> str:
    """``"eos"``, ``"no_eos"`` (last page complete, no end-of-stream flag) or ``"partial"``."""
    pos = tail.rfind(b"OggS")
    while pos >= 0:
        if pos + 27 <= len(tail) and tail[pos + 4] == 0:  # stream structure version 0
            nseg = tail[pos + 26]
            table = tail[pos + 27 : pos + 27 + nseg]
            if len(table) == nseg and pos + 27 + nseg + sum(table) == len(tail):
                return "eos" if tail[pos + 5] & 0x04 else "no_eos"
        pos = tail.rfind(b"OggS", 0, pos)
    return "partial"


def _mp3_has_length_header(raw: _Raw) -> bool:
    """Whether an MP3 carries a Xing/Info/VBRI header, i.e. an exact frame count."""
    head = raw.read_at(0, 10)
    start = 0
    if head[:3] == b"ID3" and len(head) == 10:  # skip the ID3v2 tag (syncsafe size)
        start = 10 + ((head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9])
    first = raw.read_at(start, 200)
    return any(tag in first for tag in (b"Xing", b"Info", b"VBRI"))


@dataclasses.dataclass
class _Meta:
    name: str
    format: str
    subtype: str
    rate: int
    channels: int
    frames: int
    exact_frames: bool  # False when frames is only libsndfile's estimate (MP3 without header)


def _unsupported_container(kind: str) -> str:
    return f"unsupported audio container ({kind}); convert it to WAV, FLAC, OGG or MP3"


def _open_failure(kind: str | None, err: Exception) -> str:
    why = getattr(err, "error_string", None) or str(err)
    if kind in _UNSUPPORTED_CONTAINERS:
        return _unsupported_container(kind)
    if kind is None:
        return f"not an audio file: format not recognised (libsndfile: {why})"
    return f"corrupt or truncated {kind} file: cannot be opened (libsndfile: {why})"


@contextlib.contextmanager
def _open(raw: _Raw) -> Iterator[tuple[sf.SoundFile, _Meta]]:
    """Open with soundfile and run every header-level check; closes the file afterwards."""
    name = raw.name
    kind = _sniff(raw.read_at(0, _HEAD_BYTES))
    if kind in _UNSUPPORTED_CONTAINERS:
        raise AudioError(name, _unsupported_container(kind))
    wav = _wav_header(raw) if kind == "WAV" else {}
    # libsndfile reports these as "Channel count is zero." / "SF_INFO struct incomplete";
    # reading the header ourselves gives a clearer reason.
    if wav.get("channels") == 0:
        raise AudioError(name, "unsupported channel count 0 (WAV header says 0 channels)")
    if wav.get("rate") == 0:
        raise AudioError(name, "invalid sample rate 0 Hz in the WAV header")
    raw.rewind()
    try:
        f = sf.SoundFile(raw.target)
    except (sf.SoundFileError, RuntimeError, OSError, TypeError, ValueError) as err:
        raise AudioError(name, _open_failure(kind, err)) from err
    try:
        _check_rate(f.samplerate, name, "sample rate in the file header")
        _check_channels(f.channels, name)
        exact = True
        if f.format in ("WAV", "WAVEX") and "data_size" in wav:
            declared, present = wav["data_size"], raw.size - wav["data_offset"]
            # 0 and 0xFFFFFFFF mean "length unknown" (streamed WAV writers), not truncation.
            if declared not in (0, 0xFFFFFFFF) and declared > present:
                raise AudioError(
                    name,
                    f"truncated WAV: the header declares {declared} bytes of samples but the "
                    f"file holds only {present} ({f.frames} complete frames)",
                )
        elif f.format == "OGG":
            state = _ogg_tail_state(raw.read_at(max(0, raw.size - _OGG_TAIL_BYTES), raw.size))
            if state == "partial":
                raise AudioError(name, "truncated OGG: the file ends inside an Ogg page")
            if state == "no_eos" and f.frames == 0:
                raise AudioError(
                    name, "truncated OGG: the stream ends after its headers (no end-of-stream page)"
                )
            if state == "no_eos":
                warnings.warn(
                    f"{name}: OGG stream has no end-of-stream page; it may be truncated",
                    AudioWarning,
                    stacklevel=4,
                )
        elif f.format == "MP3":
            exact = _mp3_has_length_header(raw)
        meta = _Meta(name, f.format, f.subtype, f.samplerate, f.channels, f.frames, exact)
    except BaseException:
        f.close()
        raise
    with f:
        yield f, meta


def _decode_failure(meta: _Meta, err: Exception, at: int = 0) -> str:
    why = getattr(err, "error_string", None) or str(err)
    where = f" after {at} of {meta.frames} frames" if at else ""
    return f"truncated or corrupt {meta.format} data: decoding failed{where} (libsndfile: {why})"


def _shortfall(meta: _Meta, wanted_end: int, got_end: int) -> None:
    """Raise (or, for estimated MP3 lengths, warn) when fewer frames decode than declared."""
    if got_end >= wanted_end:
        return
    msg = (
        f"truncated {meta.format}: the header declares {meta.frames} frames but decoding "
        f"stopped at frame {got_end}"
    )
    if meta.exact_frames:
        raise AudioError(meta.name, msg)
    warnings.warn(
        f"{meta.name}: {meta.format} decoded {got_end} of an estimated {meta.frames} frames; "
        "it may be truncated",
        AudioWarning,
        stacklevel=4,
    )


# soundfile's SoundFile.read() seeks back to "tell() + frames" after every read. For MP3 that
# seek is mpg123's fuzzy seek, so the second and later reads of a file return the wrong samples
# (off by thousands of frames); for Vorbis/Opus it is a needless, costly re-seek. Sequential
# reads therefore call libsndfile's sf_readf_float through soundfile's own cffi handle, and
# fall back to SoundFile.read() only if a future soundfile renames those internals.
_RAW_READ = hasattr(sf, "_snd") and hasattr(sf, "_ffi")


def _sf_reader(f: sf.SoundFile, meta: _Meta) -> Callable[[int], np.ndarray]:
    """read(n) -> float32 (<= n, channels), sequential, wrapping libsndfile errors."""
    done = [0]
    raw_ok = _RAW_READ and getattr(f, "_file", None) is not None

    def read(n: int) -> np.ndarray:
        try:
            if raw_ok:
                buf = np.empty((n, meta.channels), dtype=np.float32)
                got = sf._snd.sf_readf_float(f._file, sf._ffi.from_buffer("float[]", buf), n)
                code = sf._snd.sf_error(f._file)
                if code:
                    raise sf.LibsndfileError(code)
                x = buf[:got] if got < n else buf
            else:
                x = f.read(n, dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError) as err:
            raise AudioError(meta.name, _decode_failure(meta, err, done[0])) from err
        done[0] += len(x)
        return x

    return read


def _decode(raw: _Raw, f: sf.SoundFile, meta: _Meta, start: int, count: int, backend: str):
    """Decode frames [start, start + count) as float32 (frames, channels)."""
    if backend == "tfio" and _tfio.supports(meta.format, meta.subtype):
        try:
            x = _tfio.decode(raw.read_all(), meta.format, meta.subtype, meta.channels)
        except Exception as err:  # tfio/TF errors come in many types; all mean "cannot decode"
            raise AudioError(
                meta.name,
                f"truncated or corrupt {meta.format} data: tensorflow-io could not decode it "
                f"({_tfio.short_reason(err)})",
            ) from err
        x = x[start : start + count]
    else:
        read = _sf_reader(f, meta)
        if start and meta.format == "MP3":
            # libsndfile's MP3 seek is off by thousands of samples past the first frames
            # (mpg123 fuzzy seeking), so decode and discard instead.
            skipped = 0
            while skipped < start:
                n = len(read(min(_READ_FRAMES, start - skipped)))
                if n == 0:
                    break
                skipped += n
            if skipped < start:
                _shortfall(meta, start, skipped)  # raises when the header length is exact
                raise AudioError(
                    meta.name,
                    f"offset {start / meta.rate:g} s is beyond the end of the decodable audio "
                    f"({skipped / meta.rate:g} s)",
                )
        elif start:
            try:
                f.seek(start)
            except (sf.SoundFileError, RuntimeError) as err:
                raise AudioError(meta.name, _decode_failure(meta, err, 0)) from err
        x = read(count)
    _shortfall(meta, start + count, start + len(x))
    return x


def _finish(x: np.ndarray, rate: int, sr: int | None, mono: bool, name: str) -> np.ndarray:
    """(frames, channels) float32 -> finite-checked, downmixed, resampled, clipped output."""
    _check_finite(x, name)
    if mono:
        # Downmix before resampling: identical result (both linear), fewer channels to filter.
        x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
    x = np.ascontiguousarray(x, dtype=np.float32)
    if sr is not None and sr != rate:
        x = soxr.resample(x, rate, sr, quality="HQ")
    x = np.clip(x, -1.0, 1.0).astype(np.float32, copy=False)
    return x if mono else np.ascontiguousarray(x.T)


# --------------------------------------------------------------------------------------------
# public API


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
        AudioError: missing, empty, unreadable, non-audio, truncated or zero-length input;
            NaN/inf samples; unsupported channel count or sample rate; an array without
            ``source_sr`` or with a bad shape or dtype; offset beyond the end.
        ValueError: unknown backend name.

    Example:
        >>> x = load("speech.flac")                        # mono, 16 kHz
        >>> stereo = load(data, sr=None, mono=False)       # bytes, native rate, (2, n)
        >>> y = load(array, sr=16000, source_sr=44100)     # (n,) or (n, ch) array
    """
    name = _source_name(source)
    chosen = _resolve_backend(backend)
    if sr is not None:
        sr = _check_rate(sr, name, "target sample rate sr")
    if isinstance(source, np.ndarray):
        if source_sr is None:
            raise AudioError(name, "source_sr is required for array input (its sample rate)")
        rate = _check_rate(source_sr, name, "source_sr")
        x = _array_frames(source, name)
        start, count = _frame_range(name, len(x), rate, offset, duration)
        return _finish(x[start : start + count], rate, sr, mono, name)
    raw = _as_raw(source)
    with _open(raw) as (f, meta):
        start, count = _frame_range(name, meta.frames, meta.rate, offset, duration)
        x = _decode(raw, f, meta, start, count, chosen)
    if len(x) == 0:
        raise AudioError(name, "zero-length audio: no frames could be decoded")
    return _finish(x, meta.rate, sr, mono, name)


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
    raw = _as_raw(source)
    with _open(raw) as (_, meta):
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
    name = _source_name(source)
    _backend_name(backend)  # validated only: blocks are always decoded with soundfile
    if sr is not None:
        sr = _check_rate(sr, name, "target sample rate sr")
    if isinstance(block_samples, bool) or not isinstance(block_samples, numbers.Integral):
        raise AudioError(name, f"block_samples must be a positive integer, got {block_samples!r}")
    if block_samples <= 0:
        raise AudioError(name, f"block_samples must be a positive integer, got {block_samples}")
    block = int(block_samples)
    if isinstance(source, np.ndarray):
        if source_sr is None:
            raise AudioError(name, "source_sr is required for array input (its sample rate)")
        rate = _check_rate(source_sr, name, "source_sr")
        x = _array_frames(source, name)
        pos = [0]

        def read_array(n: int) -> np.ndarray:
            piece = x[pos[0] : pos[0] + n]
            pos[0] += len(piece)
            return piece

        meta = _Meta(name, "array", str(x.dtype), rate, x.shape[1], len(x), True)
        return _blocks(read_array, meta, sr, block, mono)
    raw = _as_raw(source)
    with _open(raw) as (_, meta):
        _frame_range(name, meta.frames, meta.rate, 0.0, None)  # zero-length check
    return _stream_file(raw, meta, sr, block, mono)


def _stream_file(raw: _Raw, meta: _Meta, sr: int | None, block: int, mono: bool):
    # Reopened here, not kept open from stream(), so an iterator that is never started
    # holds no file handle.
    raw.rewind()
    try:
        f = sf.SoundFile(raw.target)
    except (sf.SoundFileError, RuntimeError, OSError) as err:
        raise AudioError(meta.name, _open_failure(meta.format, err)) from err
    with f:
        yield from _blocks(_sf_reader(f, meta), meta, sr, block, mono)


def _blocks(
    read: Callable[[int], np.ndarray], meta: _Meta, sr: int | None, block: int, mono: bool
) -> Iterator[np.ndarray]:
    """Decode -> check -> downmix -> stream-resample -> cut into blocks (frames-major)."""
    out_channels = 1 if mono else meta.channels
    resampler = None
    if sr is not None and sr != meta.rate:
        resampler = soxr.ResampleStream(meta.rate, sr, out_channels, dtype="float32", quality="HQ")
    pending: list[np.ndarray] = []
    n_pending = 0
    pos = 0
    last = False
    while not last:
        x = read(_READ_FRAMES)
        _check_finite(x, meta.name, pos)
        pos += len(x)
        # A short read means end of data; reaching the declared length means the same
        # without needing one more (empty) read.
        last = len(x) < _READ_FRAMES or pos >= meta.frames
        if last:
            _shortfall(meta, meta.frames, pos)
        y = x.mean(axis=1, dtype=np.float32) if mono else x
        y = np.ascontiguousarray(y, dtype=np.float32)
        if resampler is not None:
            y = resampler.resample_chunk(y, last=last)
        if len(y):
            pending.append(y)
            n_pending += len(y)
        if n_pending >= block or (last and n_pending):
            joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
            n_full = len(joined) // block
            for i in range(n_full + (1 if last and len(joined) % block else 0)):
                part = np.clip(joined[i * block : (i + 1) * block], -1.0, 1.0)
                yield part if mono else np.ascontiguousarray(part.T)
            rest = joined[n_full * block :]
            pending = [rest.copy()] if len(rest) and not last else []
            n_pending = len(pending[0]) if pending else 0
