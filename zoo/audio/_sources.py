"""Caller input -> something soundfile can open, or float32 frames for an in-memory array.

A path, bytes-like object or binary file object becomes a :class:`Raw` (what soundfile opens,
plus random byte access for the container checks), after the checks that need no decoder:
missing, unreadable, empty, text-mode or unsupported input. A numpy array is validated for
dtype and layout and scaled to float32 ``(frames, channels)`` like libsndfile scales PCM.
"""

from __future__ import annotations

import errno
import io
import os
from typing import Any

import numpy as np

from zoo.audio._checks import MAX_CHANNELS, check_channels
from zoo.errors import AudioError


class Raw:
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


def source_name(source: Any) -> str:
    """How error messages name a source: its path, or ``<bytes>``, ``<array>``, ...."""
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


def _missing_reason(name: str) -> str:
    """Why a path that does not exist cannot be read: os.path.exists is False for a broken
    symbolic link and a link loop too, and "file not found" would send the user looking for
    a file that is right there in the folder listing."""
    if not os.path.islink(name):
        return "file not found"
    try:
        os.stat(name)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "symbolic link loop (too many levels of symbolic links)"
    try:
        target = os.readlink(name)
    except OSError:
        target = "?"
    return f"broken symbolic link (its target {target!r} does not exist)"


def as_raw(source: Any) -> Raw:
    """Validate a path / bytes / file object up to the point where soundfile can open it."""
    name = source_name(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise AudioError(name, "empty input (0 bytes)")
        return Raw(name, io.BytesIO(data), len(data))
    if isinstance(source, (str, os.PathLike)):
        if os.path.isdir(name):
            raise AudioError(name, "is a directory, not an audio file")
        if not os.path.exists(name):
            raise AudioError(name, _missing_reason(name))
        try:
            with open(name, "rb"):
                pass
            size = os.path.getsize(name)
        except OSError as err:
            raise AudioError(name, f"cannot read the file ({err.strerror or err})") from err
        if size == 0:
            raise AudioError(name, "empty file (0 bytes)")
        return Raw(name, name, size)
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
        return Raw(name, target, size)
    raise AudioError(
        name,
        "unsupported source type; pass a path, bytes, a binary file object or a numpy array",
    )


def array_frames(array: np.ndarray, name: str) -> np.ndarray:
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
    check_channels(cols, name)
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
