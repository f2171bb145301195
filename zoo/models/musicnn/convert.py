"""Read the authors' TF1 musicnn/vgg checkpoints into the Keras models of this package.

The TF1 graphs named their variables by creation order (``conv2d_3``, ``batch_normalization_7``),
so the mapping below is by that order, checked against every variable's shape; anything left over
or missing is an error, never a silent partial load.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import keras
import numpy as np

from zoo.errors import WeightsError

# Optimizer state the checkpoints carry besides the model.
_SKIP_SUFFIXES = ("/Adam", "/Adam_1")
_SKIP_NAMES = {"beta1_power", "beta2_power", "global_step"}

_BN_PARAMS = ("gamma", "beta", "moving_mean", "moving_variance")


def _musicnn_map() -> list[tuple[str, str]]:
    """(keras layer, TF1 scope) pairs in the original creation order."""
    convs = ["timbral_40_conv", "timbral_70_conv", "temporal_128_conv", "temporal_64_conv",
             "temporal_32_conv", "cnn1_conv", "cnn2_block_conv", "cnn3_block_conv"]
    bns = ["input_bn", "timbral_40_bn", "timbral_70_bn", "temporal_128_bn", "temporal_64_bn",
           "temporal_32_bn", "cnn1_bn", "cnn2_block_bn", "cnn3_block_bn", "pool_bn", "penultimate"]
    pairs = [(name, "conv2d" + (f"_{i}" if i else "")) for i, name in enumerate(convs)]
    pairs += [(name, "batch_normalization" + (f"_{i}" if i else "")) for i, name in enumerate(bns)]
    pairs += [("dense", "dense"), ("logits", "dense_1")]
    return pairs


def _vgg_map() -> list[tuple[str, str]]:
    pairs = [(f"conv{i}", f"{i}CNN") for i in range(1, 6)]
    bns = ["input_bn"] + [f"conv{i}_bn" for i in range(1, 6)]
    pairs += [(name, "batch_normalization" + (f"_{i}" if i else "")) for i, name in enumerate(bns)]
    pairs += [("logits", "dense")]
    return pairs


LAYER_MAPS = {"musicnn": _musicnn_map, "vgg": _vgg_map}


def read_tf1_checkpoint(checkpoint: str | os.PathLike) -> dict[str, np.ndarray]:
    """Return the model variables of a TF1 checkpoint, without optimizer slots.

    Args:
        checkpoint: a checkpoint prefix, or a musicnn checkpoint folder (whose files are named
            ``.index`` / ``.data-00000-of-00001``, i.e. the prefix is ``"<dir>/"``).

    Raises:
        WeightsError: the checkpoint cannot be read.
    """
    import tensorflow as tf

    prefix = os.fspath(checkpoint)
    if os.path.isdir(prefix):
        # musicnn's `checkpoint` file points into the author's home; read the prefix directly.
        prefix = os.path.join(prefix, "")
    try:
        reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    except Exception as err:  # TF raises several types (NotFound, DataLoss, ...)
        raise WeightsError(f"cannot read TF1 checkpoint {prefix!r}: {err}") from err
    names = reader.get_variable_to_shape_map()
    return {
        name: reader.get_tensor(name)
        for name in names
        if name not in _SKIP_NAMES and not name.endswith(_SKIP_SUFFIXES)
    }


def _layer_weights(layer: keras.layers.Layer, scope: str,
                   variables: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    if isinstance(layer, keras.layers.BatchNormalization):
        return [variables[f"{scope}/{p}"] for p in _BN_PARAMS]
    kernel = variables[f"{scope}/kernel"]
    target = tuple(layer.kernel.shape)
    if kernel.shape != target:
        # Same numbers, other layout: (k,1,1,c) -> (1,k,1,c) for the time-on-width temporal
        # convs, (7,561,1,64) -> (7,561,64) for the mid-end's Conv1D.
        if kernel.size != int(np.prod(target)):
            raise WeightsError(f"{scope}/kernel has shape {kernel.shape}, {layer.name} needs "
                               f"{target}")
        kernel = kernel.reshape(target)
    return [kernel, variables[f"{scope}/bias"]]


def assign_tf1_weights(model: keras.Model, architecture: str,
                       variables: Mapping[str, np.ndarray]) -> None:
    """Copy TF1 checkpoint variables into a log-mel backbone built with ``include_top=True``.

    Raises:
        WeightsError: a variable is missing, has the wrong shape, or is left unused.
    """
    if architecture not in LAYER_MAPS:
        raise WeightsError(f"no TF1 mapping for architecture {architecture!r}")
    used: set[str] = set()
    for layer_name, scope in LAYER_MAPS[architecture]():
        layer = model.get_layer(layer_name)
        try:
            weights = _layer_weights(layer, scope, variables)
        except KeyError as err:
            missing = err.args[0]
            raise WeightsError(f"checkpoint lacks {missing!r} (for layer {layer_name})") from err
        for current, new in zip(layer.get_weights(), weights, strict=True):
            if current.shape != new.shape:
                raise WeightsError(f"{scope}: shape {new.shape} != {current.shape} of {layer_name}")
        layer.set_weights(weights)
        used.update(k for k in variables if k.startswith(scope + "/"))
    left = sorted(set(variables) - used)
    if left:
        raise WeightsError(f"checkpoint variables not used by {architecture}: {left}")
