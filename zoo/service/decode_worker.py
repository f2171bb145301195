"""A decoder process: reads uploads from stdin, answers float32 samples (or why not) on stdout.

Run by `zoo.service.decoding.DecoderPool` as ``python -m zoo.service.decode_worker``. Decoding
in a process of its own lets the server stop a decode that takes too long (it kills the
process), keeps a crashing decoder library from taking the server down, and lets each decode
collect its own warnings. The upload is written to a temporary file under its own file name
ending, so `zoo.audio` checks and names the container exactly as it does for ``zoo tag`` and
``zoo similar``.

Request header: ``{"name": shown name, "suffix": ".wav", "sample_rate": 16000,
"max_seconds": 600}``, payload: the upload. Reply header: ``{"ok": true, "warnings": [...]}``
with the samples as payload, or ``{"ok": false, "kind": "audio" | "too_long" | "internal",
"reason": ..., "seconds": ...}``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from typing import Any

import numpy as np

# Not `from zoo import audio`: that goes through zoo.__getattr__, which starts TensorFlow.
from zoo.audio import info, load
from zoo.errors import AudioError
from zoo.service.frames import read_message, write_message


def _shown(text: str, path: str, name: str) -> str:
    """Messages name the upload as the client did, never the temporary file."""
    return text.replace(path, name)


def _too_long(seconds: float, limit: float) -> dict[str, Any]:
    return {"ok": False, "kind": "too_long", "seconds": round(float(seconds), 3),
            "reason": f"the recording is {seconds:.1f} s long; this server takes at most "
                      f"{limit:g} s"}


def decode(request: dict[str, Any], data: bytes) -> tuple[dict[str, Any], bytes]:
    """Decode one upload as the request says: the reply header and the samples."""
    name, limit = str(request["name"]), float(request["max_seconds"])
    with tempfile.TemporaryDirectory(prefix="zoo-serve-") as tmp:
        path = os.path.join(tmp, "upload" + str(request["suffix"]))
        with open(path, "wb") as f:
            f.write(data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                try:
                    declared = info(path).duration  # refuse long files before decoding
                except AudioError:
                    declared = None  # load below gives the reason the CLI gives
                if declared is not None and declared > limit:
                    return _too_long(declared, limit), b""
                samples = load(path, sr=int(request["sample_rate"]))
            except AudioError as err:
                return {"ok": False, "kind": "audio", "reason": _shown(err.reason, path, name)}, b""
            except Exception as err:  # a decoder bug answers this request, the process lives on
                return {"ok": False, "kind": "internal",
                        "reason": _shown(f"{type(err).__name__}: {err}", path, name)}, b""
        # info and load may both notice the same thing: say it once
        notes = list(dict.fromkeys(_shown(str(w.message), path, name) for w in caught))
    seconds = len(samples) / float(request["sample_rate"])
    if seconds > limit:  # the header under-declared it (an MP3 without a length header)
        return _too_long(seconds, limit), b""
    return {"ok": True, "warnings": notes}, np.ascontiguousarray(samples, np.float32).tobytes()


def main() -> int:
    """Answer requests until stdin closes."""
    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    # Decoder libraries print to fd 1 and 2; fd 1 now goes where stderr goes, so nothing but
    # replies reaches the pipe the server reads.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    while True:
        message = read_message(requests)
        if message is None:
            return 0
        header, payload = decode(*message)
        write_message(replies, header, payload)


if __name__ == "__main__":
    sys.exit(main())
