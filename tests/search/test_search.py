"""Catalogue search: zoo.search (index build, query, resume, manifest checks) and the CLI."""

import hashlib
import json
import re
import shutil

import numpy as np
import pytest
import soundfile as sf

import zoo
from zoo.cli import main
from zoo.search import ann, catalogue, embedding, store
from zoo.search.errors import CorruptIndexError, IndexMismatchError, MissingDependencyError

CLIPS = "tests/data/clips"
REAL = ["real_rock_hedgewars", "real_electronic_warzone2100", "real_orchestral_wesnoth"]
SYNTH = ["synth_music", "synth_noise"]
MODEL = "musicnn_msd"


def _copy(names, folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(f"{CLIPS}/{name}.flac", folder / f"{name}.flac")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A catalogue of real and synthetic clips plus a near-duplicate of the rock clip."""
    root = tmp_path_factory.mktemp("catalogue")
    _copy(REAL[1:] + SYNTH, root)
    _copy(REAL[:1], root / "rock")
    x, sr = sf.read(f"{CLIPS}/{REAL[0]}.flac", dtype="float32")
    # 0.5 x gain, 0.4 s later start, a little noise: the "same recording" in another master.
    rng = np.random.default_rng(0)
    dupe = 0.5 * x[int(0.4 * sr):] + 0.002 * rng.standard_normal(len(x) - int(0.4 * sr))
    sf.write(root / "rock_remaster.wav", dupe.astype(np.float32), sr)
    out = tmp_path_factory.mktemp("index") / "cat.idx"
    report = zoo.search.build_index(root, out, model=MODEL, progress=False)
    return root, out, report


def test_build_report_and_files(built):
    root, out, report = built
    index = report.index
    assert report.failed == [] and report.embedded == len(index) == 6 and report.reused == 0
    assert [f.path for f in index.files] == sorted(f.path for f in index.files)
    assert "rock/real_rock_hedgewars.flac" in [f.path for f in index.files]
    assert not (out / store.PARTIAL).exists()


def test_each_file_finds_itself_first(built):
    root, out, _ = built
    index = zoo.search.load_index(out)
    assert index.level == "segment"
    for i, entry in enumerate(index.files):
        for level, hop, exact in (("segment", None, True), ("file", None, True),
                                  ("segment", 1.0, False)):
            matches = index.query(index.file_path(i), top=3, level=level, query_hop=hop)
            assert matches[0].path == str(root / entry.path), (level, hop)
            # segments on the catalogue's own 3 s grid (the default) match themselves exactly;
            # a 1 s query grid falls between them, but still next to them
            assert matches[0].distance < (1e-4 if exact else 0.05), (level, hop)
            assert [m.distance for m in matches] == sorted(m.distance for m in matches)


def test_near_duplicate_ranks_above_unrelated_audio(built):
    root, out, _ = built
    index = zoo.search.load_index(out)
    for level in ("segment", "file"):
        matches = index.query(str(root / "rock" / "real_rock_hedgewars.flac"), top=len(index),
                              level=level)
        paths = [m.path for m in matches]
        assert paths[1] == str(root / "rock_remaster.wav"), (level, matches)
        # and clearly so: the remaster is closer than anything unrelated by a margin
        assert matches[1].distance + 0.05 < matches[2].distance, level


def test_array_query_equals_file_query(built):
    root, out, _ = built
    index = zoo.search.load_index(out)
    x, sr = sf.read(f"{CLIPS}/synth_music.flac", dtype="float32")
    a = index.query(x, source_sr=sr, top=2)
    b = index.query(f"{CLIPS}/synth_music.flac", top=2)
    assert [m.path for m in a] == [m.path for m in b]
    np.testing.assert_allclose([m.distance for m in a], [m.distance for m in b], atol=1e-5)


def test_manifest_records_model_and_vectors(built):
    root, out, report = built
    manifest = json.loads((out / store.MANIFEST).read_text())
    config = zoo.get_preset(MODEL)
    from zoo.models.registry import get_architecture

    _, feature = get_architecture(config.architecture).taps(config.architecture_config)
    assert manifest["model"]["preset"] == MODEL
    assert manifest["model"]["weights_sha256"] == config.weights.sha256
    assert manifest["model"]["embedding"] == feature == "penultimate"
    assert manifest["metric"] == "cosine" and manifest["index"]["type"] == "flat"
    assert manifest["format_version"] == 2 and manifest["level"] == "segment"
    assert manifest["segment_index"]["type"] == "flat"
    segments = np.load(out / store.SEGMENTS, allow_pickle=False)
    offsets = np.load(out / store.SEGMENT_OFFSETS, allow_pickle=False)
    starts = np.load(out / store.SEGMENT_STARTS, allow_pickle=False)
    assert segments.shape == (manifest["segments"], 200) == (offsets[-1], 200)
    np.testing.assert_allclose(np.linalg.norm(segments, axis=1), 1.0, atol=1e-5)
    # every file's segments are its patches on the 3 s grid, the last one aligned to the end
    for i in range(len(offsets) - 1):
        t = starts[offsets[i]:offsets[i + 1]]
        assert t[0] == 0 and np.all(np.diff(t) > 0)
        np.testing.assert_allclose(np.diff(t)[:-1], 3.0, atol=0.02)  # hop on the frame grid
    assert manifest["root"] == str(root.resolve())
    assert manifest["zoo_version"] == zoo.__version__
    vectors = np.load(out / store.VECTORS, allow_pickle=False)
    assert vectors.shape == (manifest["count"], manifest["dim"]) == (6, 200)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    for name, record in manifest["data"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == record["sha256"]


def test_embedding_is_the_normalised_mean_of_patch_embeddings(built):
    model = zoo.load(MODEL, include_top=False)
    feats = zoo.extract(f"{CLIPS}/synth_music.flac", model=MODEL)["penultimate"]
    expected = feats.mean(axis=0) / np.linalg.norm(feats.mean(axis=0))
    got = embedding.TrackEmbedder(MODEL).embed(f"{CLIPS}/synth_music.flac")
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert model.output_shape[-1] == got.shape[0]
    seg = embedding.TrackEmbedder(MODEL).embed_segments(f"{CLIPS}/synth_music.flac")
    np.testing.assert_allclose(seg.vectors, feats / np.linalg.norm(feats, axis=1, keepdims=True),
                               atol=1e-5)
    np.testing.assert_allclose(seg.mean, expected, atol=1e-5)


# -- the CLI ------------------------------------------------------------------------------------

LINE = re.compile(r"^\s*(\d+)  (\d+\.\d{4})  (.+)$")


def test_cli_similar_prints_rank_distance_path(built, capsys):
    root, out, _ = built
    query = str(root / "synth_music.flac")
    assert main(["similar", query, "--index", str(out), "--top", "4", "--query-hop", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    parsed = [LINE.match(line).groups() for line in lines]
    assert [int(r) for r, _, _ in parsed] == [1, 2, 3, 4]
    distances = [float(d) for _, d, _ in parsed]
    assert distances == sorted(distances) and distances[0] == 0.0
    assert parsed[0][2] == query

    assert main(["similar", query, "--index", str(out), "--top", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"] == MODEL and [r["rank"] for r in doc["results"]] == [1, 2]
    assert doc["results"][0]["path"] == query


def test_cli_similar_bad_query_and_missing_index(built, tmp_path, capsys):
    _, out, _ = built
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    assert main(["similar", str(bad), "--index", str(out)]) == 1
    assert "bad.wav" in capsys.readouterr().err
    assert main(["similar", f"{CLIPS}/synth_music.flac", "--index", str(tmp_path / "no")]) == 2
    assert "not an index directory" in capsys.readouterr().err


def test_cli_index_reports_bad_files_and_indexes_the_rest(tmp_path, capsys):
    root = tmp_path / "music"
    _copy(["synth_music", "synth_short_2s"], root)
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00")
    (root / "empty.flac").write_bytes(b"")
    x, sr = sf.read(f"{CLIPS}/synth_noise.flac", dtype="int16")
    sf.write(root / "cut.wav", x, sr, subtype="PCM_16")
    data = (root / "cut.wav").read_bytes()
    (root / "cut.wav").write_bytes(data[: len(data) // 2])  # truncated: header says more
    (root / "notes.txt").write_text("not a sound")  # not an audio name: ignored, not an error
    out = tmp_path / "idx"
    code = main(["index", str(root), "--out", str(out), "--model", MODEL, "-q"])
    err = capsys.readouterr().err
    assert code == 1
    for name in ("broken.wav", "empty.flac", "cut.wav"):
        assert name in err
    assert "notes.txt" not in err
    index = zoo.search.load_index(out)
    assert [f.path for f in index.files] == ["synth_music.flac", "synth_short_2s.flac"]
    manifest = json.loads((out / store.MANIFEST).read_text())
    assert sorted(f["path"] for f in manifest["failed"]) == ["broken.wav", "cut.wav",
                                                              "empty.flac"]
    for name in ("broken.wav", "empty.flac", "cut.wav"):
        (root / name).unlink()
    assert main(["index", str(root), "--out", str(out), "-q"]) == 0  # model from the index


def test_default_model_is_siamese_or_a_clear_error(tmp_path, capsys, monkeypatch):
    root = tmp_path / "music"
    _copy(["synth_music"], root)
    assert embedding.DEFAULT_MODEL == "musicnn_msd_whitened_chroma_rhythm"
    if embedding.DEFAULT_MODEL in zoo.presets():
        monkeypatch.setattr(embedding.TrackEmbedder, "embed_segments", _fake_embed([]))
        assert main(["index", str(root), "--out", str(tmp_path / "idx"), "-q"]) == 0
        assert zoo.search.load_index(tmp_path / "idx").model.preset == embedding.DEFAULT_MODEL
    else:
        assert main(["index", str(root), "--out", str(tmp_path / "idx"), "-q"]) == 2
        err = capsys.readouterr().err
        assert embedding.DEFAULT_MODEL in err and "--model musicnn_msd" in err
        assert "Traceback" not in err


# -- resume, model changes, corrupt indexes (fake embeddings: no model runs) ---------------------


def _fake_embed(calls):
    """A stand-in for TrackEmbedder.embed_segments: 1-4 unit segment vectors drawn from the
    file's bytes; records calls."""

    def embed_segments(self, audio_or_path, *, source_sr=None, hop_seconds=None):
        calls.append(str(audio_or_path))
        seed = int.from_bytes(hashlib.sha256(open(audio_or_path, "rb").read()).digest()[:8],
                              "little")
        rng = np.random.default_rng(seed)
        seg = rng.standard_normal((int(rng.integers(1, 5)), 200))
        mean = seg.mean(axis=0)
        return embedding.Segments(
            (seg / np.linalg.norm(seg, axis=1, keepdims=True)).astype(np.float32),
            3.0 * np.arange(len(seg), dtype=np.float32),
            (mean / np.linalg.norm(mean)).astype(np.float32))

    return embed_segments


def _noise_files(folder, n, start=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    for i in range(start, start + n):
        sf.write(folder / f"t{i:03d}.wav", 0.1 * rng.standard_normal(1600).astype(np.float32),
                 16000)


def test_resume_after_interruption_embeds_only_the_rest(tmp_path, monkeypatch):
    root, out = tmp_path / "music", tmp_path / "idx"
    _noise_files(root, 7)
    calls = []
    fake = _fake_embed(calls)

    def interrupted(self, path, *, source_sr=None, hop_seconds=None):
        if len(calls) == 5:
            raise KeyboardInterrupt
        return fake(self, path, source_sr=source_sr, hop_seconds=hop_seconds)

    monkeypatch.setattr(embedding.TrackEmbedder, "embed_segments", interrupted)
    with pytest.raises(KeyboardInterrupt):
        zoo.search.build_index(root, out, model=MODEL, checkpoint_every=2, progress=False)
    assert len(calls) == 5
    assert not (out / store.MANIFEST).exists()
    saved = [item.entry.path for item in store.PartialStore(out).items()]
    assert saved == [f"t{i:03d}.wav" for i in range(5)]  # the last chunk was flushed too

    calls.clear()
    monkeypatch.setattr(embedding.TrackEmbedder, "embed_segments", fake)
    report = zoo.search.build_index(root, out, progress=False)  # model from the partial store
    assert [p.rsplit("/", 1)[1] for p in calls] == ["t005.wav", "t006.wav"]
    assert (report.embedded, report.reused) == (2, 5)
    assert len(report.index) == 7 and not (out / store.PARTIAL).exists()
    assert report.index.model.preset == MODEL

    # the resumed index equals one built in a single run
    calls.clear()
    single = zoo.search.build_index(root, tmp_path / "single", model=MODEL, progress=False)
    np.testing.assert_array_equal(single.index.vectors, report.index.vectors)
    # every file's segments are there exactly once, in order, next to their file
    np.testing.assert_array_equal(single.index.table.offsets, report.index.table.offsets)
    np.testing.assert_array_equal(single.index.segments, report.index.segments)
    np.testing.assert_array_equal(single.index.table.starts, report.index.table.starts)
    for i in range(len(report.index)):
        expected = fake(None, report.index.file_path(i))
        np.testing.assert_allclose(report.index.segments[report.index.table.rows(i)],
                                   expected.vectors, atol=1e-6)
    assert len(np.unique(report.index.segments, axis=0)) == report.index.table.n_segments


def test_rerun_embeds_new_and_changed_files_and_drops_deleted_ones(tmp_path, monkeypatch):
    root, out = tmp_path / "music", tmp_path / "idx"
    _noise_files(root, 4)
    calls = []
    monkeypatch.setattr(embedding.TrackEmbedder, "embed_segments", _fake_embed(calls))
    zoo.search.build_index(root, out, model=MODEL, progress=False)
    assert len(calls) == 4

    calls.clear()
    report = zoo.search.build_index(root, out, progress=False)
    assert calls == [] and report.reused == 4 and report.embedded == 0

    _noise_files(root, 1, start=10)  # new file
    _noise_files(root, 1, start=1)  # t001.wav rewritten: other size/mtime
    (root / "t003.wav").unlink()
    calls.clear()
    report = zoo.search.build_index(root, out, progress=False)
    assert sorted(p.rsplit("/", 1)[1] for p in calls) == ["t001.wav", "t010.wav"]
    assert (report.embedded, report.reused, report.removed) == (2, 2, 1)
    assert [f.path for f in report.index.files] == ["t000.wav", "t001.wav", "t002.wav",
                                                    "t010.wav"]


def test_changed_model_is_an_error_unless_overwrite(tmp_path, monkeypatch, capsys):
    root, out = tmp_path / "music", tmp_path / "idx"
    _noise_files(root, 3)
    calls = []
    monkeypatch.setattr(embedding.TrackEmbedder, "embed_segments", _fake_embed(calls))
    zoo.search.build_index(root, out, model=MODEL, progress=False)
    with pytest.raises(IndexMismatchError, match="musicnn_msd.*vgg_msd"):
        zoo.search.build_index(root, out, model="vgg_msd", progress=False)
    assert main(["index", str(root), "--out", str(out), "--model", "vgg_msd", "-q"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    calls.clear()
    assert main(["index", str(root), "--out", str(out), "--model", "vgg_msd", "--overwrite",
                 "-q"]) == 0
    assert len(calls) == 3
    manifest = json.loads((out / store.MANIFEST).read_text())
    assert manifest["model"]["preset"] == "vgg_msd" and manifest["model"]["embedding"] == "pool5"
    # another catalogue folder into the same index: also refused
    other = tmp_path / "other"
    _noise_files(other, 2)
    with pytest.raises(IndexMismatchError, match="other"):
        zoo.search.build_index(other, out, progress=False)


def test_out_folder_with_other_files_is_refused(tmp_path, monkeypatch):
    root = tmp_path / "music"
    _noise_files(root, 2)
    monkeypatch.setattr(embedding.TrackEmbedder, "embed_segments", _fake_embed([]))
    with pytest.raises(zoo.search.SearchError, match="not an index directory"):
        zoo.search.build_index(root, root, model=MODEL, progress=False)


def _fake_index(tmp_path, monkeypatch, n=3):
    root, out = tmp_path / "music", tmp_path / "idx"
    _noise_files(root, n)
    monkeypatch.setattr(embedding.TrackEmbedder, "embed_segments", _fake_embed([]))
    zoo.search.build_index(root, out, model=MODEL, progress=False)
    return out


def test_load_refuses_altered_or_truncated_files(tmp_path, monkeypatch):
    out = _fake_index(tmp_path, monkeypatch)
    zoo.search.load_index(out)
    vectors = bytearray((out / store.VECTORS).read_bytes())
    vectors[-1] ^= 0xFF
    (out / store.VECTORS).write_bytes(bytes(vectors))
    with pytest.raises(CorruptIndexError, match="sha256"):
        zoo.search.load_index(out)
    vectors[-1] ^= 0xFF
    (out / store.VECTORS).write_bytes(bytes(vectors))
    index_bytes = (out / store.INDEX_FILE).read_bytes()
    (out / store.INDEX_FILE).write_bytes(index_bytes[:-20])
    with pytest.raises(CorruptIndexError, match="truncated"):
        zoo.search.load_index(out)
    (out / store.INDEX_FILE).write_bytes(index_bytes)
    manifest = json.loads((out / store.MANIFEST).read_text())
    manifest["count"] = 4
    (out / store.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CorruptIndexError, match="files for 4 vectors"):
        zoo.search.load_index(out)
    (out / store.MANIFEST).write_text("{ not json")
    with pytest.raises(CorruptIndexError, match="cannot read"):
        zoo.search.load_index(out)


def test_query_refuses_a_model_that_no_longer_matches(tmp_path, monkeypatch):
    out = _fake_index(tmp_path, monkeypatch)
    manifest = json.loads((out / store.MANIFEST).read_text())
    manifest["model"]["weights_sha256"] = "0" * 64
    (out / store.MANIFEST).write_text(json.dumps(manifest))
    index = zoo.search.load_index(out)
    with pytest.raises(IndexMismatchError, match="rebuild"):
        index.query(f"{CLIPS}/synth_music.flac")


def test_missing_faiss_gives_an_install_hint(tmp_path, monkeypatch, capsys):
    out = _fake_index(tmp_path, monkeypatch)
    monkeypatch.setitem(__import__("sys").modules, "faiss", None)
    with pytest.raises(MissingDependencyError, match=r"zoo-audio\[search\]"):
        zoo.search.load_index(out)
    assert main(["similar", f"{CLIPS}/synth_music.flac", "--index", str(out)]) == 2
    assert "pip install 'zoo-audio[search]'" in capsys.readouterr().err


# -- the ANN layer ------------------------------------------------------------------------------


def _clustered(n, dim, rng, centres):
    labels = rng.integers(len(centres), size=n)
    x = centres[labels] + 1.2 * rng.standard_normal((n, dim))
    return ann.normalize_rows(x)


def test_ivf_recall_at_10_against_exact_search():
    rng = np.random.default_rng(7)
    dim = 32
    centres = rng.standard_normal((150, dim))
    vectors = _clustered(20_000, dim, rng, centres)
    queries = _clustered(300, dim, rng, centres)  # not in the index
    index, params = ann.build_ann(vectors, "ivf")
    assert params.type == "ivf" and params.nlist == ann.default_nlist(20_000)
    assert params.nprobe < params.nlist  # really approximate
    assert params.calibrated_recall >= ann.TARGET_RECALL
    _, exact = ann.exact_knn(queries, vectors, 10)
    distances, found = ann.search(index, queries, 10)
    assert ann.recall_at_k(found, exact, 10) >= 0.95
    # scanning one cell only is clearly worse: the calibration is doing the work
    index.nprobe = 1
    assert ann.recall_at_k(index.search(queries, 10)[1], exact, 10) < 0.8
    assert np.all(np.diff(distances, axis=1) >= -1e-6) and distances.min() >= 0


def test_recall_at_k_counts_overlap():
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert ann.recall_at_k(truth, truth, 4) == 1.0
    assert ann.recall_at_k(np.array([[1, 2, 9, 9], [8, 7, 6, 5]]), truth, 4) == 0.75


def test_auto_index_type_and_ivf_parameters_survive_saving(tmp_path):
    assert ann.choose_index_type(ann.FLAT_MAX) == "flat"
    assert ann.choose_index_type(ann.FLAT_MAX + 1) == "ivf"
    with pytest.raises(ValueError, match="at least"):
        ann.choose_index_type(10, "ivf")
    rng = np.random.default_rng(1)
    vectors = ann.normalize_rows(rng.standard_normal((3000, 16)))
    files = [store.FileEntry(f"f{i}.wav", 1, 1) for i in range(3000)]
    info = embedding.ModelInfo("musicnn_msd", "musicnn_msd", "ab" * 32, "musicnn", "penultimate")
    written = catalogue.write_index(tmp_path / "idx", vectors, files, info, tmp_path,
                                    index_type="ivf")
    loaded = zoo.search.load_index(tmp_path / "idx")
    assert loaded.params == written.params and loaded.params.type == "ivf"
    assert loaded.faiss_index.nprobe == written.params.nprobe
    top = loaded.query_vector(vectors[123], top=5)
    assert top[0].path.endswith("f123.wav") and top[0].distance < 1e-5
