"""Segment-level search: aggregation, candidates + exact re-ranking, IVF-PQ, the index format
(round trip, corrupt and foreign indexes, format-1 indexes), --explain."""

import hashlib
import json

import numpy as np
import pytest
import soundfile as sf

import zoo
from zoo.cli import main
from zoo.search import ann, catalogue, embedding, segments, store
from zoo.search.errors import CorruptIndexError, SearchError
from zoo.search.segments import SegmentTable

DIM = 16
INFO = embedding.ModelInfo("musicnn_msd", "musicnn_msd", "ab" * 32, "musicnn", "penultimate",
                           patch_seconds=2.992)


def _unit(x):
    return ann.normalize_rows(np.asarray(x, np.float64))


def _passages(rng, n):
    return _unit(rng.standard_normal((n, DIM)))


# -- aggregation on vectors where the answer is known ------------------------------------------


def test_segment_aggregation_finds_the_file_holding_the_passage_a_file_mean_misses():
    """File A holds the query's three passages among seven unrelated ones; file B holds none
    of them but its mean points where the query's mean does. The segment score must rank A
    first, a file-mean score ranks B first (so this test fails if aggregation is replaced by
    file means)."""
    rng = np.random.default_rng(0)
    query = _passages(rng, 3)
    a = np.concatenate([_passages(rng, 7), query + 0.05 * rng.standard_normal((3, DIM))])
    b = _unit(query.mean(axis=0, keepdims=True) + 0.3 * rng.standard_normal((4, DIM)))
    c = _passages(rng, 5)
    seg = _unit(np.concatenate([a, b, c]))
    table = SegmentTable.from_counts([10, 4, 5], np.arange(19, dtype=np.float32))
    exact = segments.exact_scores(query, seg, table)
    assert np.argmax(exact) == 0
    means = _unit(np.stack([seg[table.rows(i)].mean(axis=0) for i in range(3)]))
    assert np.argmax(means @ _unit(query.mean(axis=0, keepdims=True))[0]) == 1

    ranked = segments.rank_files(query, seg, table, ann.flat_segment_search(seg), top=3)
    assert [s.file for s in ranked] == list(np.argsort(-exact))
    np.testing.assert_allclose([s.score for s in ranked], np.sort(exact)[::-1], atol=1e-6)
    best = ranked[0]
    # each query passage is matched to its own copy in A (rows 7, 8, 9)
    assert best.best_rows.tolist() == [7, 8, 9]
    assert best.score == pytest.approx(np.mean(best.best_similarities), abs=1e-6)


def test_score_is_mean_over_query_segments_of_best_catalogue_segment():
    q = _unit([[1, 0, 0, 0], [0, 1, 0, 0]])
    seg = _unit([[1, 0, 0, 0], [0.6, 0.8, 0, 0], [0, 0, 1, 0]])
    table = SegmentTable.from_counts([2, 1], np.zeros(3, np.float32))
    score = segments.score_file(q, seg, table, 0)
    assert score.score == pytest.approx((1.0 + 0.8) / 2)
    assert score.best_rows.tolist() == [0, 1]
    assert segments.score_file(q, seg, table, 1).score == pytest.approx(0.0, abs=1e-7)
    np.testing.assert_allclose(segments.exact_scores(q, seg, table), [0.9, 0.0], atol=1e-6)


def test_candidates_come_from_fetched_segments_and_partial_scores_order_them():
    table = SegmentTable.from_counts([2, 2, 2], np.zeros(6, np.float32))
    sims = np.array([[0.9, 0.5], [0.8, 0.1]], np.float32)
    ids = np.array([[4, 0], [1, -1]])  # query 0 -> file 2 (0.9), file 0 (0.5); query 1 -> 0
    files = segments.candidate_files(sims, ids, table, max_candidates=10)
    assert files.tolist() == [0, 2]  # file 0: (0.5 + 0.8) / 2 beats file 2: 0.9 / 2
    assert segments.candidate_files(sims, ids, table, max_candidates=1).tolist() == [0]
    assert segments.candidate_files(sims, -np.ones_like(ids), table, 5).size == 0


def test_table_checks_and_file_lookup():
    table = SegmentTable.from_counts([3, 1, 2], np.arange(6, dtype=np.float32))
    assert table.files_of(np.arange(6)).tolist() == [0, 0, 0, 1, 2, 2]
    assert table.rows(2) == slice(4, 6) and table.check() is None
    assert "at least one segment" in SegmentTable.from_counts([2, 0], np.zeros(2)).check()
    assert "start times" in SegmentTable.from_counts([2], np.zeros(3)).check()


# -- IVF-PQ with exact re-ranking ----------------------------------------------------------------


def _catalogue(rng, files, per_file, dim=DIM, centres=60):
    """Clustered segments: each file draws its segments around two of the centres."""
    c = rng.standard_normal((centres, dim))
    rows = []
    for _ in range(files):
        own = c[rng.choice(centres, 2, replace=False)]
        pick = own[rng.integers(2, size=per_file)]
        rows.append(pick + 0.6 * rng.standard_normal((per_file, dim)))
    seg = _unit(np.concatenate(rows))
    starts = np.tile(np.arange(per_file, dtype=np.float32) * 3, files)
    return seg, SegmentTable.from_counts([per_file] * files, starts)


@pytest.mark.parametrize("dim", [32, 31])  # 31: no divisor gives PQ codes; zero-padded to 32
def test_ivfpq_candidates_reranked_exactly_match_exact_search(dim):
    rng = np.random.default_rng(3)
    seg, table = _catalogue(rng, files=1500, per_file=8, dim=dim)
    index = ann.build_ivfpq(seg, seed=0)
    assert type(index).__name__ == "IndexIVFPQ" and index.code_size == ann.pq_bytes(dim) == 8
    assert index.d == 32
    nprobe, recall, curve, _ = segments.calibrate_nprobe(index, seg, table, n_queries=60)
    assert recall >= 0.97 and nprobe <= index.nlist and str(nprobe) in curve
    # queries: noisy copies of 3 segments of a file -> that file must come first
    hits = 0
    for f in rng.choice(table.n_files, 40, replace=False):
        rows = table.rows(int(f))
        q = _unit(seg[rows][:3] + 0.1 * rng.standard_normal((3, dim)))
        exact = segments.exact_scores(q, seg, table)
        approx = segments.rank_files(q, seg, table, ann.index_segment_search(index), top=5)
        assert approx[0].score == pytest.approx(exact[approx[0].file], abs=1e-5)  # re-ranked
        hits += approx[0].file == int(np.argmax(exact))
    assert hits >= 38
    with pytest.raises(ValueError, match="at least"):
        ann.choose_segment_index_type(1000, "ivfpq")
    assert ann.choose_segment_index_type(ann.SEGMENT_FLAT_MAX) == "flat"
    assert ann.choose_segment_index_type(ann.SEGMENT_FLAT_MAX + 1) == "ivfpq"


# -- the index format ------------------------------------------------------------------------------


def _write(tmp_path, n_files=30, per_file=4, seed=0, dim=DIM, **kwargs):
    rng = np.random.default_rng(seed)
    seg, table = _catalogue(rng, n_files, per_file, dim=dim)
    means = _unit(np.stack([seg[table.rows(i)].mean(axis=0) for i in range(n_files)]))
    files = [store.FileEntry(f"f{i:03d}.wav", 100 + i, 7) for i in range(n_files)]
    idx = catalogue.write_index(tmp_path / "idx", means, files, INFO, tmp_path,
                                segment_vectors=seg, table=table, **kwargs)
    return idx, seg, table


def test_round_trip_keeps_segments_table_and_answers(tmp_path):
    written, seg, table = _write(tmp_path)
    loaded = zoo.search.load_index(tmp_path / "idx")
    assert loaded.level == "segment" and loaded.segment_params.type == "flat"
    np.testing.assert_allclose(loaded.segments, seg, atol=1e-6)  # renormalised on write
    np.testing.assert_array_equal(loaded.table.offsets, table.offsets)
    np.testing.assert_array_equal(loaded.table.starts, table.starts)
    q = seg[table.rows(7)][1:3]
    a, b = written.rank_segments(q, top=3), loaded.rank_segments(q, top=3)
    assert [s.file for s in a] == [s.file for s in b] and a[0].file == 7
    assert a[0].distance == pytest.approx(0.0, abs=1e-6)
    assert not (tmp_path / "idx" / store.SEGMENT_INDEX_FILE).exists()  # flat: an exact scan


@pytest.mark.parametrize("dim", [16, 18])  # 18: stored zero-padded to 20
def test_ivfpq_index_round_trip(tmp_path, dim):
    written, seg, table = _write(tmp_path, n_files=1300, per_file=8, dim=dim,
                                 segment_index_type="ivfpq")
    loaded = zoo.search.load_index(tmp_path / "idx")
    assert loaded.segment_params.type == "ivfpq"
    assert loaded.segment_index.nprobe == written.segment_params.nprobe
    assert loaded.segment_params.calibrated_recall >= ann.TARGET_RECALL
    q = seg[table.rows(123)][2:5]
    assert loaded.rank_segments(q, top=1)[0].file == 123


def test_corrupt_or_foreign_index_is_refused(tmp_path):
    _write(tmp_path)
    out = tmp_path / "idx"
    seg_bytes = bytearray((out / store.SEGMENTS).read_bytes())
    seg_bytes[-3] ^= 0x55
    (out / store.SEGMENTS).write_bytes(bytes(seg_bytes))
    with pytest.raises(CorruptIndexError, match="segments.npy does not match the sha256"):
        zoo.search.load_index(out)
    seg_bytes[-3] ^= 0x55
    (out / store.SEGMENTS).write_bytes(bytes(seg_bytes))
    (out / store.SEGMENT_STARTS).unlink()
    with pytest.raises(CorruptIndexError, match="segment_starts.npy is missing"):
        zoo.search.load_index(out)

    # consistent files and sha256s, but offsets that do not cover the segments
    _write(tmp_path)
    bad = np.load(out / store.SEGMENT_OFFSETS)
    bad[5] = bad[4]
    np.save(out / store.SEGMENT_OFFSETS, bad)
    manifest = json.loads((out / store.MANIFEST).read_text())
    manifest["data"][store.SEGMENT_OFFSETS] = {
        "bytes": (out / store.SEGMENT_OFFSETS).stat().st_size,
        "sha256": hashlib.sha256((out / store.SEGMENT_OFFSETS).read_bytes()).hexdigest()}
    (out / store.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CorruptIndexError, match="at least one segment"):
        zoo.search.load_index(out)

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / store.MANIFEST).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CorruptIndexError, match="not a zoo search index"):
        zoo.search.load_index(foreign)
    (foreign / store.MANIFEST).write_text(json.dumps({"format": store.FORMAT,
                                                      "format_version": 99}))
    with pytest.raises(CorruptIndexError, match="upgrade zoo"):
        zoo.search.load_index(foreign)
    assert main(["similar", "x.wav", "--index", str(foreign)]) == 2


def _format1_index(tmp_path, n=5):
    """An index as zoo wrote it before segment search (format 1: file vectors only)."""
    import faiss

    root, out = tmp_path / "music", tmp_path / "old.idx"
    root.mkdir()
    out.mkdir()
    rng = np.random.default_rng(5)
    vectors = _unit(rng.standard_normal((n, 200))).astype(np.float32)
    files = []
    for i in range(n):
        sf.write(root / f"t{i}.wav", 0.1 * rng.standard_normal(1600).astype(np.float32), 16000)
        st = (root / f"t{i}.wav").stat()
        files.append({"path": f"t{i}.wav", "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    np.save(out / "vectors.npy", vectors)
    index = faiss.IndexFlatIP(200)
    index.add(vectors)
    faiss.write_index(index, str(out / "index.faiss"))
    config = zoo.get_preset("musicnn_msd")
    model = {"preset": "musicnn_msd", "name": "musicnn_msd",
             "weights_sha256": config.weights.sha256, "architecture": "musicnn",
             "embedding": "penultimate", "hop_seconds": 3.0, "tail": "end"}
    data = {name: {"bytes": (out / name).stat().st_size,
                   "sha256": hashlib.sha256((out / name).read_bytes()).hexdigest()}
            for name in ("vectors.npy", "index.faiss")}
    manifest = {"format": store.FORMAT, "format_version": 1, "zoo_version": "0.1.0",
                "model": model, "dim": 200, "metric": "cosine", "index": {"type": "flat"},
                "count": n, "root": str(root), "files": files, "failed": [], "data": data}
    (out / store.MANIFEST).write_text(json.dumps(manifest))
    return root, out, vectors


def test_format1_index_still_loads_and_answers_file_queries(tmp_path, capsys):
    root, out, vectors = _format1_index(tmp_path)
    index = zoo.search.load_index(out)
    assert index.level == "file" and index.segments is None
    top = index.query_vector(vectors[3], top=2)
    assert top[0].path.endswith("t3.wav") and top[0].distance < 1e-5
    with pytest.raises(SearchError, match="--overwrite"):
        index.explain(str(root / "t0.wav"))
    with pytest.raises(SearchError, match="level='file'"):
        index.query(str(root / "t0.wav"), level="segment")
    assert main(["similar", str(root / "t0.wav"), "--index", str(out), "--explain"]) == 2
    err = capsys.readouterr().err
    assert "one vector per file" in err and "--overwrite" in err and "Traceback" not in err


def test_building_over_a_format1_index_embeds_segments_again(tmp_path, monkeypatch, capsys):
    from test_search import _fake_embed  # same folder (on sys.path)

    root, out, _ = _format1_index(tmp_path)
    calls = []
    monkeypatch.setattr(embedding.TrackEmbedder, "embed_segments", _fake_embed(calls))
    report = zoo.search.build_index(root, out, progress=False)
    assert len(calls) == 5 and report.reused == 0 and report.index.level == "segment"
    assert "embedding every file again" in capsys.readouterr().err
    # a file-level rebuild over a segment index reuses everything
    calls.clear()
    report = zoo.search.build_index(root, out, level="file", progress=False)
    assert calls == [] and report.reused == 5 and report.index.level == "file"
    assert not (out / store.SEGMENTS).exists()


# -- explain, on real audio --------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_index(tmp_path_factory):
    root = tmp_path_factory.mktemp("music")
    for name in ("real_rock_hedgewars", "real_electronic_warzone2100",
                 "real_orchestral_wesnoth"):
        x, sr = sf.read(f"tests/data/clips/{name}.flac", dtype="float32")
        sf.write(root / f"{name}.wav", x, sr)
    out = tmp_path_factory.mktemp("idx") / "i"
    zoo.search.build_index(root, out, model="musicnn_msd", progress=False)
    return root, out


def test_explain_times_line_up_with_query_segments(real_index):
    root, out = real_index
    index = zoo.search.load_index(out)
    x, sr = sf.read(root / "real_orchestral_wesnoth.wav", dtype="float32")
    i = [f.path for f in index.files].index("real_orchestral_wesnoth.wav")
    second = float(index.table.starts[index.table.rows(i)][1])  # 2.992 s: 187 frames of 256
    start = int(round(second * sr))  # the query is the file from its second segment on
    hit = index.explain(x[start:start + 7 * sr], top=1, source_sr=sr, query_hop=3.0)[0]
    assert hit.match.path.endswith("real_orchestral_wesnoth.wav")
    query = index.embed_segments(x[start:start + 7 * sr], source_sr=sr, query_hop=3.0)
    assert [a.query_start for a in hit.alignments] == pytest.approx(query.starts.tolist())
    patch = index.patch_seconds
    for a in hit.alignments:
        assert a.query_end - a.query_start == pytest.approx(patch)
        assert a.catalogue_end - a.catalogue_start == pytest.approx(patch)
    # the query's segments are the catalogue's second, third, ... (the same samples, but for
    # the STFT padding at the query's edges)
    for k, a in enumerate(hit.alignments[:2]):
        assert a.catalogue_start == pytest.approx(second * (k + 1), abs=0.02)
        assert a.similarity > 0.95
    assert hit.match.distance == pytest.approx(
        1 - np.mean([a.similarity for a in hit.alignments]), abs=1e-5)


def test_cli_explain_prints_and_writes_alignments(real_index, capsys):
    root, out = real_index
    query = str(root / "real_rock_hedgewars.wav")
    assert main(["similar", query, "--index", str(out), "--top", "1", "--explain"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[2] == query
    assert lines[1].strip().startswith("query 0:00.0-0:03.0  ->  ")
    assert main(["similar", query, "--index", str(out), "--top", "2", "--explain",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["level"] == "segment" and len(doc["results"]) == 2
    al = doc["results"][0]["alignments"]
    assert al[0]["query_start"] == 0.0 and {"catalogue_start", "similarity"} <= set(al[0])
    assert main(["similar", query, "--index", str(out), "--level", "file", "--top", "1"]) == 0
    assert capsys.readouterr().out.split()[2] == query
    for bad in (["--top", "0"], ["--query-hop", "0"], ["--level", "file", "--explain"]):
        assert main(["similar", query, "--index", str(out), *bad]) == 2
        err = capsys.readouterr().err
        assert "zoo similar" in err and "Traceback" not in err
