"""Reduced-precision inference on CPU: the model's inference graph rewritten to bfloat16.

``float32`` (the default) is the model as trained: exact. ``bfloat16`` runs the convolutions and
matmuls in bfloat16 on oneDNN, which uses the CPU's AVX512-BF16 / AMX units: on such a CPU about
twice the throughput, at a small cost in accuracy (scripts/bench_precision.py measures both;
docs/benchmarks.md shows them). The rewrite is TensorFlow's own oneDNN auto-mixed-precision pass,
applied once to a frozen copy of the inference graph, so it changes nothing else in the process:
float32 models keep running in float32 beside it.

int8 was measured too (ONNX Runtime static quantisation, calibrated on real music) and is not
offered: 1.3x float32, slower than bfloat16, and further from float32's tags and retrieval.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import keras
import numpy as np

PRECISIONS = ("float32", "bfloat16")
# CPU flags (Linux /proc/cpuinfo names) of the units oneDNN runs bfloat16 on at full speed.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def check_precision(precision: str) -> str:
    """``precision`` if it is one of `PRECISIONS`, else a ValueError naming them."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


@lru_cache(maxsize=1)
def cpu_bf16_flags() -> tuple[str, ...]:
    """The bfloat16 units this CPU has (from ``/proc/cpuinfo``; empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            flags = next((line.split(":", 1)[1].split() for line in info
                          if line.startswith("flags")), [])
    except OSError:
        return ()
    return tuple(flag for flag in BF16_CPU_FLAGS if flag in flags)


def bfloat16_function(model: Any, samples: int) -> Callable[[np.ndarray], Any]:
    """A Keras model of ``(batch, samples)`` waveforms as a bfloat16 TensorFlow function.

    The model's variables are frozen into constants, then TensorFlow's oneDNN
    auto-mixed-precision rewrite turns the convolutions, matmuls and what lies between them into
    bfloat16 (its own allow and deny lists keep numerically sensitive ops, such as logs and
    reductions, in float32). The returned function takes float32 and returns float32, with the
    model's output structure.

    Args:
        model: a Keras model with one ``(batch, samples)`` float32 input (e.g. the inference
            twin of a `zoo.load` model).
        samples: the input length.

    Returns:
        ``fn(batch) -> outputs`` (a tensor or a dict of tensors, as the model returns).

    Raises:
        RuntimeError: this CPU has no bfloat16 units (oneDNN would emulate them, slower than
            float32), or TensorFlow was built without oneDNN.
    """
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"bfloat16 inference is TensorFlow's oneDNN rewrite; this session "
                           f"runs Keras on {keras.backend.backend()}: use float32, or run with "
                           f"KERAS_BACKEND=tensorflow")
    if not cpu_bf16_flags():
        raise RuntimeError("bfloat16 needs a CPU with AVX512-BF16 or AMX (this one has "
                           "neither, so it would be slower than float32): use float32")
    # Internal modules, the ones TensorFlow's own converters use to freeze and optimise graphs.
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, rewriter_config_pb2
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )
    from tensorflow.python.grappler import tf_optimizer

    spec = tf.TensorSpec([None, samples], tf.float32, name="waveform")
    concrete = tf.function(lambda x: model(x, training=False),
                           input_signature=[spec]).get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    meta_graph = tf.compat.v1.train.export_meta_graph(graph_def=frozen.graph.as_graph_def(),
                                                      graph=frozen.graph)
    fetches = meta_graph_pb2.CollectionDef()
    fetches.node_list.value.extend(t.name for t in frozen.outputs)
    meta_graph.collection_def["train_op"].CopyFrom(fetches)  # what grappler must keep
    config = config_pb2.ConfigProto()
    config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = (
        rewriter_config_pb2.RewriterConfig.ON)
    optimized = tf_optimizer.OptimizeGraph(config, meta_graph)
    # (`"T" in attr` first: indexing a protobuf map would add an empty attr to every node.)
    if not any("T" in node.attr and node.attr["T"].type == tf.bfloat16.as_datatype_enum
               for node in optimized.node):
        raise RuntimeError("TensorFlow did not rewrite the graph to bfloat16 (a build without "
                           "oneDNN?): use float32")

    def import_graph() -> None:
        tf.graph_util.import_graph_def(optimized, name="")

    wrapped = tf.compat.v1.wrap_function(import_graph, [])
    pruned = wrapped.prune(
        feeds=[wrapped.graph.get_tensor_by_name(frozen.inputs[0].name)],
        fetches=[wrapped.graph.get_tensor_by_name(t.name) for t in frozen.outputs])
    structure = concrete.structured_outputs

    def run(batch: np.ndarray) -> Any:
        return tf.nest.pack_sequence_as(structure, pruned(tf.convert_to_tensor(batch,
                                                                               tf.float32)))

    return run
