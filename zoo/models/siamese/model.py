"""The ``siamese`` architecture: a shared encoder, a projection head, unit-length output.

One branch of a Siamese network is all a preset holds: every excerpt goes through the same
encoder (any registered backbone, up to one of its feature taps) and the same projection head
(dense layers, the last one linear), then `L2Normalize`. Similarity between two excerpts is the
dot product (cosine) of their outputs; the pair or triplet structure only exists in the loss
(`zoo.models.siamese.losses`) and the batch sampler (`zoo.models.siamese.samplers`).

The graph is flat, as `zoo.models.classifier` builds it: the encoder's layers keep their names,
so pretrained encoder weights copy over by name and its feature taps still work.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any

import keras
from keras import layers

from zoo.errors import PresetError
from zoo.models.musicnn.inference import VIEW_BACKENDS, musicnn_inference_view
from zoo.models.registry import Architecture, get_architecture, register
from zoo.models.siamese.descriptors import (
    JOINED,
    join_descriptors,
    parse_descriptors,
    with_descriptors_view,
)

PROJECTION = "projection"
FEATURE_NORMALIZE = "feature_normalize"
DEFAULT_ENCODER = {"architecture": "musicnn", "config": {"n_mels": 96, "n_frames": 187},
                   "feature": "penultimate"}


@keras.saving.register_keras_serializable(package="zoo")
class L2Normalize(layers.Layer):
    """Scale every vector along ``axis`` to unit Euclidean length.

    Args:
        axis: the axis to normalise.
        epsilon: floor of the squared norm (an all-zero row stays finite).

    Example:
        >>> L2Normalize()(np.array([[3.0, 4.0]], "float32")).numpy()
        array([[0.6, 0.8]], dtype=float32)
    """

    def __init__(self, axis: int = -1, epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)
        self.epsilon = float(epsilon)

    def call(self, x):
        squared = keras.ops.sum(keras.ops.square(x), axis=self.axis, keepdims=True)
        return x * keras.ops.rsqrt(keras.ops.maximum(squared, self.epsilon))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon}


def projection_dense_name(i: int) -> str:
    return f"projection_dense_{i}"


def apply_projection(x, projection_units: Sequence[int] = (256, 128), activation: str = "relu",
                     dropout: float = 0.0, normalize_feature: bool = False):
    """The projection head on an embedding tensor: dense layers (``activation`` on all but the
    last, which is linear), then `L2Normalize` named ``"projection"``.

    Args:
        x: ``(batch, dim)`` tensor.
        projection_units: widths of the dense layers; empty: normalise ``x`` itself.
        activation: of the hidden dense layers.
        dropout: rate before every dense layer (training only).
        normalize_feature: scale ``x`` to unit length first (`L2Normalize` named
            ``"feature_normalize"``): a head fitted on unit vectors, such as a whitening map,
            needs its input as it was fitted.
    """
    units = [int(u) for u in projection_units]
    if normalize_feature:
        x = L2Normalize(name=FEATURE_NORMALIZE)(x)
    for i, width in enumerate(units):
        if dropout:
            x = layers.Dropout(dropout, name=f"projection_dropout_{i}")(x)
        last = i == len(units) - 1
        x = layers.Dense(width, activation=None if last else activation,
                         name=projection_dense_name(i))(x)
    return L2Normalize(name=PROJECTION)(x)


def build_projection_head(input_dim: int, projection_units: Sequence[int] = (256, 128),
                          activation: str = "relu", dropout: float = 0.0,
                          normalize_feature: bool = False,
                          name: str = "projection_head") -> keras.Model:
    """The head alone, on cached encoder embeddings; its layer names equal those in
    `build_siamese`, so trained weights copy over by name
    (`zoo.models.classifier.copy_weights_by_name`).

    Example:
        >>> build_projection_head(200).output_shape
        (None, 128)
    """
    inputs = keras.Input((input_dim,), name="embedding")
    out = apply_projection(inputs, projection_units, activation, dropout, normalize_feature)
    return keras.Model(inputs, out, name=name)


def _encoder_parts(encoder: dict[str, Any]):
    arch = get_architecture(encoder["architecture"])
    config = dict(encoder.get("config", {}))
    feature = encoder.get("feature") or arch.embedding
    features, _ = arch.taps(config)
    if feature not in features:
        raise PresetError(f"encoder {encoder['architecture']!r} has no feature {feature!r}; "
                          f"it has: {', '.join(features)}")
    return arch, config, dict(features), feature


def build_siamese(encoder: dict[str, Any] | None = None,
                  projection_units: Sequence[int] = (256, 128), activation: str = "relu",
                  dropout: float = 0.0, normalize_feature: bool = False,
                  descriptors: dict[str, Any] | None = None, n_tags: int = 0,
                  include_top: bool = True, name: str = "siamese") -> keras.Model:
    """One Siamese branch on log-mel input: encoder -> projection head -> unit vector.

    Args:
        encoder: ``{"architecture": "musicnn", "config": {...}, "feature": "penultimate"}``: a
            registered architecture, its arguments and the feature tap the head reads (default:
            the architecture's embedding). A 3-D or 4-D tap is flattened.
        projection_units: widths of the head's dense layers (the last is the output size).
        activation: of the hidden dense layers.
        dropout: before every dense layer of the head.
        normalize_feature: scale the encoder feature to unit length before the head (a head
            fitted on unit vectors, e.g. the PCA whitening of ``musicnn_msd_whitened``).
        descriptors: join the projection with harmony / rhythm descriptors of the input
            (`zoo.models.siamese.descriptors`); the output is then the joined unit vector
            (layer ``"similarity_embedding"``). None: the projection alone.
        n_tags: ignored (a similarity model has no tags); accepted so that the preset pipeline
            can build it like the taggers.
        include_top: ignored: the output is always the unit-length projection.
        name: model name.

    Returns:
        A log-mel-in Keras model ``(batch, frames, mels) -> (batch, projection_units[-1])``.

    Raises:
        PresetError: unknown encoder architecture or feature.

    Example:
        >>> build_siamese().output_shape
        (None, 128)
    """
    del n_tags, include_top
    arch, config, features, feature = _encoder_parts(encoder or DEFAULT_ENCODER)
    # The encoder's own tag layer is built but left out of the graph (not an output's ancestor).
    inner = arch.build(**config, n_tags=1, include_top=True, name=f"{name}_encoder")
    x = inner.get_layer(features[feature]).output
    if len(x.shape) > 2:
        x = layers.Flatten(name="encoder_flatten")(x)
    out = apply_projection(x, projection_units, activation, dropout, normalize_feature)
    if descriptors:
        out = join_descriptors(inner.input, out, descriptors)
    return keras.Model(inner.input, out, name=name)


@functools.lru_cache(maxsize=16)
def _layers_up_to(encoder_json: str) -> frozenset[str]:
    """Names of the encoder layers that its chosen feature is computed from (itself included)."""
    arch, config, features, feature = _encoder_parts(json.loads(encoder_json))
    inner = arch.build(**config, n_tags=1, include_top=True, name="encoder_probe")
    upstream = keras.Model(inner.input, inner.get_layer(features[feature]).output)
    return frozenset(layer.name for layer in upstream.layers)


def siamese_features(config: dict[str, Any]) -> tuple[dict[str, str], str]:
    """Feature taps of a siamese model: the encoder's plus ``"projection"`` (the unit-length
    output), which is also its embedding. An encoder read at an earlier tap than its own
    embedding (e.g. musicnn's ``mean_pool``) has only the taps that tap is computed from: the
    later layers are not part of the model. A model with descriptors also has ``"chroma"`` /
    ``"rhythm"`` and their join with the projection, ``"similarity_embedding"``: its embedding."""
    encoder = config.get("encoder") or DEFAULT_ENCODER
    arch, _, features, feature = _encoder_parts(encoder)
    if feature != arch.embedding:
        kept = _layers_up_to(json.dumps(encoder, sort_keys=True))
        features = {name: layer for name, layer in features.items() if layer in kept}
    features[PROJECTION] = PROJECTION
    if config.get("descriptors"):
        _, parts = parse_descriptors(config["descriptors"])
        features.update({part: part for part in parts})
        features[JOINED] = JOINED
        return features, JOINED
    return features, PROJECTION


def siamese_inference_view(backbone: keras.Model, outputs) -> keras.Model:
    """musicnn's fast inference graph for the encoder, with the descriptors (if any) beside it."""
    return with_descriptors_view(backbone, outputs, musicnn_inference_view, PROJECTION)


# Encoder taps (from the config) plus the unit-length "projection", its embedding; the
# encoder's inference graph applies as for the classifier.
register("siamese", Architecture(build_siamese, {}, PROJECTION, resolve=siamese_features,
                                 inference=siamese_inference_view,
                                 inference_backends=VIEW_BACKENDS))
