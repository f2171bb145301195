"""Fine-tuning heads: a pretrained backbone's embedding followed by a small dense classifier.

The ``classifier`` architecture rebuilds any registered backbone architecture up to its embedding
layer and puts the head on it, in one flat functional graph: the backbone's layers keep their
names, so pretrained weights transfer by name and the feature taps of the backbone still work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import layers

from zoo.models.musicnn.inference import VIEW_BACKENDS, musicnn_inference_view
from zoo.models.registry import Architecture, get_architecture, register

HEAD_OUTPUT = "head_tags"


def head_dense_name(i: int) -> str:
    return f"head_dense_{i}"


def apply_head(x, n_tags: int, head_units: Sequence[int] = (), dropout: float = 0.3,
               activation: str = "softmax", include_top: bool = True):
    """Apply the dense head to an embedding tensor.

    Args:
        x: ``(batch, dim)`` embedding tensor.
        n_tags: number of classes.
        head_units: widths of the hidden dense layers (ReLU), possibly none.
        dropout: dropout rate before every dense layer.
        activation: of the output layer (``"softmax"`` for single-label tasks).
        include_top: return the class probabilities (True) or the last hidden layer (False).

    Returns:
        The output tensor.
    """
    for i, units in enumerate(head_units):
        x = layers.Dropout(dropout, name=f"head_dropout_{i}")(x)
        x = layers.Dense(int(units), activation="relu", name=head_dense_name(i))(x)
    if not include_top:
        return x
    x = layers.Dropout(dropout, name="head_dropout")(x)
    return layers.Dense(n_tags, activation=activation, name=HEAD_OUTPUT)(x)


def build_head(input_dim: int, n_tags: int, head_units: Sequence[int] = (), dropout: float = 0.3,
               activation: str = "softmax", name: str = "head") -> keras.Model:
    """The head alone, on cached embeddings; its layer names equal those in `build_classifier`,
    so trained weights copy over by name (`copy_weights_by_name`).

    Example:
        >>> build_head(200, 7, [64]).output_shape
        (None, 7)
    """
    inputs = keras.Input((input_dim,), name="embedding")
    return keras.Model(inputs, apply_head(inputs, n_tags, head_units, dropout, activation),
                       name=name)


def _backbone_parts(backbone: dict[str, Any]):
    arch = get_architecture(backbone["architecture"])
    return arch, dict(backbone.get("config", {}))


def build_classifier(backbone: dict[str, Any], n_tags: int, head_units: Sequence[int] = (),
                     dropout: float = 0.3, activation: str = "softmax", include_top: bool = True,
                     name: str = "classifier") -> keras.Model:
    """A registered backbone up to its embedding, then a dense head.

    Args:
        backbone: ``{"architecture": "musicnn", "config": {...}}``: the backbone architecture
            and its arguments (those of the preset it was fine-tuned from).
        n_tags: number of classes.
        head_units: hidden dense layers of the head.
        dropout: head dropout.
        activation: output activation.
        include_top: end with the class probabilities (True) or the embedding (False).
        name: model name.

    Returns:
        A log-mel-in Keras model.

    Raises:
        PresetError: unknown backbone architecture.

    Example:
        >>> m = build_classifier({"architecture": "musicnn", "config": {}}, n_tags=7)
        >>> m.output_shape
        (None, 7)
    """
    arch, config = _backbone_parts(backbone)
    # The backbone's own tag layer is built but left out of the graph (not an output's ancestor).
    inner = arch.build(**config, n_tags=1, include_top=True, name=f"{name}_inner")
    features, embedding_name = arch.taps(config)  # some families' taps depend on the config
    embedding = inner.get_layer(features[embedding_name]).output
    if len(embedding.shape) > 2:  # e.g. vgg's pool5 (time, freq, channels): the head takes a vector
        embedding = layers.Flatten(name="embedding_flatten")(embedding)
    out = apply_head(embedding, n_tags, head_units, dropout, activation, include_top)
    return keras.Model(inner.input, out, name=name)


def classifier_features(config: dict[str, Any]) -> tuple[dict[str, str], str]:
    """Feature taps of a classifier: the backbone's plus ``"embedding"`` (the head's last hidden
    layer, or the backbone's embedding when the head has none)."""
    arch, backbone_config = _backbone_parts(config["backbone"])
    backbone_features, backbone_embedding = arch.taps(backbone_config)
    features = dict(backbone_features)
    units = config.get("head_units") or []
    features["embedding"] = (head_dense_name(len(units) - 1) if units
                             else backbone_features[backbone_embedding])
    return features, "embedding"


def copy_weights_by_name(source: keras.Model, target: keras.Model) -> list[str]:
    """Copy the weights of every layer of ``source`` that ``target`` has under the same name
    and with the same weight shapes.

    Returns:
        The names of the layers copied.
    """
    copied = []
    names = {layer.name: layer for layer in target.layers}
    for layer in source.layers:
        other = names.get(layer.name)
        if other is None or not layer.weights or len(layer.weights) != len(other.weights):
            continue
        if any(a.shape != b.shape for a, b in zip(layer.weights, other.weights, strict=True)):
            continue
        other.set_weights(layer.get_weights())
        copied.append(layer.name)
    return copied


# Features are resolved from the backbone named in the config. The flat graph keeps the
# encoder's layers under the encoder's names, so a musicnn encoder's inference graph applies
# to the whole model (any other encoder: ValueError, and callers use the plain graph).
register("classifier", Architecture(build_classifier, {}, "embedding",
                                    resolve=classifier_features,
                                    inference=musicnn_inference_view,
                                    inference_backends=VIEW_BACKENDS))
