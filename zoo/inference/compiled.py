"""A model as one compiled inference function, in the way each Keras backend runs fastest.

* TensorFlow: a ``tf.function`` with a free batch axis (one trace).
* JAX: ``jax.jit`` of the model's ``stateless_call``, reading the variables' current values at
  every call (so it always computes with the current weights). Batches are padded to a power of
  two, so a run over many files compiles a few shapes, not one per remainder.
* PyTorch: the model's own call under ``torch.inference_mode`` (eager kernels; no autograd).

Each returns a function of a ``(patches, samples)`` float32 numpy batch whose outputs are
arrays or tensors of the backend (`zoo.inference.batching` turns them into numpy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np


def inference_function(model: keras.Model, samples: int | None
                       ) -> Callable[[np.ndarray], Any]:
    """``model(batch, training=False)`` compiled for the active Keras backend.

    Args:
        model: a Keras model taking ``(batch, samples)`` float32 waveforms.
        samples: the input length (the model's patch length); None for any length (JAX then
            compiles once per length).
    """
    backend = keras.backend.backend()
    if backend == "jax":
        return _jax_function(model)
    if backend == "torch":
        return _torch_function(model)
    import tensorflow as tf

    return tf.function(lambda x: model(x, training=False), reduce_retracing=True,
                       input_signature=[tf.TensorSpec([None, samples], tf.float32)])


def to_numpy(tensor: Any) -> np.ndarray:
    """A backend tensor as numpy (a PyTorch tensor directly: numpy 2 warns when Keras converts
    one through ``__array__``)."""
    if hasattr(tensor, "detach"):
        return tensor.detach().cpu().numpy()
    return keras.ops.convert_to_numpy(tensor)


def padded_batch_size(n: int) -> int:
    """The power of two at or above ``n`` (the batch shapes a jit-compiled function sees)."""
    return 1 << max(0, int(n) - 1).bit_length()


def _jax_function(model: keras.Model) -> Callable[[np.ndarray], Any]:
    import jax

    @jax.jit
    def call(trainable: list, non_trainable: list, batch: Any) -> Any:
        outputs, _ = model.stateless_call(trainable, non_trainable, batch, training=False)
        return outputs

    def run(batch: np.ndarray) -> Any:
        batch = np.asarray(batch, np.float32)
        n = batch.shape[0]
        size = padded_batch_size(n)
        if size != n:
            batch = np.concatenate([batch, np.zeros((size - n, *batch.shape[1:]), batch.dtype)])
        outputs = call([v.value for v in model.trainable_variables],
                       [v.value for v in model.non_trainable_variables], batch)
        return keras.tree.map_structure(lambda out: out[:n], outputs)

    return run


def _torch_function(model: keras.Model) -> Callable[[np.ndarray], Any]:
    import torch

    def run(batch: np.ndarray) -> Any:
        with torch.inference_mode():
            return model(np.asarray(batch, np.float32), training=False)

    return run
