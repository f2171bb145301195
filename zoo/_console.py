"""Keeping other libraries' start-up chatter off the user's terminal.

- `import_tensorflow_quietly`: TensorFlow's C++ start-up lines (oneDNN, missing CUDA) are
  written before ``TF_CPP_MIN_LOG_LEVEL`` applies; the import runs with stderr muted.
- `filtered_stderr`: Beam's local worker processes inherit the driver's stderr and log their
  own start-up there (``INFO:__main__:Logging handler created.``, ...); within the block, file
  descriptor 2 points at a pipe and a thread forwards every line to the real stderr except
  those that start with one of the given prefixes. Child processes started inside the block
  inherit the pipe, so their lines are filtered too.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
from collections.abc import Iterator, Sequence

_OURS = "ZOO_QUIET_TF_IMPORT"


def configured_keras_backend() -> str:
    """The backend Keras will use (``KERAS_BACKEND``, else ``keras.json``'s), without importing
    Keras."""
    name = os.environ.get("KERAS_BACKEND")
    if name:
        return name
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as config:
            return str(json.load(config).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up chatter (oneDNN, missing CUDA) kept off stderr.

    TF 2.21 logs those lines before TF_CPP_MIN_LOG_LEVEL applies, so stderr is muted at the file
    descriptor level for the import only; import errors still surface as Python exceptions.
    Setting TF_CPP_MIN_LOG_LEVEL yourself keeps TensorFlow's own logging.
    """
    if "tensorflow" in sys.modules:
        return
    if configured_keras_backend() == "torch":
        # PyTorch's compiler stack (triton) crashes when it loads after TensorFlow: load first.
        import torch._dynamo  # noqa: F401
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ and os.environ.get(_OURS) != "1":
        return  # the user's own setting
    # Set here, and inherited by worker processes (Beam), which mute their import too.
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    os.environ[_OURS] = "1"
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe logs here
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def filtered_stderr(drop_prefixes: Sequence[bytes]) -> Iterator[None]:
    """Within the block, drop stderr lines that start with any of ``drop_prefixes``."""
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()

    prefixes = tuple(drop_prefixes)

    def forward() -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(read_end, 65536)
            except OSError:
                break
            if not chunk:
                break
            pending += chunk
            # "\r" ends a segment too: progress bars redraw with it, and must not wait for "\n".
            *segments, pending = re.split(b"(?<=[\r\n])", pending)
            for segment in segments:
                segment = _without_noise(segment)
                if segment:
                    os.write(saved, segment)
        pending = _without_noise(pending)
        if pending:
            os.write(saved, pending)

    def _without_noise(segment: bytes) -> bytes:
        # A library's line can start right after a progress bar's text (which ends without a
        # newline): cut from the first dropped prefix to the end of the segment.
        cuts = [i for i in (segment.find(p) for p in prefixes) if i >= 0]
        if not cuts:
            return segment
        kept = segment[:min(cuts)]
        return b"" if not kept.strip(b"\r") else kept

    thread = threading.Thread(target=forward, daemon=True, name="zoo-stderr-filter")
    thread.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # our end of the pipe closes; children that still hold it keep it
        thread.join(timeout=5.0)
        os.close(saved)
        if not thread.is_alive():
            os.close(read_end)
