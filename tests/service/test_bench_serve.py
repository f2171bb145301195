"""scripts/bench_serve.py's load generator and memory sampler, briefly, against the test server
(the full benchmark takes minutes and a 10,000-file catalogue)."""

from __future__ import annotations

import asyncio
import time

import pytest
import soundfile as sf
from script_modules import load_script
from serve_helpers import excerpt

pytest.importorskip("httpx")
bench = load_script("bench_serve")


def test_load_counts_answers_errors_and_wrong_answers(server, tmp_path):
    x, sr = sf.read(excerpt("real_rock_hedgewars", 0.0, 9.0, tmp_path / "q.wav"),
                    dtype="float32")
    queries = [bench.wav_bytes(x)]
    right = bench.reference_answers(server.url, queries)
    assert right == ["real/real_rock_hedgewars.flac"]

    sampler = bench.Sampler(server.process.pid, every=0.5)
    sampler.start()
    good = asyncio.run(bench.load(server.url, queries, right, clients=2, seconds=3))
    time.sleep(0.6)
    memory = sampler.stop()
    assert good["requests"] >= 2 and good["errors"] == 0 and good["wrong_top1"] == 0
    assert good["p50_ms"] > 0 and good["throughput_rps"] > 0
    assert good["server_model_p50_ms"] > 0
    assert "server_decode_p50_ms" in good and "server_queue_p50_ms" in good
    assert memory["samples"] >= 2 and memory["start_mib"] > 100  # TensorFlow and two models
    assert memory["decoders_start_mib"] > 0  # the decoder processes are counted apart
    assert memory["anon_start_mib"] > 100 and memory["file_start_mib"] > 0
    assert memory["cpu_s"]["server"] > 0 and memory["cpu_s"]["clients"] > 0
    assert memory["cpu_s"]["machine"] >= memory["cpu_s"]["server"]
    assert 0 <= memory["others_cpu_share"] <= 1

    wrong = asyncio.run(bench.load(server.url, queries, ["elsewhere.flac"], 1, 1))
    assert wrong["wrong_top1"] == wrong["requests"] >= 1
    broken = asyncio.run(bench.load(server.url, [b"not audio"], None, 1, 1))
    assert broken["errors"] >= 1 and broken["requests"] == 0
    assert broken["first_errors"][0].startswith("422: ")


def test_server_timing_header_is_parsed():
    assert bench.timing("decode;dur=12.5, model;dur=101.0") == {"decode": 12.5, "model": 101.0}
    assert bench.timing(None) == {}


def test_the_docs_table_of_the_benchmark():
    tables = load_script("make_docs_tables")
    level = {"clients": 1, "seconds": 30.1, "requests": 409, "p50_ms": 71.72, "p95_ms": 88.51,
             "throughput_rps": 13.6, "errors": 0, "wrong_top1": 0, "server_decode_p50_ms": 4.7,
             "server_queue_p50_ms": 0.1, "server_model_p50_ms": 61.7}
    soak = {**level, "clients": 16, "seconds": 121.3, "requests": 1631, "p50_ms": 1183.0,
            "resources": {"start_mib": 1356.1, "end_mib": 1369.3, "growth": 0.0098}}
    text = tables.bench_serve({"levels": [level], "soak": soak})
    assert "| 1 (30 s) | 409 | **72 ms** | 89 ms | 13.6/s | 0 / 0 | 5 / 0 / 62 | — |" in text
    assert ("| 16, soak 2 min 01 s | 1,631 | 1,183 ms | 89 ms | 13.6/s | **0 / 0** | 5 / 0 / 62 | "
            "1,356 → 1,369 MiB (**+1.0%**) |") in text
