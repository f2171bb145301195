"""Which ops the front-end layers trace to: the fastest core-TF ops, or TFLite builtins only.

By default the layers use core TensorFlow ops chosen for speed and for exactness under XLA
(e.g. a bit-level float16 rounding that XLA cannot fold away). The TFLite converter knows none
of ``Bitcast`` and friends, so `zoo.serving.export` traces models inside `tflite_builtin_ops()`,
which switches the layers to equivalent ops that TFLite has (same numbers).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_state = threading.local()


@contextlib.contextmanager
def tflite_builtin_ops() -> Iterator[None]:
    """Trace front-end layers with TFLite builtin ops while the context is active.

    Example:
        >>> with tflite_builtin_ops():
        ...     concrete = tf.function(model).get_concrete_function(spec)
    """
    previous = getattr(_state, "active", False)
    _state.active = True
    try:
        yield
    finally:
        _state.active = previous


def tflite_builtin_ops_active() -> bool:
    """True inside `tflite_builtin_ops()` (in this thread)."""
    return getattr(_state, "active", False)
