"""Importing TensorFlow without its C++ start-up lines on stderr."""

from __future__ import annotations

import os
import sys

_OURS = "ZOO_QUIET_TF_IMPORT"


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up chatter (oneDNN, missing CUDA) kept off stderr.

    TF 2.21 logs those lines before TF_CPP_MIN_LOG_LEVEL applies, so stderr is muted at the file
    descriptor level for the import only; import errors still surface as Python exceptions.
    Setting TF_CPP_MIN_LOG_LEVEL yourself keeps TensorFlow's own logging.
    """
    if "tensorflow" in sys.modules:
        return
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
