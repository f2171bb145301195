"""The parts of ``zoo serve`` on their own: the time-limited decoder processes, the catalogue
file guard, upload names, the matched passage, the limits."""

from __future__ import annotations

import json
import shutil

import pytest
from serve_helpers import CLIPS, REPO

from zoo.search.catalogue import Alignment
from zoo.service.backend import Backend, matched_range
from zoo.service.config import Limits, ServiceConfig
from zoo.service.decoding import DecoderPool
from zoo.service.errors import AudioTooLong, BadAudio, DecodeTimeout, RequestError

EXAMPLE = REPO / "zoo" / "data" / "example.ogg"  # 25 s, 44.1 kHz stereo


def _decode(pool: DecoderPool, path, max_seconds: float = 600):
    return pool.decode(path.read_bytes(), name=path.name, suffix=path.suffix,
                       sample_rate=16000, max_seconds=max_seconds)


def test_decoder_pool_decodes_like_zoo_audio():
    from zoo import audio

    pool = DecoderPool(1, timeout=60)
    try:
        decoded = _decode(pool, EXAMPLE)
        assert decoded.sample_rate == 16000 and decoded.name == "example.ogg"
        assert (decoded.samples == audio.load(EXAMPLE, sr=16000)).all()
        with pytest.raises(AudioTooLong, match=r"example.ogg: the recording is 25.0 s long; "
                                               r"this server takes at most 20 s"):
            _decode(pool, EXAMPLE, max_seconds=20)
        with pytest.raises(BadAudio, match=r"^flac_50pct.flac: truncated or corrupt FLAC"):
            _decode(pool, REPO / "tests/data/bad/truncated/flac_50pct.flac")
    finally:
        pool.close()


def test_a_decode_past_the_time_limit_is_stopped_and_its_process_replaced():
    pool = DecoderPool(1, timeout=0.001)  # less than any decode takes
    try:
        first = pool._all[0]
        with pytest.raises(DecodeTimeout, match="decoding took longer than 0.001 s") as caught:
            _decode(pool, EXAMPLE)
        assert caught.value.status == 422
        assert first.process.poll() is not None  # killed
        pool.timeout = 60
        assert _decode(pool, EXAMPLE).seconds == pytest.approx(25.0)  # a fresh process
        assert len(pool._all) == 1
    finally:
        pool.close()


def test_a_decoder_process_that_died_while_idle_is_replaced_first():
    pool = DecoderPool(1, timeout=60)
    try:
        pool._all[0].process.kill()
        pool._all[0].process.wait()
        assert _decode(pool, CLIPS / "synth_music.flac").seconds == pytest.approx(7.0)
    finally:
        pool.close()


def test_catalogue_files_outside_the_catalogue_are_refused(tmp_path):
    import zoo.search

    root = tmp_path / "music"
    root.mkdir()
    for name in ("synth_music", "synth_noise"):
        shutil.copy(CLIPS / f"{name}.flac", root / f"{name}.flac")
    index = tmp_path / "idx"
    zoo.search.build_index(root, index, model="musicnn_msd", progress=False)
    backend = Backend(zoo.search.load_index(index), tag_model=None)
    path, media_type = backend.catalogue_file(0)
    assert path == root / "synth_music.flac" and media_type == "audio/flac"
    assert backend._durations == [pytest.approx(7.0, abs=0.02), pytest.approx(4.0, abs=0.02)]

    manifest = json.loads((index / "manifest.json").read_text())
    for hostile in ("../outside.flac", "/etc/passwd", "a/../../x.flac", "C:/x.flac",
                    "a//b.flac", "..\\x.flac"):
        manifest["files"][1]["path"] = hostile  # an index altered by hand
        (index / "manifest.json").write_text(json.dumps(manifest))
        tampered = Backend(zoo.search.load_index(index), tag_model=None)
        with pytest.raises(RequestError, match="outside the catalogue") as caught:
            tampered.catalogue_file(1)
        assert caught.value.status == 403
    (root / "synth_music.flac").unlink()
    for file_id, words in ((0, "no longer there"), (2, "ids run from 0 to 1"), (-1, "no")):
        with pytest.raises(RequestError, match=words) as caught:
            tampered.catalogue_file(file_id)
        assert caught.value.status == 404


@pytest.mark.parametrize("given, shown", [
    ("song.mp3", "song.mp3"), ("../../etc/passwd", "passwd"), ("C:\\music\\a b.wav", "a b.wav"),
    ("evil\x00name\n.wav", "evilname.wav"), (None, ""), ("x" * 300 + ".wav", "x" * 116 + ".wav"),
])
def test_upload_names_keep_only_a_printable_last_part(given, shown):
    uploads = pytest.importorskip("zoo.service.uploads", reason="needs starlette: pip install "
                                  "'zoo-audio[serve]'")
    assert uploads.clean_name(given) == shown


def test_matched_range_follows_the_best_segment_offset():
    a = [Alignment(0.0, 3.0, 60.0, 63.0, 0.9), Alignment(3.0, 6.0, 63.0, 66.0, 0.95),
         Alignment(6.0, 9.0, 10.0, 13.0, 0.4)]  # the last query segment matched elsewhere
    assert matched_range(a, 3.0) == {"start": 60.0, "end": 66.0, "query_start": 0.0,
                                     "query_end": 6.0, "similarity": 0.925}
    assert matched_range(a[2:], 3.0)["start"] == 10.0


def test_limits_and_config():
    with pytest.raises(ValueError, match="max_top must be > 0"):
        Limits(max_top=0)
    config = ServiceConfig(index="/x.idx", tag_model=None, limits=Limits(max_upload_bytes=5),
                           verify=False)
    assert ServiceConfig.from_json(config.to_json()) == config
