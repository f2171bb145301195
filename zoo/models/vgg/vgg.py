"""The VGG-like baseline that musicnn was published with: five 3x3 conv blocks on log-mel patches.

As in the original TF1 graph, each block is conv -> ReLU -> BatchNorm -> max-pool, with dropout
between blocks; the pools shrink a 187 x 96 patch to 2 x 1 so the model needs exactly 187 frames.
"""

from __future__ import annotations

import keras
from keras import layers

from zoo.models.musicnn.musicnn import BN_EPSILON, BN_MOMENTUM

# (pool_size, strides) of blocks 1..5, as in the original.
VGG_POOLS = (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)),
             ((4, 4), (4, 4)))
VGG_FEATURES = {f"pool{i}": f"pool{i}" for i in range(1, 6)}


def build_vgg(
    n_mels: int = 96,
    n_frames: int = 187,
    n_tags: int = 50,
    filters: int = 128,
    include_top: bool = True,
    dropout: float = 0.25,
    top_dropout: float = 0.5,
    name: str = "vgg",
) -> keras.Model:
    """Build the musicnn VGG baseline on log-mel input.

    Args:
        n_mels: mel bands of the input.
        n_frames: frames per patch (fixed: the flattened pool5 feeds a dense layer).
        n_tags: size of the tag layer.
        filters: filters of every conv layer (128 in the published models).
        include_top: end with the sigmoid tag layer (True) or the flattened pool5 (False).
        dropout: dropout after pools 1-4 (training only).
        top_dropout: dropout before the tag layer (training only).
        name: model name.

    Returns:
        A Keras model mapping ``(batch, n_frames, n_mels)`` to ``(batch, n_tags)``; layers
        ``pool1`` ... ``pool5`` are the original's feature taps.

    Example:
        >>> build_vgg(n_tags=10).output_shape
        (None, 10)
    """
    logmel = keras.Input((n_frames, n_mels), name="logmel")
    x = layers.Reshape((n_frames, n_mels, 1), name="add_channel")(logmel)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name="input_bn")(x)
    for i, (pool, strides) in enumerate(VGG_POOLS, start=1):
        if i > 1:
            x = layers.Dropout(dropout, name=f"pool{i - 1}_dropout")(x)
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                      name=f"conv{i}_bn")(x)
        x = layers.MaxPooling2D(pool, strides, name=f"pool{i}")(x)
    flat = layers.Flatten(name="flatten")(x)
    if not include_top:
        return keras.Model(logmel, flat, name=name)
    y = layers.Dropout(top_dropout, name="flatten_dropout")(flat)
    logits = layers.Dense(n_tags, name="logits")(y)
    tags = layers.Activation("sigmoid", name="tags")(logits)
    return keras.Model(logmel, tags, name=name)
