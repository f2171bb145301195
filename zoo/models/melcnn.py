"""A small mel-spectrogram CNN to train from scratch (e.g. keyword spotting on 1-s clips).

Four blocks of 3x3 conv + batch norm + ReLU + 2x2 max pooling, global average pooling, one dense
layer (the embedding) and the output layer: about 200k parameters with the defaults. A batch norm
on the input puts every log compression (log, dB, PCEN, ...) on a comparable scale, so the choice
of front-end is what differs between runs, not the input's range.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from zoo.models.registry import Architecture, register

MELCNN_FEATURES = {"block1": "block1_pool", "block2": "block2_pool", "block3": "block3_pool",
                   "block4": "block4_pool", "pooled": "global_pool", "embedding": "embedding"}


def build_melcnn(n_mels: int = 40, n_frames: int | None = 101, n_tags: int = 12,
                 filters: Sequence[int] = (32, 64, 96, 128), dense_units: int = 128,
                 dropout: float = 0.3, activation: str = "softmax", include_top: bool = True,
                 bn_momentum: float = 0.9, name: str = "melcnn") -> keras.Model:
    """Build the CNN on log-mel input ``(batch, n_frames, n_mels)``.

    Args:
        n_mels: mel bands.
        n_frames: frames per patch (``None``: any length >= 16 frames).
        n_tags: classes.
        filters: filters of each conv block (one 2x2 pooling per block).
        dense_units: width of the embedding layer.
        dropout: before the output layer.
        activation: of the output layer.
        include_top: end with the class probabilities (True) or the embedding (False).
        bn_momentum: of the batch norms' moving statistics. Keras' 0.99 needs ~500 steps to
            forget its initial (0, 1) statistics: with ~50 steps per epoch, validation would run
            on wrong statistics for the first ten epochs (seen as validation stuck at chance
            while training accuracy rises).
        name: model name.

    Returns:
        A Keras model.

    Example:
        >>> build_melcnn(n_tags=12).count_params() < 300_000
        True
    """
    logmel = keras.Input((n_frames, n_mels), name="logmel")
    x = layers.Reshape((-1, n_mels, 1), name="add_channel")(logmel)
    x = layers.BatchNormalization(momentum=bn_momentum, name="input_bn")(x)
    for i, width in enumerate(filters, start=1):
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"block{i}_conv")(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"block{i}_bn")(x)
        x = layers.ReLU(name=f"block{i}_relu")(x)
        # "same" pooling keeps odd sizes (101 frames) from dropping the last frame.
        x = layers.MaxPooling2D(2, padding="same", name=f"block{i}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    x = layers.Dense(dense_units, activation="relu", name="embedding")(x)
    if not include_top:
        return keras.Model(logmel, x, name=name)
    x = layers.Dropout(dropout, name="dropout")(x)
    tags = layers.Dense(n_tags, activation=activation, name="tags")(x)
    return keras.Model(logmel, tags, name=name)


register("melcnn", Architecture(build_melcnn, MELCNN_FEATURES, "embedding"))
