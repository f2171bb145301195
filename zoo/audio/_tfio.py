"""Optional tensorflow-io decoder for :mod:`zoo.audio` (Python side only, never in graphs).

tensorflow-io 0.37.1 is the last release. It *imports* with any TensorFlow, but its native
ops were built against TF 2.17 and fail with "undefined symbol" on TF 2.18+, so
:func:`available` does not trust the import: it decodes a tiny in-memory WAV and checks the
samples. Nothing here imports TensorFlow or tensorflow-io until a caller asks for them.
"""

from __future__ import annotations

import importlib
import io
import re
import threading
import warnings
from typing import Any

import numpy as np

# (soundfile format, soundfile subtype) -> (tfio decoder, tf dtype name, scale, offset).
# Samples come back as the stored integers; float = (int - offset) * scale, the same mapping
# libsndfile uses, so both backends agree bit for bit on PCM. Pairs not listed (Opus, 32-bit
# integer WAV, which tfio 0.37.1 misreads as IEEE float, 64-bit float, AIFF, ...) are decoded
# by soundfile even when the tfio backend is selected.
_CODECS: dict[tuple[str, str], tuple[str, str | None, float, float]] = {
    ("WAV", "PCM_U8"): ("decode_wav", "uint8", 1.0 / 128, 128.0),
    ("WAV", "PCM_16"): ("decode_wav", "int16", 1.0 / 32768, 0.0),
    ("WAV", "PCM_24"): ("decode_wav", "int32", 1.0 / 2**31, 0.0),  # tfio left-aligns 24 bits
    ("WAV", "FLOAT"): ("decode_wav", "float32", 1.0, 0.0),
    ("FLAC", "PCM_16"): ("decode_flac", "int16", 1.0 / 32768, 0.0),
    ("FLAC", "PCM_24"): ("decode_flac", "int32", 1.0 / 2**31, 0.0),
    ("OGG", "VORBIS"): ("decode_vorbis", None, 1.0, 0.0),
    ("MP3", "MPEG_LAYER_III"): ("decode_mp3", None, 1.0, 0.0),
}

_lock = threading.Lock()
_state: dict[str, Any] = {}  # "ok": bool, "reason": str | None, "module": tensorflow_io


def short_reason(err: BaseException) -> str:
    """One line naming the failure, e.g. "NotImplementedError: libx.so: undefined symbol: ..."."""
    text = str(err)
    found = re.search(r"([\w.+-]+\.so): undefined symbol: ([\w.]+)", text)
    if found:
        symbol = found.group(2)
        symbol = symbol if len(symbol) <= 60 else symbol[:57] + "..."
        why = f"{found.group(1)}: undefined symbol: {symbol} (tensorflow-io is built for TF 2.17)"
    else:
        # TF op errors read "{{function_node ...}} what happened [Op:Name]": keep the middle.
        text = re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:[^\]]*\]", "", text)
        why = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
        why = why if len(why) <= 160 else why[:157] + "..."
    return f"{type(err).__name__}: {why}" if why else type(err).__name__


def _probe() -> tuple[bool, str | None, Any]:
    """Import tensorflow_io and really run one op; returns (ok, reason, module)."""
    try:
        import soundfile as sf

        expected = np.array([0, 1000, -1000, 32767, -32768, 7, -7, 0], dtype=np.int16)
        buf = io.BytesIO()
        sf.write(buf, expected, 8000, format="WAV", subtype="PCM_16")
        with warnings.catch_warnings():
            # A mismatched build warns at import ("unable to load libtensorflow_io.so"); the
            # probe result below is what counts, and one notice is given by zoo.audio.
            warnings.simplefilter("ignore")
            tfio = importlib.import_module("tensorflow_io")
            import tensorflow as tf

            got = tfio.audio.decode_wav(tf.constant(buf.getvalue()), dtype=tf.int16)
            got = np.asarray(got).reshape(-1)
        if not np.array_equal(got, expected):
            return False, "tensorflow_io.audio.decode_wav returned wrong samples", None
        return True, None, tfio
    except Exception as err:  # any failure just means "not available"; never propagate
        return False, short_reason(err), None


def available() -> bool:
    """Whether tensorflow-io is installed and its native ops run here (cached, never raises)."""
    with _lock:
        if "ok" not in _state:
            ok, reason, module = _probe()
            _state.update(ok=ok, reason=reason, module=module)
        return bool(_state["ok"])


def unavailable_reason() -> str | None:
    """Why :func:`available` is False (``None`` when it is True or was not probed yet)."""
    return _state.get("reason")


def reset() -> None:
    """Forget the cached probe result (tests use it after faking ``sys.modules``)."""
    with _lock:
        _state.clear()


def supports(fmt: str, subtype: str) -> bool:
    """Whether tensorflow-io 0.37.1 decodes this soundfile (format, subtype) correctly."""
    return (fmt, subtype) in _CODECS


def decode(data: bytes, fmt: str, subtype: str, channels: int) -> np.ndarray:
    """Decode a whole encoded file with tensorflow-io.

    Args:
        data: the encoded file.
        fmt: soundfile's major format name (``"WAV"``, ``"FLAC"``, ``"OGG"``, ``"MP3"``).
        subtype: soundfile's subtype name; ``supports(fmt, subtype)`` must be True.
        channels: channel count from the header, to check tfio's output shape.

    Returns:
        float32 array of shape (frames, channels), scaled like soundfile's float output.

    Raises:
        RuntimeError: tensorflow-io is not available, or its output has the wrong shape.
        Exception: whatever tensorflow-io raises for undecodable data (the caller wraps it).
    """
    if not available():
        raise RuntimeError(f"tensorflow-io is not available: {unavailable_reason()}")
    import tensorflow as tf

    op_name, dtype, scale, offset = _CODECS[(fmt, subtype)]
    op = getattr(_state["module"].audio, op_name)
    kwargs = {"dtype": getattr(tf, dtype)} if dtype is not None else {}
    raw = np.asarray(op(tf.constant(data), **kwargs))
    if raw.ndim != 2 or raw.shape[1] != channels:
        raise RuntimeError(f"tensorflow-io returned shape {raw.shape} for {channels} channels")
    out = raw.astype(np.float32)
    if offset:
        out -= np.float32(offset)
    if scale != 1.0:
        out *= np.float32(scale)
    return out
