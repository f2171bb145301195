"""Keep other libraries' start-up chatter off the user's terminal, at the file-descriptor level.

Beam's local worker processes inherit the driver's stderr and log their own start-up there
(``INFO:__main__:Logging handler created.``, ...). `filtered_stderr` points file descriptor 2
at a pipe for the duration of a block; a thread forwards every line to the real stderr except
those that match one of the given prefixes. Child processes started inside the block inherit
the pipe, so their lines are filtered too.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator, Sequence


@contextlib.contextmanager
def filtered_stderr(drop_prefixes: Sequence[bytes]) -> Iterator[None]:
    """Within the block, drop stderr lines that start with any of ``drop_prefixes``."""
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()

    def forward() -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(read_end, 65536)
            except OSError:
                break
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if not line.startswith(tuple(drop_prefixes)):
                    os.write(saved, line + b"\n")
        if pending and not pending.startswith(tuple(drop_prefixes)):
            os.write(saved, pending)

    thread = threading.Thread(target=forward, daemon=True, name="zoo-stderr-filter")
    thread.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # our end of the pipe closes; children that still hold it keep it
        thread.join(timeout=5.0)
        os.close(saved)
        if not thread.is_alive():
            os.close(read_end)
