"""Inference-only musicnn graph: the model's own function and variables, ~1.5x faster on CPU.

Every front-end branch of musicnn is conv -> ReLU -> batch norm -> max over frequency. Two rewrites
make it cheap without changing what it computes:

* Pool first. Batch norm after ReLU is a per-channel affine map, monotone in its input, and float
  rounding keeps it monotone, so the max over frequency can be taken straight off the conv (with
  the sign of the BN scale folded into the kernel, a negative scale takes the minimum). ReLU and BN
  then run on ``(time, channels)`` instead of ``(time, frequency, channels)``: the same numbers,
  bit for bit, for a fraction of the memory traffic.
* Temporal convs as polyphase convs. A one-channel conv along time with a 32-128 tap kernel is a
  shape oneDNN vectorises poorly (~35 GFLOP/s here). Cutting time into blocks of ``phases``
  frames makes it a dense conv with ``phases`` input and ``phases * filters`` output channels
  (the kernel rearranged, zero where a tap falls outside it), ~4x faster. Sums run in another
  order: outputs differ from the Keras graph by float rounding (~1e-6), not more.

Batch norm always uses its moving statistics here: training needs the statistics of the
un-pooled maps, so train the model from `zoo.load`, never this view. The view shares that model's
layers and variables, so it always computes with the current weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from zoo.models.musicnn.musicnn import FRONTEND_TAPS, musicnn_front_end

DEFAULT_PHASES = 8  # fastest block length here for 32-128 tap kernels (scripts/bench_serving.py)
# Where this graph beats the plain one (scripts/bench_musicnn.py --backend): on JAX, XLA runs the
# plain graph faster.
VIEW_BACKENDS = ("tensorflow", "torch")


def _bn_sign(batch_norm: layers.BatchNormalization) -> Any:
    """+1 where the BN scale gamma / sqrt(var + eps) is >= 0, -1 where it is negative."""
    return ops.where(batch_norm.gamma >= 0, 1.0, -1.0)


def _relu_bn(pooled: Any, sign: Any, batch_norm: layers.BatchNormalization) -> Any:
    """Undo the sign fold, then the branch's ReLU and batch norm (inference statistics)."""
    return ops.batch_normalization(
        ops.relu(pooled * sign), batch_norm.moving_mean, batch_norm.moving_variance, axis=-1,
        offset=batch_norm.beta, scale=batch_norm.gamma, epsilon=batch_norm.epsilon)


class _PooledBranch(layers.Layer):
    """A front-end branch wrapping the original conv and batch-norm layers (their variables)."""

    def __init__(self, conv: layers.Conv2D, batch_norm: layers.BatchNormalization,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if conv.activation is not keras.activations.relu or not conv.use_bias:
            raise ValueError(f"{conv.name}: expected a biased conv with a ReLU activation")
        self.conv = conv
        self.batch_norm = batch_norm

    def _build_sublayers(self, conv_input_shape: tuple) -> None:
        if not self.conv.built:  # only after deserialisation: a shared conv is built already
            self.conv.build(conv_input_shape)
        if not self.batch_norm.built:
            self.batch_norm.build((None, None, None, self.conv.filters))

    def call(self, x: Any) -> Any:
        raise NotImplementedError

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], input_shape[1], self.conv.filters)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(),
                "conv": keras.saving.serialize_keras_object(self.conv),
                "batch_norm": keras.saving.serialize_keras_object(self.batch_norm)}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> _PooledBranch:
        config = dict(config)
        config["conv"] = keras.saving.deserialize_keras_object(config["conv"])
        config["batch_norm"] = keras.saving.deserialize_keras_object(config["batch_norm"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="zoo")
class TimbralBranch(_PooledBranch):
    """musicnn's timbral branch, pooled before normalising. Inference only.

    Computes ``max_freq(BN(ReLU(conv(pad_time(x)))))`` as ``BN(ReLU(max_freq(conv(x))))`` with the
    BN scale's sign folded into the kernel: equal to the original bit for bit.

    Args:
        conv: the branch's ``Conv2D`` (kernel ``(7, height, 1, filters)``, valid, ReLU).
        batch_norm: the branch's ``BatchNormalization``.
        time_padding: ``(before, after)`` zero frames, as the original's ``ZeroPadding2D``.

    Example:
        >>> branch = TimbralBranch(backbone.get_layer("timbral_40_conv"),
        ...                        backbone.get_layer("timbral_40_bn"), time_padding=(3, 3))
        >>> branch(tf.zeros([1, 187, 96, 1])).shape
        TensorShape([1, 187, 204])
    """

    def __init__(self, conv: layers.Conv2D, batch_norm: layers.BatchNormalization,
                 time_padding: tuple[int, int] = (3, 3), **kwargs: Any) -> None:
        super().__init__(conv, batch_norm, **kwargs)
        self.time_padding = tuple(int(p) for p in time_padding)

    def build(self, input_shape: tuple) -> None:
        frames = None if input_shape[1] is None else input_shape[1] + sum(self.time_padding)
        self._build_sublayers((input_shape[0], frames, *input_shape[2:]))

    def call(self, x: Any) -> Any:
        sign = _bn_sign(self.batch_norm)
        # Frequency first: the max over it is then a reduction over an outer axis (~2x faster).
        x = ops.pad(ops.transpose(x, [0, 2, 1, 3]),
                    [[0, 0], [0, 0], list(self.time_padding), [0, 0]])
        kernel = ops.transpose(self.conv.kernel * sign, [1, 0, 2, 3])
        y = ops.conv(x, kernel, 1, "valid") + self.conv.bias * sign
        return _relu_bn(ops.max(y, axis=1), sign, self.batch_norm)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "time_padding": list(self.time_padding)}


def polyphase_index(length: int, phases: int) -> np.ndarray:
    """Kernel-tap index of every weight of the polyphase kernel (``length`` = no tap).

    Output frame ``phases * b + p`` sums input frames ``phases * (b + j) + q`` with tap
    ``phases * j + q - p``: a ``(taps, phases [q], phases [p])`` table, ``taps`` blocks long.

    Example:
        >>> polyphase_index(3, 2)[..., 0].tolist()   # output phase 0 uses taps 0, 1 | 2, -
        [[0, 1], [2, 3]]
    """
    taps = -(-(length + phases - 1) // phases)
    j, q, p = np.meshgrid(np.arange(taps), np.arange(phases), np.arange(phases), indexing="ij")
    tap = phases * j + q - p
    return np.where((tap >= 0) & (tap < length), tap, length).astype(np.int32)


@keras.saving.register_keras_serializable(package="zoo")
class TemporalBranch(_PooledBranch):
    """musicnn's temporal branch as a polyphase conv, pooled before normalising. Inference only.

    Computes the original's ``max_freq(BN(ReLU(conv_time(x))))`` ("same" padding along time, one
    mel bin wide) with time cut into blocks of ``phases`` frames (module docstring).

    Args:
        conv: the branch's ``Conv2D`` on the ``(batch, n_mels, frames, 1)`` layout (kernel
            ``(1, length, 1, filters)``, "same", ReLU).
        batch_norm: the branch's ``BatchNormalization``.
        phases: frames per block.

    Example:
        >>> branch = TemporalBranch(backbone.get_layer("temporal_128_conv"),
        ...                         backbone.get_layer("temporal_128_bn"))
        >>> branch(tf.zeros([1, 187, 96, 1])).shape    # takes (batch, frames, n_mels, 1)
        TensorShape([1, 187, 51])
    """

    def __init__(self, conv: layers.Conv2D, batch_norm: layers.BatchNormalization,
                 phases: int = DEFAULT_PHASES, **kwargs: Any) -> None:
        super().__init__(conv, batch_norm, **kwargs)
        if conv.kernel_size[0] != 1 or conv.padding != "same":
            raise ValueError(f"{conv.name}: expected a (1, length) kernel with 'same' padding")
        self.phases = int(phases)
        self.length = int(conv.kernel_size[1])
        self._index = polyphase_index(self.length, self.phases)

    def build(self, input_shape: tuple) -> None:
        self._build_sublayers((input_shape[0], input_shape[2], input_shape[1], 1))

    def call(self, x: Any) -> Any:
        sign = _bn_sign(self.batch_norm)
        phases, taps, filters = self.phases, self._index.shape[0], self.conv.filters
        kernel = ops.reshape(self.conv.kernel, [self.length, filters]) * sign
        kernel = ops.concatenate([kernel, ops.zeros([1, filters], kernel.dtype)], 0)  # `length`
        kernel = ops.reshape(ops.take(kernel, self._index, axis=0),
                             [taps, phases, phases * filters])

        shape = ops.shape(x)
        batch, frames, n_mels = shape[0], shape[1], x.shape[2]
        rows = ops.reshape(ops.transpose(x[..., 0], [0, 2, 1]), [batch * n_mels, frames])
        blocks = (frames + phases - 1) // phases
        before = (self.length - 1) // 2  # where TF's "same" puts the odd frame: after
        rows = ops.pad(rows, [[0, 0], [before, (blocks + taps - 1) * phases - frames - before]])
        rows = ops.reshape(rows, [batch * n_mels, blocks + taps - 1, phases])
        y = ops.conv(rows, kernel, 1, "valid")  # (batch * n_mels, blocks, phases * filters)
        y = ops.max(ops.reshape(y, [batch, n_mels, blocks * phases, filters]), axis=1)
        return _relu_bn(y[:, :frames] + self.conv.bias * sign, sign, self.batch_norm)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "phases": self.phases}


def _pooled_name(conv: layers.Layer) -> str:
    return f"{conv.name.removesuffix('_conv')}_pooled"


def supports_inference_view(backbone: keras.Model) -> bool:
    """True for a musicnn backbone built by `build_musicnn` (the layers the view rewrites)."""
    try:
        musicnn_front_end(backbone)
    except ValueError:
        return False
    return True


def musicnn_inference_view(backbone: keras.Model, outputs: Mapping[str, str] | str,
                           phases: int = DEFAULT_PHASES) -> keras.Model:
    """A log-mel -> ``outputs`` model computing what ``backbone`` computes, faster. Inference only.

    Args:
        backbone: a musicnn backbone (`build_musicnn`, any size).
        outputs: output name -> the backbone layer whose output it is (a dict), or one layer
            name (a single output). Any layer from the front-end concatenation ("timbral",
            "temporal", "frontend") onwards.
        phases: block length of the temporal convs (`TemporalBranch`).

    Returns:
        A Keras model sharing the backbone's layers and variables.

    Raises:
        ValueError: not a musicnn backbone, or an output inside a front-end branch.

    Example:
        >>> fast = musicnn_inference_view(backbone, {"tags": "tags", "embedding": "penultimate"})
        >>> fast(logmel)["tags"].shape
        TensorShape([1, 50])
    """
    front_end = musicnn_front_end(backbone)  # ValueError if not a musicnn
    wanted = {outputs: outputs} if isinstance(outputs, str) else dict(outputs)
    names = {layer.name for layer in backbone.layers}
    inside = [layer for layer in wanted.values()
              if layer not in names or layer in front_end.inner]
    if inside:
        raise ValueError(f"the inference view starts at the front-end concatenation; it cannot "
                         f"output {sorted(inside)}")

    logmel = keras.Input(backbone.input_shape[1:], name="logmel")
    x = front_end.input_bn(front_end.add_channel(logmel))
    timbral = [TimbralBranch(conv, bn, pad.padding[0], name=_pooled_name(conv))(x)
               for pad, conv, bn in front_end.timbral]
    temporal = [TemporalBranch(conv, bn, phases, name=_pooled_name(conv))(x)
                for conv, bn in front_end.temporal]
    # New (weightless) concatenations: reusing the originals would add call nodes to them.
    front = {"timbral": layers.Concatenate(name="timbral_fast")(timbral),
             "temporal": layers.Concatenate(name="temporal_fast")(temporal)}
    front["frontend"] = layers.Concatenate(name="frontend_fast")([front["timbral"],
                                                                   front["temporal"]])

    later = sorted({layer for layer in wanted.values() if layer not in FRONTEND_TAPS})
    tensors = dict(front)
    if later:
        get = backbone.get_layer
        tail = keras.Model(front_end.concatenation.output, {n: get(n).output for n in later},
                           name=f"{backbone.name}_after_frontend")
        tensors.update(tail(front["frontend"]))
    result = (tensors[wanted[outputs]] if isinstance(outputs, str)
              else {key: tensors[layer] for key, layer in wanted.items()})
    return keras.Model(logmel, result, name=f"{backbone.name}_inference")
