"""Length-prefixed frames on a pipe: how the server and its decoder processes talk.

A message is two frames, a JSON header and a binary payload (the upload one way, float32
samples the other), each an 8-byte big-endian length followed by that many bytes.
"""

from __future__ import annotations

import json
import struct
from typing import IO, Any

_LENGTH = struct.Struct(">Q")


def write_message(stream: IO[bytes], header: dict[str, Any], payload: bytes = b"") -> None:
    """Write one message and flush it."""
    head = json.dumps(header).encode("utf-8")
    stream.write(_LENGTH.pack(len(head)) + head + _LENGTH.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _read_exactly(stream: IO[bytes], n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError(f"the pipe closed after {n - left} of {n} bytes")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(stream: IO[bytes]) -> tuple[dict[str, Any], bytes] | None:
    """The next message, or None if the other end closed the pipe between messages.

    Raises:
        EOFError: the pipe closed in the middle of a message.
    """
    first = stream.read(_LENGTH.size)
    if not first:
        return None
    if len(first) < _LENGTH.size:
        first += _read_exactly(stream, _LENGTH.size - len(first))
    header = json.loads(_read_exactly(stream, _LENGTH.unpack(first)[0]).decode("utf-8"))
    (size,) = _LENGTH.unpack(_read_exactly(stream, _LENGTH.size))
    return header, _read_exactly(stream, size)
