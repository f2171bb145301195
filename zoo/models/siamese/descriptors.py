"""Harmony and rhythm parts next to a Siamese model's projection: one unit vector, one cosine.

A similarity preset may join its projection with descriptors of the same log-mel patch
(`zoo.layers.descriptors`: the pitch-class profile, the onset periodicity). Each part is made
unit length (the descriptors centred first, so that a flat profile means nothing) and scaled by
the square root of its weight; the parts are concatenated. The result has unit length, and the
cosine of two such vectors is the weighted sum of the parts' cosines, so catalogue search
(faiss inner product over segments) needs nothing new.

Architecture config (``architecture_config["descriptors"]``), for example::

    {"projection_weight": 0.6,
     "chroma": {"weight": 0.3, "n_mels": 96, "fmin": 0.0, "fmax": 8000.0,
                "pitch_fmin": 400.0, "pitch_fmax": 4000.0},
     "rhythm": {"weight": 0.1, "max_lag": 94}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from zoo.errors import PresetError
from zoo.layers.descriptors import MelChroma, OnsetAutocorrelation

CHROMA = "chroma"
RHYTHM = "rhythm"
JOINED = "similarity_embedding"
DESCRIPTOR_LAYERS = {CHROMA: MelChroma, RHYTHM: OnsetAutocorrelation}


@keras.saving.register_keras_serializable(package="zoo")
class WeightedUnitConcat(keras.layers.Layer):
    """Concatenate unit-length parts scaled by ``sqrt(weight)``: cosine = weighted sum of cosines.

    Args:
        weights: one per input part; normalised to sum to 1, so the output has unit length.
        center: per part, whether to remove its mean over features before normalising.
        epsilon: floor of a part's squared norm (an all-zero part stays zero).

    Example:
        >>> join = WeightedUnitConcat(weights=(0.75, 0.25), center=(False, True))
        >>> out = join([np.array([[3.0, 4.0]], "float32"), np.array([[1.0, 3.0]], "float32")])
        >>> np.round(out.numpy(), 3).tolist()
        [[0.52, 0.693, -0.354, 0.354]]
    """

    def __init__(self, weights: Sequence[float], center: Sequence[bool] | None = None,
                 epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        weights = [float(w) for w in weights]
        if not weights or any(w <= 0 or not np.isfinite(w) for w in weights):
            raise ValueError(f"weights must be positive numbers, got {weights}")
        total = sum(weights)
        self.part_weights = [w / total for w in weights]
        flags = center if center is not None else [False] * len(weights)
        self.center = [bool(c) for c in flags]
        if len(self.center) != len(self.part_weights):
            raise ValueError(f"{len(self.part_weights)} weights but {len(self.center)} "
                             "centre flags")
        self.epsilon = float(epsilon)

    def call(self, parts):
        ops = keras.ops
        if len(parts) != len(self.part_weights):
            raise ValueError(f"expected {len(self.part_weights)} parts, got {len(parts)}")
        scaled = []
        for x, weight, center in zip(parts, self.part_weights, self.center, strict=True):
            if center:
                x = x - ops.mean(x, axis=-1, keepdims=True)
            squared = ops.sum(ops.square(x), axis=-1, keepdims=True)
            scale = ops.rsqrt(ops.maximum(squared, self.epsilon)) * float(np.sqrt(weight))
            scaled.append(x * scale)
        return ops.concatenate(scaled, axis=-1)

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], sum(int(s[-1]) for s in input_shapes))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "weights": list(self.part_weights),
                "center": list(self.center), "epsilon": self.epsilon}


def parse_descriptors(descriptors: Mapping[str, Any]) -> tuple[float, dict[str, dict]]:
    """``(projection weight, {part: (weight, layer kwargs)})`` from a preset's config.

    Raises:
        PresetError: an unknown part, a missing or non-positive weight.
    """
    descriptors = dict(descriptors)
    projection_weight = descriptors.pop("projection_weight", None)
    unknown = set(descriptors) - set(DESCRIPTOR_LAYERS)
    if unknown:
        raise PresetError(f"unknown descriptors {sorted(unknown)}; known: "
                          f"{sorted(DESCRIPTOR_LAYERS)} and 'projection_weight'")
    parts = {}
    for name in DESCRIPTOR_LAYERS:  # a fixed order: the layout of the joined vector
        if name in descriptors:
            kwargs = dict(descriptors[name])
            weight = kwargs.pop("weight", None)
            if not isinstance(weight, (int, float)) or weight <= 0:
                raise PresetError(f"descriptor {name!r} needs a positive 'weight', got {weight!r}")
            parts[name] = (float(weight), kwargs)
    if not isinstance(projection_weight, (int, float)) or projection_weight <= 0:
        raise PresetError("descriptors need a positive 'projection_weight', got "
                          f"{projection_weight!r}")
    return float(projection_weight), parts


def join_descriptors(logmel, projection, descriptors: Mapping[str, Any]):
    """The joined unit vector (layer `JOINED`) of ``projection`` and the configured descriptors
    of ``logmel`` (layers named `CHROMA`, `RHYTHM`)."""
    projection_weight, parts = parse_descriptors(descriptors)
    tensors, weights, center = [projection], [projection_weight], [False]
    for name, (weight, kwargs) in parts.items():
        try:
            layer = DESCRIPTOR_LAYERS[name](**kwargs, name=name)
        except (TypeError, ValueError) as err:
            raise PresetError(f"descriptor {name!r}: {err}") from err
        tensors.append(layer(logmel))
        weights.append(weight)
        center.append(True)
    return WeightedUnitConcat(weights, center, name=JOINED)(tensors)


def descriptor_layer_names(backbone: keras.Model) -> list[str]:
    """The descriptor layers a built model has, in the order they are joined."""
    names = {layer.name for layer in backbone.layers}
    return [name for name in DESCRIPTOR_LAYERS if name in names]


def with_descriptors_view(backbone: keras.Model, outputs: Mapping[str, str] | str,
                          encoder_view, projection: str) -> keras.Model:
    """``encoder_view(backbone, outputs)`` for a model with descriptors, which read the log-mel
    input itself (not the encoder's output): the encoder's outputs come from its fast view, the
    descriptors and the join are fresh copies of the (weightless) originals.

    Raises:
        ValueError: from ``encoder_view`` (the caller then uses the plain view).
    """
    names = {layer.name for layer in backbone.layers}
    if JOINED not in names:
        return encoder_view(backbone, outputs)
    wanted = {outputs: outputs} if isinstance(outputs, str) else dict(outputs)
    mine = set(descriptor_layer_names(backbone)) | {JOINED}
    inner = {key: layer for key, layer in wanted.items() if layer not in mine}
    inner["__projection"] = projection
    encoder = encoder_view(backbone, inner)
    logmel = keras.Input(backbone.input_shape[1:], name="logmel")
    from_encoder = dict(encoder(logmel))
    by_layer = {layer: from_encoder[key] for key, layer in inner.items()}  # layer -> tensor
    parts = [by_layer[projection]]
    for name in descriptor_layer_names(backbone):
        by_layer[name] = _copy(backbone.get_layer(name))(logmel)
        parts.append(by_layer[name])
    by_layer[JOINED] = _copy(backbone.get_layer(JOINED))(parts)
    result = (by_layer[wanted[outputs]] if isinstance(outputs, str)
              else {key: by_layer[layer] for key, layer in wanted.items()})
    return keras.Model(logmel, result, name=f"{backbone.name}_inference")


def _copy(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A fresh twin of a weightless layer (reusing it would add a call node to the original)."""
    return type(layer).from_config({**layer.get_config(), "name": f"{layer.name}_view"})
