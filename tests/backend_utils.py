"""Which Keras backend the suite runs on, and helpers for tests that run on all three.

CI runs the backend-neutral tests (tests/layers, tests/backends) with ``KERAS_BACKEND`` set
to ``jax`` and ``torch`` too; tests that use TensorFlow itself (``tf.function``, SavedModel,
GradientTape, XLA) are marked `tensorflow_only`.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

BACKEND = keras.backend.backend()

tensorflow_only = pytest.mark.skipif(BACKEND != "tensorflow",
                                     reason=f"uses TensorFlow itself (backend: {BACKEND})")


def to_numpy(x) -> np.ndarray:
    """A backend tensor (or nested structure of them) as numpy."""
    return keras.tree.map_structure(keras.ops.convert_to_numpy, x)


def gradients(layer, x, loss) -> list[np.ndarray]:
    """d loss(layer(x)) / d each trainable variable of ``layer``, on the active backend
    (``loss`` maps the layer's output to a scalar with ``keras.ops``)."""
    variables = layer.trainable_variables
    if BACKEND == "jax":
        import jax

        frozen = [v.value for v in layer.non_trainable_variables]

        def of(values):
            out, _ = layer.stateless_call(values, frozen, x)
            return loss(out)

        return [np.asarray(g) for g in jax.grad(of)([v.value for v in variables])]
    if BACKEND == "torch":
        for v in variables:
            v.value.grad = None
        loss(layer(x)).backward()
        return [v.value.grad.detach().cpu().numpy() for v in variables]
    import tensorflow as tf

    with tf.GradientTape() as tape:
        value = loss(layer(x))
    return [g.numpy() for g in tape.gradient(value, variables)]
