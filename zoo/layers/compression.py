"""Magnitude-compression layers for spectrograms: fixed logs, decibels and a learnable log.

All layers compute in float32 and return float32, whatever the global dtype policy.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from zoo.layers import backend_ops

_LN10 = math.log(10.0)


def _log10(x, times: float = 1.0):
    # One multiply by a folded constant, so graph rewrites have nothing left to reassociate.
    return ops.log(x) * (times / _LN10)


def quantize_float16(x):
    """Round float32 values to the nearest float16 (ties to even, subnormals kept), as float32.

    Values beyond the float16 range are clamped to +-65504 first, so nothing becomes inf.

    Args:
        x: float32 tensor (any Keras backend).

    Returns:
        float32 tensor holding float16-representable values; equals numpy's
        ``np.clip(x, -65504, 65504).astype(np.float16).astype(np.float32)``.

    Example:
        >>> keras.ops.convert_to_numpy(quantize_float16(np.array([1.0001, 1e9]))).tolist()
        [1.0, 65504.0]
    """
    return backend_ops.round_to_float16(x)


class _Float32Layer(keras.layers.Layer):
    """Base: float32 dtype by default (front-end numerics must not follow mixed precision)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="zoo")
class LogEps(_Float32Layer):
    """Natural log with an offset: ``log(x + eps)``.

    Args:
        eps: offset added before the log; keeps silence finite.
        **kwargs: standard Keras layer arguments.

    Example:
        >>> LogEps(eps=1e-6)(np.zeros((1, 2, 3), "float32")).numpy().max() < -13.8
        True
    """

    def __init__(self, eps: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.eps = float(eps)

    def call(self, inputs):
        return ops.log(ops.cast(inputs, "float32") + self.eps)

    def get_config(self) -> dict:
        return {**super().get_config(), "eps": self.eps}


@keras.saving.register_keras_serializable(package="zoo")
class Log10Scaled(_Float32Layer):
    """musicnn's compression ``log10(scale * x + 1)``, always evaluated in float32.

    With ``quantize_float16=True`` the input is first clamped to ``[-65504, 65504]`` and rounded
    to float16 (round-to-nearest-even, subnormals kept) and back, as the original musicnn fed
    float16 mel power to its weights; the scaling and log then run in float32, so large inputs stay
    finite (the original overflowed ``scale * x`` in float16 to inf).

    Args:
        scale: multiplier inside the log.
        quantize_float16: round the input through float16 first.
        **kwargs: standard Keras layer arguments.

    Example:
        >>> y = Log10Scaled(scale=10000.0)(np.full((1, 1, 1), 0.0999, "float32"))
        >>> round(y.numpy().item(), 4)
        3.0
    """

    def __init__(self, scale: float = 10000.0, quantize_float16: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)
        self.quantize_float16 = bool(quantize_float16)

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        if self.quantize_float16:
            x = quantize_float16(x)
        # Rounded like numpy's float32 log10(scale * x + 1). The floor at 1 keeps slightly
        # negative inputs from giving NaN, and stops grappler turning log(t + 1) into log1p,
        # which would make graph and eager results differ.
        return _log10(ops.maximum(x * self.scale + 1.0, 1.0))

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "scale": self.scale,
            "quantize_float16": self.quantize_float16,
        }


@keras.saving.register_keras_serializable(package="zoo")
class PowerToDb(_Float32Layer):
    """Power to decibels, as ``librosa.power_to_db`` but per example.

    ``10 * log10(max(x, amin)) - 10 * log10(max(ref, amin))``, then values below the example's
    maximum minus ``top_db`` are raised to that floor. With ``ref="max"`` the reference is each
    example's own maximum; clipping also uses each example's own maximum, so batching never mixes
    examples.

    Args:
        ref: reference power (number) or ``"max"``.
        amin: floor on power (and on ``ref``) before the log.
        top_db: dynamic range kept below each example's peak, or ``None`` for no clipping.
        **kwargs: standard Keras layer arguments.

    Example:
        >>> y = PowerToDb(ref=1.0, top_db=None)(np.full((1, 1, 1), 100.0, "float32"))
        >>> round(y.numpy().item(), 4)
        20.0
    """

    def __init__(
        self, ref: float | str = 1.0, amin: float = 1e-10, top_db: float | None = 80.0, **kwargs
    ):
        super().__init__(**kwargs)
        if isinstance(ref, str) and ref != "max":
            raise ValueError(f"ref must be a number or 'max', got {ref!r}")
        if amin <= 0:
            raise ValueError(f"amin must be positive, got {amin}")
        if top_db is not None and top_db < 0:
            raise ValueError(f"top_db must be non-negative or None, got {top_db}")
        self.ref = ref if isinstance(ref, str) else float(ref)
        self.amin = float(amin)
        self.top_db = float(top_db) if top_db is not None else None

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        db = _log10(ops.maximum(x, self.amin), times=10.0)
        axes = tuple(range(1, len(x.shape)))
        if self.ref == "max":
            peak = ops.max(x, axis=axes, keepdims=True)
            db -= _log10(ops.maximum(peak, self.amin), times=10.0)
        else:
            db -= 10.0 * math.log10(max(self.ref, self.amin))
        if self.top_db is not None:
            db = ops.maximum(db, ops.max(db, axis=axes, keepdims=True) - self.top_db)
        return db

    def get_config(self) -> dict:
        return {**super().get_config(), "ref": self.ref, "amin": self.amin, "top_db": self.top_db}


@keras.saving.register_keras_serializable(package="zoo")
class LogLearn(_Float32Layer):
    """Learnable log compression ``log(alpha * x + beta)``.

    ``alpha = exp(a)`` and ``beta = softplus(b)`` stay positive while the trainable scalars
    ``a`` and ``b`` move freely.

    Args:
        alpha_init: initial ``a`` (``alpha = exp(alpha_init)``, about 1096.63 for 7).
        beta_init: initial ``b`` (``beta = softplus(beta_init)``, about 1.3133 for 1).
        **kwargs: standard Keras layer arguments.

    Example:
        >>> layer = LogLearn()
        >>> _ = layer(np.zeros((1, 4, 8), "float32"))
        >>> round(layer.alpha, 2), round(layer.beta, 4)
        (1096.63, 1.3133)
    """

    def __init__(self, alpha_init: float = 7.0, beta_init: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha_init = float(alpha_init)
        self.beta_init = float(beta_init)

    def build(self, input_shape):
        self.a = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.alpha_init),
            trainable=True,
            name="a",
        )
        self.b = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(self.beta_init),
            trainable=True,
            name="b",
        )
        super().build(input_shape)

    @property
    def alpha(self) -> float:
        """Current ``alpha = exp(a)`` as a Python float."""
        return float(math.exp(float(keras.ops.convert_to_numpy(self.a))))

    @property
    def beta(self) -> float:
        """Current ``beta = softplus(b)`` as a Python float."""
        b = float(keras.ops.convert_to_numpy(self.b))
        return max(b, 0.0) + math.log1p(math.exp(-abs(b)))

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        alpha = ops.exp(ops.cast(self.a, "float32"))
        beta = ops.softplus(ops.cast(self.b, "float32"))
        return ops.log(alpha * x + beta)

    def get_config(self) -> dict:
        return {**super().get_config(), "alpha_init": self.alpha_init, "beta_init": self.beta_init}
