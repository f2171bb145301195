"""sampleCNN (Lee, Park, Kim & Nam, 2017): a deep 1-D CNN on the raw waveform, filters of 3 samples.

The "3^9 model" of the paper takes 59,049 = 3^10 samples: a strided stem convolution (3 samples,
stride 3) gives 3^9 = 19,683 frames; nine blocks of conv(3) -> batch norm -> ReLU -> max-pool(3)
divide that by 3 each, down to one frame; a 1x1 convolution (here a dense layer on that single
frame: the same weights and the same function), dropout and a sigmoid tag layer follow. With
``depth`` blocks the input is ``3 ** (depth + 1)`` samples.

Default filters (the paper's table): stem 128; blocks 128, 128, 256, 256, 256, 256, 256, 256, 512;
1x1 conv 512. Every convolution has a bias and is followed by batch norm and ReLU; the parameter
count is `samplecnn_param_count` (1,875,762 for 50 tags, of which 5,888 are the batch norms'
moving statistics).

The model takes the waveform patch ``(batch, 3 ** (depth + 1))`` directly: there is no front-end
layer (a preset declares ``"frontend": "waveform"``, see `zoo.presets.Preprocessing`).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

KERNEL = 3  # every conv and pool works on 3 neighbours ("sample-level" filters)
STEM_FILTERS = 128
EMBEDDING_UNITS = 512
# Blocks of the paper's 3^9 model.
PAPER_FILTERS = (128, 128, 256, 256, 256, 256, 256, 256, 512)
PAPER_DEPTH = len(PAPER_FILTERS)


def default_filters(depth: int) -> tuple[int, ...]:
    """The paper's filter pattern for ``depth`` blocks: 128 for the first two, 512 for the last,
    256 in between (for depth 9 exactly the paper's table)."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    return tuple(128 if i < 2 else 512 if i == depth - 1 else 256 for i in range(depth))


def input_samples(depth: int) -> int:
    """Samples of one input patch for ``depth`` blocks: ``3 ** (depth + 1)`` (59,049 for 9)."""
    return KERNEL ** (depth + 1)


def samplecnn_features(depth: int) -> dict[str, str]:
    """Feature taps of a sampleCNN with ``depth`` blocks -> the layer that outputs each.

    ``stem`` (``(3^depth, stem_filters)``), ``block1`` .. ``block<depth>`` (after each max-pool),
    ``pooled`` (the last block's single frame, flattened), ``embedding`` (the 1x1 conv, after batch
    norm and ReLU: what ``include_top=False`` returns).
    """
    taps = {"stem": "stem_relu"}
    taps.update({f"block{i}": f"block{i}_pool" for i in range(1, depth + 1)})
    taps.update({"pooled": "pooled", "embedding": "embedding"})
    return taps


SAMPLECNN_FEATURES = samplecnn_features(PAPER_DEPTH)


def _resolve(depth: int | None, filters: Sequence[int] | None) -> tuple[int, tuple[int, ...]]:
    if filters is None:
        depth = PAPER_DEPTH if depth is None else int(depth)
        return depth, default_filters(depth)
    filters = tuple(int(f) for f in filters)
    if depth is not None and int(depth) != len(filters):
        raise ValueError(f"depth={depth} but {len(filters)} block filters given: {filters}")
    if not filters or min(filters) < 1:
        raise ValueError(f"filters must be one positive count per block, got {filters}")
    return len(filters), filters


def samplecnn_param_count(n_tags: int = 50, depth: int | None = None,
                          filters: Sequence[int] | None = None,
                          stem_filters: int = STEM_FILTERS,
                          embedding_units: int = EMBEDDING_UNITS) -> int:
    """Parameters (weights, biases and batch-norm statistics) of `build_samplecnn` with these
    arguments, from the layer shapes: conv ``3 * c_in * c_out + c_out``, batch norm ``4 * c``
    (gamma, beta, moving mean and variance), dense ``c_in * c_out + c_out``.

    Example:
        >>> samplecnn_param_count()
        1875762
    """
    depth, filters = _resolve(depth, filters)
    total = KERNEL * 1 * stem_filters + stem_filters + 4 * stem_filters
    c_in = stem_filters
    for c_out in filters:
        total += KERNEL * c_in * c_out + c_out + 4 * c_out
        c_in = c_out
    total += c_in * embedding_units + embedding_units + 4 * embedding_units
    return total + embedding_units * n_tags + n_tags


def build_samplecnn(
    n_tags: int = 50,
    depth: int | None = None,
    filters: Sequence[int] | None = None,
    stem_filters: int = STEM_FILTERS,
    embedding_units: int = EMBEDDING_UNITS,
    dropout: float = 0.5,
    n_samples: int | None = None,
    bn_momentum: float = 0.99,
    include_top: bool = True,
    name: str = "samplecnn",
) -> keras.Model:
    """Build a sampleCNN on raw waveform patches.

    Args:
        n_tags: units of the sigmoid tag layer.
        depth: conv/pool blocks (9: the "3^9 model"); default ``len(filters)``, or 9.
        filters: filters of each block (default: `default_filters`); its length is the depth.
        stem_filters: filters of the strided stem convolution.
        embedding_units: filters of the 1x1 convolution (the embedding).
        dropout: before the tag layer (training only).
        n_samples: expected patch length; checked against ``3 ** (depth + 1)`` (a preset passes
            its ``patch_samples`` so a mismatched config fails here, not inside Keras).
        bn_momentum: of the batch norms' moving statistics.
        include_top: end with the tag probabilities (True) or the embedding (False).
        name: model name.

    Returns:
        A Keras model ``(batch, 3 ** (depth + 1))`` float32 waveform -> ``(batch, n_tags)``
        (or ``(batch, embedding_units)``). Layers are named for `samplecnn_features`.

    Raises:
        ValueError: inconsistent depth/filters, or ``n_samples`` not ``3 ** (depth + 1)``.

    Example:
        >>> build_samplecnn(filters=(8, 8, 8), stem_filters=8, embedding_units=16,
        ...                 n_tags=5).input_shape
        (None, 81)
    """
    depth, filters = _resolve(depth, filters)
    length = input_samples(depth)
    if n_samples is not None and int(n_samples) != length:
        raise ValueError(
            f"a sampleCNN of depth {depth} takes patches of 3^{depth + 1} = {length} samples, "
            f"got n_samples={n_samples}; the patch must be 3 ** (depth + 1) samples")

    def bn(label: str) -> layers.BatchNormalization:
        return layers.BatchNormalization(momentum=bn_momentum, name=label)

    waveform = keras.Input((length,), name="samples")
    x = layers.Reshape((length, 1), name="add_channel")(waveform)
    x = layers.Conv1D(stem_filters, KERNEL, strides=KERNEL, name="stem_conv")(x)
    x = bn("stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for i, width in enumerate(filters, start=1):
        x = layers.Conv1D(width, KERNEL, padding="same", name=f"block{i}_conv")(x)
        x = bn(f"block{i}_bn")(x)
        x = layers.ReLU(name=f"block{i}_relu")(x)
        x = layers.MaxPooling1D(KERNEL, name=f"block{i}_pool")(x)
    # One frame is left: the paper's 1x1 convolution on it is a dense layer.
    x = layers.Flatten(name="pooled")(x)
    x = layers.Dense(embedding_units, name="embedding_dense")(x)
    x = bn("embedding_bn")(x)
    embedding = layers.ReLU(name="embedding")(x)
    if not include_top:
        return keras.Model(waveform, embedding, name=name)
    x = layers.Dropout(dropout, name="dropout")(embedding)
    logits = layers.Dense(n_tags, name="logits")(x)
    tags = layers.Activation("sigmoid", name="tags")(logits)
    return keras.Model(waveform, tags, name=name)


def samplecnn_taps(config: dict) -> tuple[dict[str, str], str]:
    """``(features, embedding)`` of a sampleCNN built with ``config`` (the taps depend on its
    depth); for `zoo.models.registry`."""
    depth, _ = _resolve(config.get("depth"), config.get("filters"))
    return samplecnn_features(depth), "embedding"
