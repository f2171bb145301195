"""One thread runs every model call of a server worker, in arrival order.

Concurrent requests are queued, not run side by side: TensorFlow already spreads one call over
every core, so a second model thread would only make both slower, and one thread means each
model exists once per worker process. Requests are admitted up to a bound (`Admission`), and
the rest are answered 503 at once rather than left to wait without end.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from zoo.service.errors import Busy

T = TypeVar("T")


class ModelRunner:
    """Runs functions on the one model thread; `run` awaits the result."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zoo-model")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the model thread, after the calls queued before it."""
        return await asyncio.wrap_future(self._executor.submit(fn, *args))

    async def run_timed(self, fn: Callable[..., T], *args: Any) -> tuple[T, float, float]:
        """`run`, with how long the call waited in the queue and how long it ran (seconds)."""
        queued = time.perf_counter()

        def timed() -> tuple[T, float, float]:
            started = time.perf_counter()
            result = fn(*args)
            return result, started - queued, time.perf_counter() - started

        return await self.run(timed)

    def submit(self, fn: Callable[..., T], *args: Any):
        """``fn(*args)`` on the model thread, without waiting: a `concurrent.futures.Future`."""
        return self._executor.submit(fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class Admission:
    """At most ``limit`` requests in flight (decoding, queued or on the model) at once.

    Example:
        >>> with admission:      # raises Busy (503) when ``limit`` are already in
        ...     ...
    """

    def __init__(self, limit: int):
        self.limit = int(limit)
        self._count = 0
        self._lock = threading.Lock()

    @property
    def in_flight(self) -> int:
        return self._count

    def __enter__(self) -> Admission:
        with self._lock:
            if self._count >= self.limit:
                raise Busy(f"the server is busy ({self.limit} requests in progress): "
                           "try again shortly")
            self._count += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._count -= 1
