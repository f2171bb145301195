"""``zoo serve``'s checks before it starts: each problem is one line on stderr and exit status 2,
never a traceback; it listens on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import shutil
import socket
import sys

import pytest
from serve_helpers import CLIPS

import zoo.search
from zoo.cli import build_parser, main


def _refused(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoo serve: ") and "Traceback" not in err, err
    return err


def test_a_missing_extra_names_the_pip_command(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    err = _refused(capsys, ["serve", "--index", "anything"])
    # python-multipart is named too where it is missing as well (the TF 2.17 lane)
    assert "needs fastapi, uvicorn" in err and "which are not installed" in err
    assert "pip install 'zoo-audio[serve]'" in err


@pytest.fixture
def small_index(tmp_path):
    root = tmp_path / "music"
    root.mkdir()
    shutil.copy(CLIPS / "synth_music.flac", root / "a.flac")
    zoo.search.build_index(root, tmp_path / "idx", model="musicnn_msd", progress=False)
    return tmp_path / "idx"


def test_bad_arguments_are_refused_before_starting(capsys, tmp_path, small_index):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    (tmp_path / "plain").mkdir()
    assert "is not an index directory" in _refused(
        capsys, ["serve", "--index", str(tmp_path / "missing")])
    assert "manifest.json" in _refused(capsys, ["serve", "--index", str(tmp_path / "plain")])
    assert "unknown preset" in _refused(
        capsys, ["serve", "--index", str(small_index), "--tag-model", "no_such_model"]).lower()
    assert "has no tags" in _refused(
        capsys, ["serve", "--index", str(small_index), "--tag-model", "siamese_musicnn_msd"])
    assert "--port must be 0-65535" in _refused(
        capsys, ["serve", "--index", str(small_index), "--port", "70000"])
    assert "--workers must be >= 1" in _refused(
        capsys, ["serve", "--index", str(small_index), "--workers", "0"])
    assert "decode_timeout_seconds must be > 0" in _refused(
        capsys, ["serve", "--index", str(small_index), "--decode-timeout", "0"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert f"cannot listen on 127.0.0.1:{port}" in _refused(
            capsys, ["serve", "--index", str(small_index), "--port", str(port)])


def test_defaults_bind_to_this_machine_only():
    args = build_parser().parse_args(["serve", "--index", "x"])
    assert (args.host, args.port, args.workers, args.tag_model) == ("127.0.0.1", 8000, 1,
                                                                    "musicnn_msd")
    assert args.max_upload_mb == 20 and args.max_seconds == 600 and args.decode_timeout == 30


def test_the_running_server_says_where_it_listens(server):
    text = server.log.read_text(encoding="utf-8")
    assert f"; {server.url}/ (API docs: /docs)" in text and "http://127.0.0.1:" in text


@pytest.mark.slow
def test_several_workers_each_load_the_index_and_answer(serve_extra, catalogue, tmp_path):
    import httpx
    from serve_helpers import START_TIMEOUT, excerpt, start_server, stop, wait_for_health

    log = tmp_path / "workers.log"
    url, process = start_server(catalogue.index, log, "--workers", "2", "--tag-model", "none",
                                "--log-level", "warning")
    try:
        wait_for_health(url, process, log, START_TIMEOUT)
        query = excerpt("real_orchestral_wesnoth", 0.0, 6.0, tmp_path / "q.wav")
        pids = set()
        for _ in range(6):
            response = httpx.post(f"{url}/similar", timeout=120,
                                  files={"file": ("q.wav", query.read_bytes())})
            assert response.status_code == 200, response.text
            assert response.json()["results"][0]["path"] == "real/real_orchestral_wesnoth.flac"
            health = httpx.get(f"{url}/health", timeout=30).json()
            pids.add(health["worker"])
        assert process.pid not in pids  # answered by worker processes, not the supervisor
        tag = httpx.post(f"{url}/tag", timeout=60, files={"file": ("q.wav", query.read_bytes())})
        assert tag.status_code == 404 and "no tagger" in tag.json()["error"]
    finally:
        stop(process)
