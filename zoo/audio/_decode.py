"""Sample decoding: read frames with libsndfile (or tensorflow-io), check, downmix, resample.

:func:`decode` reads a frame range of a file opened by
:func:`zoo.audio._containers.open_checked` in one go (with tensorflow-io when selected and
able, else soundfile, decoding and discarding MP3 frames rather than seeking), and
:func:`finish` turns those frames into :func:`zoo.audio.load`'s output; :func:`blocks` does the
same in bounded memory for :func:`zoo.audio.stream`. A decode failure, or fewer frames than the
header declares, raises :class:`zoo.AudioError` (only a warning when the length is libsndfile's
estimate for an MP3 without a length header).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import numpy as np
import soundfile as sf
import soxr

from zoo.audio import _tfio
from zoo.audio._checks import check_finite
from zoo.audio._containers import Meta, open_failure
from zoo.audio._sources import Raw
from zoo.errors import AudioError, AudioWarning

# Frames decoded per read by stream() and by MP3 skipping: 64 Ki frames bounds memory to
# about 256 KiB per channel while keeping per-call overhead negligible.
_READ_FRAMES = 65_536


def _decode_failure(meta: Meta, err: Exception, at: int = 0) -> str:
    why = getattr(err, "error_string", None) or str(err)
    where = f" after {at} of {meta.frames} frames" if at else ""
    return f"truncated or corrupt {meta.format} data: decoding failed{where} (libsndfile: {why})"


# Valid MP3s without a length header decode to within ~1% of libsndfile's estimate (a real
# file: 465,984 of an estimated 468,340 frames); only a larger miss suggests truncation.
ESTIMATE_TOLERANCE = 0.95


def _shortfall(meta: Meta, wanted_end: int, got_end: int) -> None:
    """Raise (or, for estimated MP3 lengths, warn) when fewer frames decode than declared."""
    if got_end >= wanted_end:
        return
    msg = (
        f"truncated {meta.format}: the header declares {meta.frames} frames but decoding "
        f"stopped at frame {got_end}"
    )
    if meta.exact_frames:
        raise AudioError(meta.name, msg)
    if got_end >= ESTIMATE_TOLERANCE * wanted_end:
        return  # an MP3 length without a header is only an estimate: a small miss is normal
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


def _sf_reader(f: sf.SoundFile, meta: Meta) -> Callable[[int], np.ndarray]:
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


def decode(raw: Raw, f: sf.SoundFile, meta: Meta, start: int, count: int, backend: str):
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


def _too_short(name: str, frames: int, rate: int, sr: int) -> AudioError:
    return AudioError(
        name,
        f"too short to resample: {frames} frame(s) at {rate} Hz make no sample at {sr} Hz",
    )


def finish(x: np.ndarray, rate: int, sr: int | None, mono: bool, name: str) -> np.ndarray:
    """(frames, channels) float32 -> finite-checked, downmixed, resampled, clipped output."""
    check_finite(x, name)
    if mono:
        # Downmix before resampling: identical result (both linear), fewer channels to filter.
        x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
    x = np.ascontiguousarray(x, dtype=np.float32)
    if sr is not None and sr != rate:
        frames = len(x)
        x = soxr.resample(x, rate, sr, quality="HQ")
        if len(x) == 0:  # e.g. 1 frame at 44.1 kHz -> 16 kHz: an empty array is no audio
            raise _too_short(name, frames, rate, sr)
    x = np.clip(x, -1.0, 1.0).astype(np.float32, copy=False)
    return x if mono else np.ascontiguousarray(x.T)


def stream_file(raw: Raw, meta: Meta, sr: int | None, block: int, mono: bool):
    """:func:`blocks` of an encoded source, reopened with soundfile on first iteration."""
    # Reopened here, not kept open from stream(), so an iterator that is never started
    # holds no file handle.
    raw.rewind()
    try:
        f = sf.SoundFile(raw.target)
    except (sf.SoundFileError, RuntimeError, OSError) as err:
        raise AudioError(meta.name, open_failure(meta.format, err)) from err
    with f:
        yield from blocks(_sf_reader(f, meta), meta, sr, block, mono)


def blocks(
    read: Callable[[int], np.ndarray], meta: Meta, sr: int | None, block: int, mono: bool
) -> Iterator[np.ndarray]:
    """Decode -> check -> downmix -> stream-resample -> cut into blocks (frames-major)."""
    out_channels = 1 if mono else meta.channels
    resampler = None
    if sr is not None and sr != meta.rate:
        resampler = soxr.ResampleStream(meta.rate, sr, out_channels, dtype="float32", quality="HQ")
    pending: list[np.ndarray] = []
    n_pending = 0
    pos = 0
    yielded = 0
    last = False
    while not last:
        x = read(_READ_FRAMES)
        check_finite(x, meta.name, pos)
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
        elif last and resampler is not None and not yielded and not n_pending:
            # Resampling left nothing of a very short signal: say so, rather than end an
            # iterator that stream()'s zero-length check promised would yield something.
            raise _too_short(meta.name, pos, meta.rate, int(sr))
        if n_pending >= block or (last and n_pending):
            joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
            n_full = len(joined) // block
            for i in range(n_full + (1 if last and len(joined) % block else 0)):
                part = np.clip(joined[i * block : (i + 1) * block], -1.0, 1.0)
                yielded += len(part)
                yield part if mono else np.ascontiguousarray(part.T)
            rest = joined[n_full * block :]
            pending = [rest.copy()] if len(rest) and not last else []
            n_pending = len(pending[0]) if pending else 0
