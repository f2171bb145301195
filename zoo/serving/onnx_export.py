"""A Keras patch model as an ONNX model, for ONNX Runtime (or any runtime of the standard ops).

The conversion goes through tf2onnx (``pip install 'zoo-audio[onnx]'``), from the model's
``tf.function`` traced inside `zoo.layers.portability.portable_ops("onnx")`: the STFT becomes a
matmul with a windowed DFT basis (tf2onnx has no general RFFT) and musicnn's float16 rounding
stays a real float16 cast. Every node of the result is checked against the ONNX standard at the
stated opset, so a model that could not be converted fails here, by name, not in a runtime.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping

import keras
import tensorflow as tf

from zoo.errors import OptionalDependencyError, ZooError
from zoo.layers.portability import portable_ops

# Opset 17 (ONNX 1.12, 2022): ONNX Runtime >= 1.12 and every current runtime run it.
ONNX_OPSET = 17
_INSTALL = "pip install 'zoo-audio[onnx]'"


class OnnxExportError(ZooError, ValueError):
    """The model holds ops that have no standard ONNX equivalent at the opset."""


def _tf2onnx():
    try:
        import tf2onnx
    except ImportError as err:
        raise OptionalDependencyError(
            f"ONNX export needs tf2onnx ({err}): {_INSTALL}") from err
    return tf2onnx


@contextlib.contextmanager
def _quiet_tf2onnx() -> Iterator[None]:
    # tf2onnx logs every graph pass at INFO; what matters comes back as an exception or a check.
    logger = logging.getLogger("tf2onnx")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def onnx_from_keras(model: keras.Model, input_name: str = "waveform",
                    opset: int = ONNX_OPSET, metadata: Mapping[str, str] | None = None) -> bytes:
    """Convert a single-input Keras model to a serialized ONNX model.

    Args:
        model: a Keras model with one float32 input; dict outputs keep their names, a single
            tensor output is named ``output``.
        input_name: the ONNX input's name. Its first axis (the batch) is dynamic.
        opset: the ONNX opset of the default domain.
        metadata: ``metadata_props`` to store in the model (e.g. the preset as JSON).

    Returns:
        The ``.onnx`` bytes.

    Raises:
        OnnxExportError: an op of the model has no standard ONNX form at ``opset``.
        OptionalDependencyError: tf2onnx is not installed.

    Example:
        >>> data = onnx_from_keras(build_patch_model(zoo.load("musicnn_msd")))
        >>> session = onnxruntime.InferenceSession(data)
        >>> session.run(["probabilities"], {"waveform": np.zeros((2, 48128), "float32")})[0].shape
        (2, 50)
    """
    tf2onnx = _tf2onnx()
    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32, name=input_name)

    def call(waveform: tf.Tensor) -> dict[str, tf.Tensor]:
        out = model(waveform, training=False)
        return dict(out) if isinstance(out, Mapping) else {"output": out}

    with portable_ops("onnx"), _quiet_tf2onnx():
        function = tf.function(call, input_signature=[spec])
        proto, _ = tf2onnx.convert.from_function(function, input_signature=[spec], opset=opset)
    check_standard_ops(proto, opset)
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def check_standard_ops(proto, opset: int = ONNX_OPSET) -> None:
    """Refuse a model with nodes outside the ONNX standard (tf2onnx leaves an op it cannot
    convert in the graph under its TensorFlow name, and the model then fails to load).

    Raises:
        OnnxExportError: naming the ops.
    """
    import onnx

    unknown = sorted({f"{node.op_type} ({node.name})" for node in proto.graph.node
                      if not onnx.defs.has(node.op_type, max_inclusive_version=opset,
                                           domain=node.domain)})
    if unknown:
        raise OnnxExportError(
            f"cannot export to ONNX: {len(unknown)} op(s) have no standard ONNX form at opset "
            f"{opset}: {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")


def onnx_metadata(document: Mapping) -> dict[str, str]:
    """The ``metadata_props`` of an exported model: the serving document as JSON."""
    return {"zoo_preset": json.dumps(document, ensure_ascii=False)}


def onnx_session(model: str | bytes, threads: int | None = None):
    """An ONNX Runtime CPU session with every graph optimisation on.

    Args:
        model: a ``.onnx`` path or its bytes.
        threads: intra-op threads (default: ONNX Runtime's, one per core).

    Raises:
        OptionalDependencyError: onnxruntime is not installed.
    """
    try:
        import onnxruntime
    except ImportError as err:
        raise OptionalDependencyError(
            f"running an ONNX model needs onnxruntime ({err}): {_INSTALL}") from err
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = int(threads)
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
