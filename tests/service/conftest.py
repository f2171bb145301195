"""A real ``zoo serve`` on 127.0.0.1 over a small index of real music clips, shared by the API,
page and bench tests of this folder (started once: it pays TensorFlow's start-up).

The server runs with small limits (1 MiB uploads, 60 s recordings) so that the limit tests
need no large files.
"""

from __future__ import annotations

import shutil

import pytest
from serve_helpers import (
    CLIPS,
    MAX_SECONDS,
    MAX_UPLOAD_MB,
    START_TIMEOUT,
    TRACKS,
    Catalogue,
    Server,
    start_server,
    stop,
    wait_for_health,
)


@pytest.fixture(scope="session")
def catalogue(tmp_path_factory) -> Catalogue:
    """Four clips (three real tracks, one synthetic) and their index (the default model)."""
    import zoo.search

    root = tmp_path_factory.mktemp("catalogue")
    (root / "real").mkdir()
    for name in TRACKS:
        folder = root / "real" if name.startswith("real") else root
        shutil.copy(CLIPS / f"{name}.flac", folder / f"{name}.flac")
    index = tmp_path_factory.mktemp("index") / "music.idx"
    zoo.search.build_index(root, index, progress=False)
    return Catalogue(root, index)


@pytest.fixture(scope="session")
def serve_extra() -> None:
    """Skips (before any index is built) without the ``serve`` extra and httpx."""
    for module in ("fastapi", "uvicorn", "python_multipart", "httpx"):
        pytest.importorskip(module, reason="zoo serve's tests need pip install "
                                           "'zoo-audio[serve]' httpx")


@pytest.fixture(scope="session")
def server(serve_extra, catalogue, tmp_path_factory) -> Server:
    """The running server."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    url, process = start_server(catalogue.index, log, "--max-upload-mb", str(MAX_UPLOAD_MB),
                                "--max-seconds", str(MAX_SECONDS), "--log-level", "warning")
    try:
        wait_for_health(url, process, log, START_TIMEOUT)
        yield Server(url, catalogue, log, process)
    finally:
        stop(process)
