"""The few front-end steps whose best op differs per Keras backend (TensorFlow, JAX, PyTorch).

Everything else in `zoo.layers` is written with ``keras.ops``. These steps are not, because the
fastest or exact formulation is backend specific:

* `frame`: overlapping frames of a waveform. TensorFlow has ``tf.signal.frame``, PyTorch a
  strided view (``Tensor.unfold``); on JAX, frames are slices of a reshaped signal when the hop
  divides the frame length (an index gather otherwise).
* `rfft_power`: ``|rfft(frames * window)| ** power``, with each backend's FFT.
* `round_to_float16`: float32 -> nearest float16 -> float32. JAX and PyTorch keep a cast pair;
  TensorFlow's XLA (2.17) folds one away, so there the float32 bits are rounded instead, and the
  ops that TFLite and ONNX lack are swapped for ones they have (`zoo.layers.portability`).
* `smooth_dynamic`: PCEN's prefix scan over a time axis of unknown length, which only a
  TensorFlow graph has (JAX and PyTorch always see concrete shapes).

TensorFlow is imported only on the TensorFlow backend.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from zoo.layers.portability import active_target

FLOAT16_MAX = 65504.0  # largest finite float16; anything above would become inf when cast
_SIGN_BIT = -0x80000000  # int32 with only the sign bit set
_F16_MIN_NORMAL_BITS = 0x38800000  # float32 bits of 2**-14
_F16_SUBNORMAL_SCALE = 2.0**24


def backend() -> str:
    """The Keras backend in use: ``"tensorflow"``, ``"jax"`` or ``"torch"``."""
    return keras.backend.backend()


def frame(x: Any, frame_length: int, hop_length: int) -> Any:
    """``(batch, samples)`` -> ``(batch, frames, frame_length)`` overlapping frames (no padding:
    ``frames = 1 + (samples - frame_length) // hop_length``)."""
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        return tf.signal.frame(x, frame_length, hop_length, axis=-1)
    samples = x.shape[-1]
    frames = max(0, 1 + (samples - frame_length) // hop_length)
    if name == "torch":
        if frames == 0:  # unfold refuses input shorter than a frame
            return x.new_zeros((x.shape[0], 0, frame_length))
        return x.unfold(-1, frame_length, hop_length)
    if frame_length % hop_length == 0 and frames > 0:
        # frame t = hop blocks t .. t + r - 1, side by side: r slices, no gather.
        r = frame_length // hop_length
        blocks = keras.ops.reshape(x[:, : (frames + r - 1) * hop_length],
                                   (-1, frames + r - 1, hop_length))
        return keras.ops.concatenate([blocks[:, i: i + frames] for i in range(r)], axis=-1)
    index = np.arange(frames)[:, None] * hop_length + np.arange(frame_length)[None, :]
    return keras.ops.take(x, index, axis=1)


def rfft_power(frames: Any, window: np.ndarray, n_fft: int, power: float) -> Any:
    """``|rfft(frames * window)| ** power``, ``(..., n_fft)`` -> ``(..., n_fft // 2 + 1)``."""
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        spec = tf.signal.rfft(frames * tf.constant(window), fft_length=[n_fft])
        if power == 1.0:
            return tf.math.abs(spec)
        if power != 2.0:
            return tf.math.pow(tf.math.abs(spec), power)
        real, imag = tf.math.real(spec), tf.math.imag(spec)
    elif name == "torch":
        import torch

        if frames.numel() == 0:  # MKL's FFT refuses empty input
            return frames.new_zeros((*frames.shape[:-1], n_fft // 2 + 1))
        spec = torch.fft.rfft(frames * torch.as_tensor(window, device=frames.device), n=n_fft)
        real, imag = spec.real, spec.imag
    else:
        import jax.numpy as jnp

        spec = jnp.fft.rfft(frames * window, n=n_fft)
        real, imag = jnp.real(spec), jnp.imag(spec)
    # re^2 + im^2 skips the sqrt-then-square of abs() ** 2; same value to ~1 ulp.
    squared = keras.ops.square(real) + keras.ops.square(imag)
    if power == 2.0:
        return squared
    return keras.ops.power(squared, power / 2.0)


def round_to_float16(x: Any) -> Any:
    """float32 values clamped to +-65504 and rounded to the nearest float16 (ties to even,
    subnormals kept), as float32."""
    x = keras.ops.cast(x, "float32")
    if backend() != "tensorflow":
        return keras.ops.cast(keras.ops.cast(keras.ops.clip(x, -FLOAT16_MAX, FLOAT16_MAX),
                                             "float16"), "float32")
    import tensorflow as tf

    target = active_target()
    if target == "onnx":
        # Clamped in float16, after the cast: tf2onnx's optimizer deletes a float32 -> float16
        # -> float32 cast pair with nothing between (it takes float16 as lossless), and the
        # clamp is that something (same result: what rounds past 65504 becomes inf, then 65504).
        half = tf.cast(x, tf.float16)
        return tf.cast(tf.clip_by_value(half, -FLOAT16_MAX, FLOAT16_MAX), tf.float32)
    x = tf.clip_by_value(x, -FLOAT16_MAX, FLOAT16_MAX)
    if target == "tflite":
        return tf.cast(tf.cast(x, tf.float16), tf.float32)
    # XLA (TF 2.17) folds a float32->float16->float32 cast pair into nothing, so round the
    # float32 bits instead: keep 10 mantissa bits, ties to even.
    bits = tf.bitcast(x, tf.int32)
    sign = tf.bitwise.bitwise_and(bits, _SIGN_BIT)
    magnitude = tf.bitwise.bitwise_and(bits, ~_SIGN_BIT)
    lsb = tf.bitwise.bitwise_and(tf.bitwise.right_shift(magnitude, 13), 1)
    rounded = tf.bitwise.bitwise_and(magnitude + 0x0FFF + lsb, ~0x1FFF)
    normal = tf.bitcast(tf.bitwise.bitwise_or(rounded, sign), tf.float32)
    # Below float16's smallest normal (2**-14) its spacing is a fixed 2**-24; scaling by powers
    # of two is exact and tf.round rounds half to even.
    subnormal = tf.round(x * _F16_SUBNORMAL_SCALE) / _F16_SUBNORMAL_SCALE
    return tf.where(magnitude < _F16_MIN_NORMAL_BITS, subnormal, normal)


def smooth_dynamic(y: Any, log_decay: Any) -> Any:
    """PCEN's log-depth prefix scan (`zoo.layers.pcen.smooth`) over a time axis whose length is
    known only when the graph runs (TensorFlow): ``ceil(log2 T)`` steps in a while loop."""
    import tensorflow as tf

    frames = tf.shape(y)[1]

    def body(shift, y):
        decay = tf.exp(tf.cast(shift, tf.float32) * log_decay)
        back = tf.pad(y[:, : frames - shift], [[0, 0], [shift, 0], [0, 0]])
        new = y + decay * back
        new.set_shape(y.shape)
        return shift * 2, new

    _, y = tf.while_loop(lambda shift, _: shift < frames, body, (tf.constant(1), y))
    return y


def scan_steps(frames: int) -> list[int]:
    """The shifts of the prefix scan over ``frames`` frames: 1, 2, 4, ... below ``frames``."""
    return [2**i for i in range(math.ceil(math.log2(frames)))] if frames > 1 else []
