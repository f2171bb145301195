"""Trainable per-channel energy normalisation (PCEN, Wang et al. 2017)."""

from __future__ import annotations

import math

import keras
from keras import ops

from zoo.layers import backend_ops


def smoothing_coefficient(time_constant: float, sr: float, hop_length: int) -> float:
    """librosa's default IIR coefficient ``b`` for a time constant in seconds.

    With ``T = time_constant * sr / hop_length`` (the time constant in frames), ``b`` is the
    positive root of ``T**2 * b**2 + b - 1 = 0``, i.e. ``(sqrt(1 + 4 T**2) - 1) / (2 T**2)``.

    Args:
        time_constant: smoother time constant in seconds.
        sr: sample rate of the audio (Hz).
        hop_length: hop between frames (samples).

    Returns:
        the coefficient ``s`` in ``(0, 1]``.

    Example:
        >>> round(smoothing_coefficient(0.4, 22050, 512), 5)
        0.05642
    """
    frames = time_constant * sr / float(hop_length)
    return (math.sqrt(1.0 + 4.0 * frames**2) - 1.0) / (2.0 * frames**2)


def smooth(energy, s, initial):
    """First-order IIR smoother over axis 1: ``M_t = (1 - s) M_{t-1} + s E_t``, ``M_{-1}=initial``.

    Runs as a log-depth prefix scan (``ceil(log2 T)`` vectorised steps, each adding the partial
    sum ``2^i`` frames back, scaled by ``(1 - s)^(2^i)``) rather than ``T`` sequential steps; only
    powers of ``1 - s`` below 1 appear, so nothing can overflow.

    Args:
        energy: ``(batch, frames, channels)`` float32.
        s: coefficient, scalar or ``(channels,)``, in ``(0, 1]``.
        initial: state before the first frame, broadcastable to ``(batch, 1, channels)``.

    Returns:
        the smoothed energies, same shape as ``energy``.
    """
    log_decay = ops.log1p(-s)
    y = s * energy
    first = y[:, :1] + (1.0 - s) * initial
    y = ops.concatenate([first, y[:, 1:]], axis=1)
    frames = energy.shape[1]
    if frames is None:  # a TensorFlow graph with a free time axis
        return backend_ops.smooth_dynamic(y, log_decay)
    for shift in backend_ops.scan_steps(frames):
        back = ops.pad(y[:, : frames - shift], [[0, 0], [shift, 0], [0, 0]])
        y = y + ops.exp(float(shift) * log_decay) * back
    return y


@keras.saving.register_keras_serializable(package="zoo")
class PCEN(keras.layers.Layer):
    """Per-channel energy normalisation with trainable per-channel parameters.

    On ``(batch, frames, channels)`` non-negative energies ``E``::

        M_t = (1 - s) M_{t-1} + s E_t
        out = (E / (eps + M)^alpha + delta)^r - delta^r

    ``alpha``, ``delta``, ``r`` are per-channel weights stored as logs (so they stay positive);
    ``s`` is fixed, or with ``trainable_s=True`` a per-channel weight stored as a logit. Defaults
    and the initial state follow ``librosa.pcen`` (``gain=alpha``, ``bias=delta``, ``power=r``,
    ``b=s``): with ``initial_state="unit"`` the smoother starts as if it had seen energy 1 forever
    (scipy's ``lfilter_zi``), so results match ``librosa.pcen(E.T, ...)``; ``"first_frame"``
    starts from ``E_0`` instead, which is scale-invariant.

    Args:
        alpha: initial gain exponent (librosa ``gain``).
        delta: initial bias (librosa ``bias``).
        r: initial compression exponent (librosa ``power``).
        s: smoothing coefficient; ``None`` derives it from ``time_constant``, ``sr``, ``hop_length``
            as librosa does.
        time_constant: smoother time constant (s), used when ``s`` is ``None``.
        sr: audio sample rate (Hz), used when ``s`` is ``None``.
        hop_length: frame hop (samples), used when ``s`` is ``None``.
        eps: floor added to the smoothed energy.
        trainable_s: learn a per-channel ``s`` instead of keeping it fixed.
        initial_state: ``"unit"`` (librosa) or ``"first_frame"``.
        **kwargs: standard Keras layer arguments.

    Example:
        >>> layer = PCEN(sr=16000, hop_length=256)
        >>> tuple(layer(np.ones((2, 187, 96), "float32")).shape)
        (2, 187, 96)
    """

    def __init__(
        self,
        alpha: float = 0.98,
        delta: float = 2.0,
        r: float = 0.5,
        s: float | None = None,
        time_constant: float = 0.4,
        sr: float = 22050,
        hop_length: int = 512,
        eps: float = 1e-6,
        trainable_s: bool = False,
        initial_state: str = "unit",
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if min(alpha, delta, r, eps) <= 0:
            raise ValueError("alpha, delta, r and eps must be positive")
        if initial_state not in ("unit", "first_frame"):
            raise ValueError(f"initial_state must be 'unit' or 'first_frame': {initial_state!r}")
        if s is None:
            s = smoothing_coefficient(time_constant, sr, hop_length)
        if not 0.0 < s < 1.0:
            raise ValueError(f"s must be in (0, 1), got {s}")
        self.alpha_init, self.delta_init, self.r_init = float(alpha), float(delta), float(r)
        self.s_init = float(s)
        self.time_constant, self.sr, self.hop_length = float(time_constant), float(sr), hop_length
        self.eps = float(eps)
        self.trainable_s = bool(trainable_s)
        self.initial_state = initial_state

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError("PCEN needs a known channel (last) dimension")

        def weight(name, value):
            init = keras.initializers.Constant(value)
            return self.add_weight(shape=(channels,), initializer=init, name=name)

        self.log_alpha = weight("log_alpha", math.log(self.alpha_init))
        self.log_delta = weight("log_delta", math.log(self.delta_init))
        self.log_r = weight("log_r", math.log(self.r_init))
        if self.trainable_s:
            self.s_logit = weight("s_logit", math.log(self.s_init / (1.0 - self.s_init)))
        super().build(input_shape)

    def call(self, inputs):
        energy = ops.cast(inputs, "float32")
        if self.trainable_s:
            s = ops.sigmoid(ops.cast(self.s_logit, "float32"))
        else:
            s = ops.convert_to_tensor(self.s_init, "float32")
        initial = energy[:, :1] if self.initial_state == "first_frame" else 1.0
        m = smooth(energy, s, initial)
        alpha = ops.exp(ops.cast(self.log_alpha, "float32"))
        delta = ops.exp(ops.cast(self.log_delta, "float32"))
        r = ops.exp(ops.cast(self.log_r, "float32"))
        # As librosa: E * (eps + M)^-alpha via logs, and delta^r * expm1(r * log1p(x / delta))
        # instead of (x + delta)^r - delta^r, which cancels badly for small x.
        gained = energy * ops.exp(-alpha * ops.log(self.eps + m))
        return ops.power(delta, r) * ops.expm1(r * ops.log1p(gained / delta))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            alpha=self.alpha_init,
            delta=self.delta_init,
            r=self.r_init,
            s=self.s_init,
            time_constant=self.time_constant,
            sr=self.sr,
            hop_length=self.hop_length,
            eps=self.eps,
            trainable_s=self.trainable_s,
            initial_state=self.initial_state,
        )
        return config
