"""Training on several devices with ``tf.distribute``: the ``--distribute`` and ``--cpu-devices``
options of ``zoo finetune``.

Three strategies:

* ``"none"`` (default): TensorFlow's default strategy, one device; `make_strategy` returns
  None and training runs exactly as without this module.
* ``"mirrored"``: `tf.distribute.MirroredStrategy`, synchronous data parallelism over the
  devices of this machine: every GPU; on a machine without GPUs, every logical CPU device
  configured with `configure_cpu_devices` (``MirroredStrategy()`` alone would take one CPU).
* ``"multi-worker"``: `tf.distribute.MultiWorkerMirroredStrategy`, synchronous data
  parallelism over several machines (the GPUs of each, or one CPU each). The cluster comes
  from the ``TF_CONFIG`` environment variable, one process per worker, each started with the
  same command and its own ``task.index``; without ``TF_CONFIG`` it runs as a single worker
  (like ``mirrored`` on one machine with GPUs, or one CPU device without).

In each, ``batch_size`` stays the *global* batch: the strategy splits every batch across the
replicas (a batch of 64 on 2 replicas: 32 each) and sums their gradients, so one step
updates the weights as a single device does on the whole batch.

Example:
    >>> from zoo.finetune.distribute import configure_cpu_devices, make_strategy
    >>> configure_cpu_devices(2)          # before anything else touches TensorFlow
    >>> strategy = make_strategy("mirrored")
    >>> strategy.num_replicas_in_sync
    2
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError

if TYPE_CHECKING:
    import tensorflow as tf

STRATEGIES = ("none", "mirrored", "multi-worker")


class DistributeError(ZooError, ValueError):
    """A ``--distribute`` / ``--cpu-devices`` setting that cannot be used (an unknown strategy,
    logical devices asked for after TensorFlow initialised its devices, ...)."""


def configure_cpu_devices(n: int) -> list[str]:
    """Split the host CPU into ``n`` logical devices, so that ``mirrored`` has ``n`` replicas on
    a machine without GPUs (for tests, or to try a distributed run on a laptop; the devices
    share the same cores, so it is not faster).

    It must run before TensorFlow initialises its devices, i.e. before the first tensor,
    model or strategy of the process; calling it again later with the same ``n`` is fine.

    Args:
        n: logical CPU devices, at least 1.

    Returns:
        The logical CPU device names (``/device:CPU:0``, ...).

    Raises:
        DistributeError: ``n < 1``, or TensorFlow already initialised its devices with a
            different number of CPU devices.

    Example:
        >>> configure_cpu_devices(2)
        ['/device:CPU:0', '/device:CPU:1']
    """
    import tensorflow as tf

    if int(n) < 1:
        raise DistributeError(f"--cpu-devices must be at least 1, not {n}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(int(n))])
    except RuntimeError as err:  # "Virtual devices cannot be modified after being initialized"
        existing = tf.config.list_logical_devices("CPU")
        if len(existing) != int(n):
            raise DistributeError(
                f"cannot split the CPU into {n} logical devices: TensorFlow already "
                f"initialised its devices ({len(existing)} CPU device(s)). Configure them "
                "first thing in the process, before any model or tensor is made "
                f"(TensorFlow: {err})") from None
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def _mirrored_devices() -> list[str] | None:
    """The devices of ``mirrored``: None (TensorFlow's choice: every GPU) when there are GPUs,
    else the logical CPU devices when there are several."""
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        return None
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    return cpus if len(cpus) > 1 else None


def make_strategy(kind: str | None, devices: Sequence[str] | None = None
                  ) -> tf.distribute.Strategy | None:
    """The ``tf.distribute`` strategy of a ``--distribute`` value.

    Args:
        kind: ``"none"`` or None (one device: returns None, meaning TensorFlow's default
            strategy), ``"mirrored"`` (`tf.distribute.MirroredStrategy` over this machine's
            GPUs, or over its logical CPU devices when it has no GPU and several were
            configured with `configure_cpu_devices`) or ``"multi-worker"``
            (`tf.distribute.MultiWorkerMirroredStrategy`, cluster from ``TF_CONFIG``; a single
            worker without it).
        devices: ``"mirrored"`` only: mirror over these devices (e.g. the names
            `configure_cpu_devices` returns) instead of the automatic choice.

    Returns:
        The strategy, or None for ``"none"``. Build and compile models under
        ``strategy.scope()`` (`strategy_scope`).

    Raises:
        DistributeError: an unknown kind, ``devices`` with another kind than ``"mirrored"``,
            or a ``TF_CONFIG`` that is not valid JSON.

    Example:
        >>> strategy = make_strategy("mirrored")
        >>> with strategy_scope(strategy):
        ...     model = build_model()
        ...     model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        >>> model.fit(dataset_of_global_batches, epochs=10)
    """
    import tensorflow as tf

    kind = kind or "none"
    if kind not in STRATEGIES:
        raise DistributeError(f"unknown --distribute {kind!r}; known: {', '.join(STRATEGIES)}")
    if devices is not None and kind != "mirrored":
        raise DistributeError(f"devices apply to the mirrored strategy, not {kind!r}")
    if kind == "none":
        return None
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(
            devices=list(devices) if devices is not None else _mirrored_devices())
    raw = os.environ.get("TF_CONFIG")
    if raw:
        try:
            json.loads(raw)
        except ValueError as err:
            raise DistributeError(f"TF_CONFIG is not valid JSON ({err}): {raw[:200]!r}") from None
    return tf.distribute.MultiWorkerMirroredStrategy()


@contextlib.contextmanager
def strategy_scope(strategy: tf.distribute.Strategy | None) -> Iterator[None]:
    """``strategy.scope()``, or nothing at all for None (the default strategy).

    Args:
        strategy: from `make_strategy`, or None.

    Example:
        >>> with strategy_scope(make_strategy("mirrored")):
        ...     head = build_head(128, 10)
    """
    if strategy is None:
        yield
    else:
        with strategy.scope():
            yield


def describe(kind: str | None, strategy: tf.distribute.Strategy | None) -> dict[str, Any]:
    """The ``distribute`` entry of ``metrics.json``: strategy name, replicas in sync, their
    devices and (multi-worker) the worker count.

    Args:
        kind: the ``--distribute`` value.
        strategy: its strategy (`make_strategy`), None for ``"none"``.

    Example:
        >>> describe("mirrored", make_strategy("mirrored"))
        {'strategy': 'mirrored', 'replicas': 2, 'devices': ['/job:localhost/replica:0/...
    """
    if strategy is None:
        return {"strategy": "none", "replicas": 1}
    doc: dict[str, Any] = {"strategy": kind, "replicas": int(strategy.num_replicas_in_sync),
                           "devices": [str(d) for d in strategy.extended.worker_devices]}
    if kind == "multi-worker":
        resolver = getattr(strategy.cluster_resolver, "cluster_spec", None)
        spec = resolver().as_dict() if resolver else {}
        doc["workers"] = sum(len(v) for v in spec.values()) or 1
    return doc
