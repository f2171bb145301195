"""The one batch runner: model windows in, batched model calls, outputs out, decoding ahead.

`zoo.tag` / `zoo.extract` / `zoo.embed` (one recording, `zoo.inference.tagging.run_model`) and
fine-tuning's embedding cache and evaluation (many clips, `zoo.finetune.embeddings.run_patches`)
both feed their windows through `run_batches`: decoding and patching run in a background thread
(`prefetch`) while the model computes on the previous batch.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np

from zoo.inference.compiled import to_numpy

Key = TypeVar("Key")


def prefetch(generator: Iterable, depth: int = 2) -> Iterator:
    """Run ``generator`` in a thread, ``depth`` items ahead; re-raise its errors here."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in generator:
                while not stop.is_set():
                    try:
                        items.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put((done, None))
        except BaseException as err:  # noqa: BLE001 - handed to the consumer
            items.put((done, err))

    thread = threading.Thread(target=produce, daemon=True, name="zoo-decode")
    thread.start()
    try:
        while True:
            item, err = items.get()
            if err is not None:
                raise err
            if item is done:
                return
            yield item
    finally:
        stop.set()


def batches(windows: Iterable[tuple[Key, np.ndarray]],
            batch_size: int) -> Iterator[tuple[list[Key], np.ndarray]]:
    """Group ``(key, window)`` items into ``(keys, (n, samples) array)`` of ``batch_size``
    windows (the last batch may be shorter)."""
    keys: list[Key] = []
    stacked: list[np.ndarray] = []
    for key, window in windows:
        keys.append(key)
        stacked.append(window)
        if len(stacked) == batch_size:
            yield keys, np.stack(stacked)
            keys, stacked = [], []
    if stacked:
        yield keys, np.stack(stacked)


def _to_numpy(out: Any) -> Any:
    if isinstance(out, dict):
        return {name: _to_numpy(value) for name, value in out.items()}
    if isinstance(out, (list, tuple)):
        return type(out)(_to_numpy(value) for value in out)
    return to_numpy(out)


def run_batches(fn: Callable[[np.ndarray], Any], windows: Iterable[tuple[Key, np.ndarray]],
                batch_size: int) -> Iterator[tuple[list[Key], np.ndarray, Any]]:
    """Call ``fn`` on batches of windows, decoding the next batch while ``fn`` runs.

    Args:
        fn: a batch of windows ``(n, samples)`` float32 -> outputs (an array, a tensor, or a dict
            of them).
        windows: ``(key, window)`` items, e.g. ``(start frame, window)`` of one recording or
            ``(clip index, window)`` of many clips; consumed in a background thread.
        batch_size: windows per call.

    Yields:
        ``(keys, windows, outputs)`` per call, in order, outputs as numpy arrays.

    Example:
        >>> items = ((i, np.zeros(16000, np.float32)) for i in range(20))
        >>> [len(keys) for keys, _, _ in run_batches(lambda x: x[:, :4], items, 8)]
        [8, 8, 4]
    """
    for keys, batch in prefetch(batches(windows, batch_size)):
        yield keys, batch, _to_numpy(fn(batch))
