"""Which ops the front-end layers trace to: the fastest core-TF ops, or ops another runtime has.

By default the layers use core TensorFlow ops chosen for speed and for exactness under XLA
(e.g. a bit-level float16 rounding that XLA cannot fold away). Other runtimes lack some of them:
TFLite and ONNX know no ``Bitcast`` and friends, and tf2onnx converts ``RFFT`` only when its
consumer is ``ComplexAbs``. `zoo.serving.export` therefore traces models inside
`portable_ops(target)`, which switches the layers to equivalent ops that the target runtime has
(same numbers, to float32 rounding):

* ``"tflite"``: the float16 rounding becomes a cast pair;
* ``"onnx"``: that, and the STFT becomes one matmul with a windowed DFT basis.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

TARGETS = ("tensorflow", "tflite", "onnx")

_state = threading.local()


@contextlib.contextmanager
def portable_ops(target: str) -> Iterator[None]:
    """Trace front-end layers with ops ``target`` has while the context is active.

    Args:
        target: one of `TARGETS` (``"tensorflow"``: the default ops).

    Example:
        >>> with portable_ops("onnx"):
        ...     concrete = tf.function(model).get_concrete_function(spec)
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    previous = active_target()
    _state.target = target
    try:
        yield
    finally:
        _state.target = previous


def active_target() -> str:
    """The runtime the layers trace for, in this thread (``"tensorflow"`` outside any
    `portable_ops` context)."""
    return getattr(_state, "target", "tensorflow")


def tflite_builtin_ops() -> contextlib.AbstractContextManager[None]:
    """``portable_ops("tflite")``."""
    return portable_ops("tflite")


def tflite_builtin_ops_active() -> bool:
    """True while tracing for a runtime without bit-level ops (TFLite or ONNX)."""
    return active_target() != "tensorflow"
