"""Decoder selection: ``backend=`` / ``$ZOO_AUDIO_BACKEND``, and the fallback from tfio.

Names the accepted backends, reads the environment variable when ``backend`` is None, and
decides whether the optional tensorflow-io decoder (:mod:`zoo.audio._tfio`) is used: only when
its ops really run in this process; otherwise soundfile decodes, with a one-line
:class:`zoo.errors.AudioWarning` given once per process.
"""

from __future__ import annotations

import os
import threading
import warnings

from zoo.audio import _tfio
from zoo.errors import AudioWarning

BACKENDS = ("soundfile", "tfio")
"""Decoder names accepted by ``backend=`` and ``$ZOO_AUDIO_BACKEND``."""
BACKEND_ENV = "ZOO_AUDIO_BACKEND"
"""Environment variable consulted when ``backend`` is None."""

_notice_lock = threading.Lock()
_fallback_noticed = False


def backend_name(backend: str | None) -> str:
    """The requested backend's canonical name (``None``: ``$ZOO_AUDIO_BACKEND``), or ValueError."""
    from_env = backend is None
    chosen = (os.environ.get(BACKEND_ENV, "").strip() or "soundfile") if from_env else backend
    key = chosen.strip().lower() if isinstance(chosen, str) else chosen
    if key not in BACKENDS:
        where = f" (from ${BACKEND_ENV})" if from_env else ""
        raise ValueError(f"unknown audio backend {chosen!r}{where}; choose one of {BACKENDS}")
    return key


def resolve_backend(backend: str | None) -> str:
    """The decoder to use: tfio only if it really works, else soundfile with a notice."""
    key = backend_name(backend)
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
