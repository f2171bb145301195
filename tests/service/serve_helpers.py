"""Helpers of the ``zoo serve`` tests: the test catalogue, excerpts of its clips, and starting
and stopping a real server in a subprocess on a free 127.0.0.1 port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

REPO = Path(__file__).resolve().parents[2]
CLIPS = REPO / "tests" / "data" / "clips"
TRACKS = ("real_electronic_warzone2100", "real_orchestral_wesnoth", "real_rock_hedgewars",
          "synth_music")
MAX_UPLOAD_MB = 1
MAX_SECONDS = 60
START_TIMEOUT = 300  # TensorFlow, two models and a warm-up on a busy two-core machine


@dataclass(frozen=True)
class Catalogue:
    root: Path
    index: Path


@dataclass(frozen=True)
class Server:
    url: str
    catalogue: Catalogue
    log: Path
    process: subprocess.Popen


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def excerpt(track: str, start_s: float, seconds: float, out: Path) -> Path:
    """``seconds`` of a catalogue clip from ``start_s`` on, as a WAV file."""
    x, sr = sf.read(CLIPS / f"{track}.flac", dtype="float32")
    start = int(round(start_s * sr))
    sf.write(out, x[start:start + int(seconds * sr)], sr)
    return out



def wait_for_health(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"zoo serve exited with {process.returncode}:\n"
                               f"{log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"zoo serve not ready after {timeout} s:\n{log.read_text(errors='replace')}")


def start_server(index: Path, log: Path, *extra: str) -> tuple[str, subprocess.Popen]:
    """``zoo serve`` in a subprocess on a free 127.0.0.1 port (the default host)."""
    port = free_port()
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "zoo.cli", "serve", "--index", str(index), "--port",
             str(port), *extra], stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env)
    return f"http://127.0.0.1:{port}", process


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
