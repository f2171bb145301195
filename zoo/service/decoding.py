"""Decoding uploads in a small pool of worker processes, with a time limit on each decode.

Each `DecoderPool` keeps ``size`` processes (`zoo.service.decode_worker`) started and waiting.
A decode takes an idle one, sends it the upload and waits for the samples; if that takes longer
than the limit, the process is killed (which ends the wait) and a fresh one takes its place, so a
hostile file costs the server one decode's time and nothing else.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.service.errors import AudioTooLong, BadAudio, DecodeTimeout
from zoo.service.frames import read_message, write_message

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding zoo/


@dataclass(frozen=True)
class Decoded:
    """An upload decoded to mono float32 at the model's rate.

    Attributes:
        samples: ``(samples,)`` float32 in [-1, 1].
        sample_rate: Hz.
        name: the upload's name, as messages show it.
        warnings: what the decoder noticed (a truncated stream it could still read, ...).
    """

    samples: np.ndarray
    sample_rate: int
    name: str
    warnings: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


class _Worker:
    """One decoder process and its two pipes."""

    def __init__(self) -> None:
        env = dict(os.environ)
        # The worker imports the same zoo as the server, installed or not.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH"))
                                            if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "zoo.service.decode_worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)

    def ask(self, header: dict, payload: bytes) -> tuple[dict, bytes]:
        write_message(self.process.stdin, header, payload)
        reply = read_message(self.process.stdout)
        if reply is None:
            raise EOFError("the decoder process stopped")
        return reply

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.kill()

    def close(self) -> None:
        self.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except OSError:  # a pipe broken by the kill
                pass


class DecoderPool:
    """``size`` decoder processes; `decode` blocks (call it from a thread).

    Args:
        size: processes kept running.
        timeout: seconds one decode may take.
    """

    def __init__(self, size: int, timeout: float):
        self.timeout = float(timeout)
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        for _ in range(int(size)):
            self._idle.put(self._spawn())

    def _spawn(self) -> _Worker:
        worker = _Worker()
        with self._lock:
            self._all = [w for w in self._all if w.alive()] + [worker]
        return worker

    def decode(self, data: bytes, *, name: str, suffix: str, sample_rate: int,
               max_seconds: float) -> Decoded:
        """Decode an upload.

        Args:
            data: the uploaded bytes.
            name: how messages name it (the client's file name).
            suffix: file name ending that tells the container (``".flac"``), or ``""``.
            sample_rate: output rate (the model's).
            max_seconds: longest recording accepted.

        Raises:
            BadAudio: not audio zoo can use (the reason the CLI gives), or the decoder died on
                it. DecodeTimeout: decoding took longer than ``timeout``. AudioTooLong: longer
                than ``max_seconds``.
        """
        worker = self._idle.get()
        if not worker.alive():  # died while idle (killed from outside): not this file's fault
            worker.close()
            worker = self._spawn()
        fired = threading.Event()

        def stop() -> None:
            fired.set()
            worker.kill()

        timer = threading.Timer(self.timeout, stop)
        timer.daemon = True
        timer.start()
        try:
            header, payload = worker.ask({"name": name, "suffix": suffix,
                                          "sample_rate": int(sample_rate),
                                          "max_seconds": float(max_seconds)}, data)
        except (OSError, EOFError, ValueError) as err:
            if fired.is_set():
                raise DecodeTimeout(f"{name}: decoding took longer than {self.timeout:g} s, "
                                    "the limit of this server") from err
            raise BadAudio(f"{name}: the decoder stopped on this file ({err})") from err
        finally:
            timer.cancel()
            # A killed process can close its pipes before it can be reaped, so after a
            # timeout it is waited for rather than polled.
            if fired.is_set() or not worker.alive():
                worker.close()
                worker = self._spawn()
            self._idle.put(worker)
        if not header.get("ok"):
            error = AudioTooLong if header.get("kind") == "too_long" else BadAudio
            raise error(f"{name}: {header.get('reason', 'cannot be decoded')}")
        return Decoded(np.frombuffer(payload, np.float32), int(sample_rate), name,
                       tuple(header.get("warnings", ())))

    def close(self) -> None:
        """Stop every process (pending decodes then fail)."""
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            worker.close()
