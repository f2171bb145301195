"""The REST API of ``zoo serve``, against a real server on 127.0.0.1 (conftest.py): answers equal
the library's, every bad input is a 4xx JSON message, limits and traversal are refused, and 20
concurrent queries are all answered right."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import soundfile as sf
from serve_helpers import MAX_SECONDS, MAX_UPLOAD_MB, REPO, excerpt

httpx = pytest.importorskip("httpx")

CORPUS = REPO / "tests" / "data" / "bad"
CASES = json.loads((CORPUS / "cases.json").read_text(encoding="utf-8"))
SEGMENT = 2.992  # musicnn's patch: catalogue segments start at 0, 2.992, 5.984 s
TIMEOUT = 120


def post(server, path: str, file: Path, name: str | None = None, **params) -> httpx.Response:
    with open(file, "rb") as f:
        return httpx.post(f"{server.url}{path}", params=params, timeout=TIMEOUT,
                          files={"file": (name or file.name, f, "application/octet-stream")})


def error_of(response: httpx.Response, *statuses: int) -> str:
    """The message of a JSON error answer, checking its status and shape."""
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    doc = response.json()
    assert set(doc) == {"error"} and isinstance(doc["error"], str) and doc["error"], doc
    assert "Traceback" not in doc["error"] and "zoo-serve-" not in doc["error"]
    return doc["error"]


def raw_get(server, target: str) -> tuple[int, bytes]:
    """GET a request target exactly as written (clients normalise ``..`` away)."""
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n"
                  .encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


# -- answers -------------------------------------------------------------------------------


def test_health_describes_the_loaded_catalogue(server):
    doc = httpx.get(f"{server.url}/health", timeout=30).json()
    assert doc["status"] == "ok" and doc["files"] == 4 and doc["level"] == "segment"
    assert doc["model"] == "musicnn_msd_whitened_chroma_rhythm"
    assert doc["tag_model"] == "musicnn_msd"
    assert doc["limits"]["max_upload_bytes"] == MAX_UPLOAD_MB * 2 ** 20


def test_similar_ranks_the_source_first_with_its_matched_passage(server, tmp_path):
    import zoo.search

    query = excerpt("real_orchestral_wesnoth", SEGMENT, 6.0, tmp_path / "query.wav")
    response = post(server, "/similar", query, top=4, explain="true")
    assert response.status_code == 200, response.text
    doc = response.json()
    first = doc["results"][0]
    assert first["path"] == "real/real_orchestral_wesnoth.flac" and first["rank"] == 1
    assert first["audio_url"] == f"/catalogue/{first['id']}/audio"
    # the query is the track from its second segment on: that passage, from query time 0
    assert first["matched"]["start"] == pytest.approx(SEGMENT, abs=0.02)
    assert first["matched"]["end"] == pytest.approx(3 * SEGMENT, abs=0.02)
    assert first["matched"]["query_start"] == 0.0
    assert [a["query_start"] for a in first["alignments"]] == pytest.approx([0.0, SEGMENT])
    assert doc["query"] == {"name": "query.wav", "seconds": 6.0, "segments": 2}
    assert "server-timing" in response.headers

    # the same answer as the library's, on the same samples
    index = zoo.search.load_index(server.catalogue.index)
    x, sr = sf.read(query, dtype="float32")
    expected = index.explain(x, top=4, source_sr=sr)
    assert [r["path"] for r in doc["results"]] == [
        str(Path(h.match.path).relative_to(server.catalogue.root)) for h in expected]
    np.testing.assert_allclose([r["distance"] for r in doc["results"]],
                               [h.match.distance for h in expected], atol=1e-5)

    plain = post(server, "/similar", query, top=2).json()  # explain off: no passages
    assert [r["path"] for r in plain["results"]] == [r["path"] for r in doc["results"][:2]]
    assert "alignments" not in plain["results"][0] and "matched" not in plain["results"][0]


def test_raw_body_answers_as_multipart(server, tmp_path):
    query = excerpt("real_rock_hedgewars", 1.0, 5.0, tmp_path / "rock.wav")
    multipart = post(server, "/similar", query, top=3).json()
    raw = httpx.post(f"{server.url}/similar", content=query.read_bytes(), timeout=TIMEOUT,
                     params={"top": 3, "filename": "rock.wav"},
                     headers={"Content-Type": "audio/wav"}).json()
    assert raw["results"] == multipart["results"]
    assert raw["query"]["name"] == "rock.wav"


def test_tag_returns_top_tags_and_taggram_of_zoo_tag(server, tmp_path):
    import zoo

    query = excerpt("real_rock_hedgewars", 0.0, 9.0, tmp_path / "rock.wav")
    response = post(server, "/tag", query, top=5)
    assert response.status_code == 200, response.text
    doc = response.json()
    expected = zoo.tag(str(query), model="musicnn_msd")
    assert doc["model"] == "musicnn_msd" and doc["tags"] == list(expected.tags)
    assert [t["tag"] for t in doc["top"]] == [t for t, _ in expected.top(5)]
    assert doc["times"] == pytest.approx(expected.times.tolist(), abs=1e-3)
    np.testing.assert_allclose(doc["probabilities"], expected.probabilities, atol=1e-4)


def test_a_short_or_silent_clip_is_answered_with_its_warning(server):
    short = post(server, "/tag", REPO / "tests/data/clips/synth_short_2s.flac").json()
    assert short["repeat_padded"] and any("shorter than one" in w for w in short["warnings"])
    silent = post(server, "/similar", CORPUS / "content/silence.flac").json()
    assert any("silent" in w for w in silent["warnings"]), silent["warnings"]


def test_catalogue_audio_streams_indexed_files_with_ranges(server):
    root = server.catalogue.root
    manifest = json.loads((server.catalogue.index / "manifest.json").read_text())
    for i, rel in enumerate(f["path"] for f in manifest["files"]):
        response = httpx.get(f"{server.url}/catalogue/{i}/audio", timeout=30)
        assert response.status_code == 200 and response.headers["content-type"] == "audio/flac"
        assert response.content == (root / rel).read_bytes()
    part = httpx.get(f"{server.url}/catalogue/0/audio", headers={"Range": "bytes=0-99"},
                     timeout=30)
    assert part.status_code == 206 and len(part.content) == 100  # players seek with ranges


# -- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [
    "/catalogue/../../../../etc/passwd/audio",
    "/catalogue/..%2F..%2F..%2F..%2Fetc%2Fpasswd/audio",
    "/catalogue/%2e%2e%2f%2e%2e%2fsetup.cfg/audio",
    "/catalogue/-1/audio", "/catalogue/4/audio", "/catalogue/1e0/audio",
    "/catalogue/abc/audio", "/catalogue/0x1/audio",
    "/static/../../../setup.cfg", "/static/..%2F..%2F..%2Fsetup.cfg",
    "/static/%2e%2e/%2e%2e/%2e%2e/setup.cfg", "/docs/assets/../../../../etc/passwd",
])
def test_paths_outside_the_catalogue_are_refused(server, target):
    status, body = raw_get(server, target)
    assert 400 <= status < 500, (status, body[:200])
    assert b"root:" not in body and b"[metadata]" not in body  # /etc/passwd, setup.cfg
    assert "error" in json.loads(body)


@pytest.mark.parametrize("case", [c for c in CASES if c["load"] == "error"],
                         ids=lambda c: c["file"])
def test_bad_corpus_files_are_refused_with_the_cli_reason(server, case):
    path = CORPUS / case["file"]
    message = error_of(post(server, "/similar", path), 422)
    assert message.startswith(f"{path.name}: ") and case["reason"] in message, message


@pytest.mark.parametrize("case", [c for c in CASES if c["load"] != "error"],
                         ids=lambda c: c["file"])
def test_odd_but_readable_corpus_files_are_answered(server, case):
    response = post(server, "/similar", CORPUS / case["file"], top=1)
    assert response.status_code == 200, response.text
    doc = response.json()
    assert len(doc["results"]) == 1 and np.isfinite(doc["results"][0]["distance"])
    for expected in (case["tag_warning"], case["reason"] if case["load"] == "warn" else None):
        if expected:
            assert any(expected in w for w in doc["warnings"]), doc["warnings"]


def test_bad_audio_on_tag_is_refused_too(server):
    message = error_of(post(server, "/tag", CORPUS / "truncated/flac_50pct.flac"), 422)
    assert "truncated or corrupt FLAC data" in message


def test_bad_requests_are_4xx_json_messages(server, tmp_path):
    query = excerpt("real_rock_hedgewars", 0.0, 4.0, tmp_path / "q.wav")
    url = server.url
    assert "no body" in error_of(httpx.post(f"{url}/similar", timeout=30), 400)
    assert "not audio" in error_of(httpx.post(
        f"{url}/similar", content=b"hello", headers={"Content-Type": "text/plain"},
        timeout=30), 415)
    assert "multipart field 'file'" in error_of(httpx.post(
        f"{url}/similar", files={"audio": ("q.wav", query.read_bytes())}, timeout=30), 400)
    assert "multipart field 'file'" in error_of(httpx.post(
        f"{url}/similar", data={"file": "not a file"}, files={"x": ("a", b"b")}, timeout=30),
        400)
    for params, words in (({"top": 0}, "top"), ({"top": 101}, "at most 100"),
                          ({"top": "ten"}, "top"), ({"explain": "maybe"}, "explain")):
        assert words in error_of(post(server, "/similar", query, **params), 422)
    assert error_of(httpx.get(f"{url}/similar", timeout=30), 405)
    assert error_of(httpx.get(f"{url}/nothing/here", timeout=30), 404)
    assert "the upload is too large" not in error_of(  # a broken multipart body
        httpx.post(f"{url}/tag", content=b"--x\r\nbroken", timeout=30,
                   headers={"Content-Type": "multipart/form-data; boundary=x"}), 400)


def test_oversized_uploads_and_long_recordings_are_refused(server, tmp_path):
    big = tmp_path / "big.wav"
    sf.write(big, np.zeros(int(0.6 * 2 ** 20), np.float32), 16000)  # 1.2 MiB of PCM_16
    assert "too large" in error_of(post(server, "/similar", big), 413)

    def chunks():  # no Content-Length: the limit holds while the body streams
        for _ in range(40):
            yield b"\0" * 65536

    assert "too large" in error_of(httpx.post(
        f"{server.url}/similar", content=chunks(), headers={"Content-Type": "audio/wav"},
        timeout=30), 413)
    long = tmp_path / "long.wav"  # 70 s at 4 kHz, 8-bit: small, but longer than the limit
    sf.write(long, np.zeros(70 * 4000, np.float32), 4000, subtype="PCM_U8")
    message = error_of(post(server, "/tag", long), 413)
    assert f"at most {MAX_SECONDS} s" in message and "70.0 s" in message
    assert httpx.get(f"{server.url}/health", timeout=30).json()["in_flight"] == 0


def test_twenty_concurrent_queries_are_all_answered_correctly(server, tmp_path):
    sources = {"real_orchestral_wesnoth": "real/real_orchestral_wesnoth.flac",
               "real_rock_hedgewars": "real/real_rock_hedgewars.flac",
               "real_electronic_warzone2100": "real/real_electronic_warzone2100.flac",
               "synth_music": "synth_music.flac"}
    queries = [(excerpt(track, 0.5 + k % 3, 5.0, tmp_path / f"{track}_{k}.wav"), path)
               for k, (track, path) in enumerate(list(sources.items()) * 5)]
    alone = {q: post(server, "/similar", q, top=3).json()["results"] for q, _ in queries}

    async def ask_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            async def ask(query: Path) -> httpx.Response:
                return await client.post(f"{server.url}/similar", params={"top": 3},
                                         files={"file": (query.name, query.read_bytes())})
            return await asyncio.gather(*(ask(q) for q, _ in queries))

    responses = asyncio.run(ask_all())
    assert len(responses) == 20
    for (query, source), response in zip(queries, responses, strict=True):
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert results[0]["path"] == source
        assert results == alone[query]  # queueing changes nothing in the answers
    assert httpx.get(f"{server.url}/health", timeout=30).json()["in_flight"] == 0


def test_openapi_docs_are_served(server):
    spec = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    assert {"/similar", "/tag", "/health", "/catalogue/{file_id}/audio"} <= set(spec["paths"])
    body = spec["paths"]["/similar"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body and "application/octet-stream" in body
    page = httpx.get(f"{server.url}/docs", timeout=30)
    assert page.status_code == 200 and "swagger" in page.text.lower()
