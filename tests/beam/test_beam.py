"""zoo.beam on the DirectRunner: good and bad files, parity with the single-process path,
resume after an interrupted run, the Parquet schema, index from shards, and the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("apache_beam")
pytest.importorskip("pyarrow")

import pyarrow as pa  # noqa: E402

import zoo  # noqa: E402
from zoo.beam import Dataset, DatasetError, resolve_source, run_catalogue  # noqa: E402
from zoo.beam.index import build_index_from_dataset  # noqa: E402
from zoo.beam.shards import TAGGRAM_SCHEMA  # noqa: E402
from zoo.cli import main, split_beam_args  # noqa: E402
from zoo.inference.precision import cpu_bf16_flags  # noqa: E402

CLIPS = Path(__file__).resolve().parents[1] / "data" / "clips"
GOOD = ["real_rock_hedgewars.flac", "real_orchestral_wesnoth.flac", "synth_music.flac",
        "synth_short_2s.flac"]
BAD = {"empty.wav": "empty file", "text.mp3": "not an audio file",
       "truncated.wav": "truncated WAV", "nan.wav": "NaN", "truncated.flac": "truncated",
       "noise.bin.ogg": "not an audio file"}


def make_catalogue(root: Path) -> Path:
    """4 real/synthetic clips (one in a subfolder) and 6 bad files."""
    (root / "sub").mkdir(parents=True)
    for i, name in enumerate(GOOD):
        shutil.copy(CLIPS / name, root / ("sub" if i == 0 else ".") / name)
    (root / "empty.wav").write_bytes(b"")
    (root / "text.mp3").write_text("this is not an mp3\n" * 20)
    sr = 16000
    x = (0.2 * np.sin(np.arange(sr * 5) * 0.05)).astype(np.float32)
    sf.write(root / "full.wav", x, sr)
    data = (root / "full.wav").read_bytes()
    (root / "truncated.wav").write_bytes(data[: len(data) // 2])
    (root / "full.wav").unlink()
    y = x.copy()
    y[1000] = np.nan
    sf.write(root / "nan.wav", y, sr, subtype="FLOAT")
    sf.write(root / "full.flac", x, sr)
    data = (root / "full.flac").read_bytes()
    (root / "truncated.flac").write_bytes(data[: len(data) // 2])
    (root / "full.flac").unlink()
    (root / "noise.bin.ogg").write_bytes(np.random.default_rng(0).bytes(3000))
    (root / "notes.txt").write_text("not audio, ignored by name")
    return root


def good_paths() -> list[str]:
    return sorted([f"sub/{GOOD[0]}", *GOOD[1:]])


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory) -> Path:
    return make_catalogue(tmp_path_factory.mktemp("beam") / "music")


@pytest.fixture(scope="module")
def tagged(catalogue, tmp_path_factory):
    out = tmp_path_factory.mktemp("beam_out") / "tags"
    report = run_catalogue("taggrams", str(catalogue), str(out), "musicnn_msd")
    return out, report


def test_every_good_file_once_every_bad_one_in_the_dead_letter(tagged, catalogue):
    out, report = tagged
    assert report.files == len(GOOD)
    rows = Dataset(str(out)).read("files").to_pylist()
    assert [r["path"] for r in rows] == good_paths()
    failed = {Path(p).name: (reason, stage) for p, reason, stage in report.failed}
    assert set(failed) == set(BAD)
    for name, words in BAD.items():
        assert words in failed[name][0], (name, failed[name])
        assert failed[name][1] == "decode"
    # The dead-letter table holds the same, and the counters count them.
    dead = Dataset(str(out)).read("failed").to_pylist()
    assert sorted(Path(r["path"]).name for r in dead) == sorted(BAD)
    assert report.counters["files_failed_decode"] == len(BAD)
    assert report.counters["files_decoded"] == len(GOOD)


def test_taggrams_equal_zoo_tag(tagged, catalogue):
    out, _ = tagged
    for row in Dataset(str(out)).read("files").to_pylist():
        reference = zoo.tag(os.path.join(catalogue, row["path"]), model="musicnn_msd")
        taggram = np.asarray(row["taggram"], np.float32)
        assert taggram.shape == reference.probabilities.shape
        assert np.abs(taggram - reference.probabilities).max() <= 1e-5
        assert np.abs(np.asarray(row["mean"]) - reference.mean).max() <= 1e-5
        np.testing.assert_allclose(row["times"], reference.times, atol=1e-5)
        assert row["patches"] == len(reference.times)
        assert row["size"] == (catalogue / row["path"]).stat().st_size
        assert row["duration"] == pytest.approx(sf.info(catalogue / row["path"]).duration,
                                                abs=1e-3)


def test_parquet_schema(tagged):
    out, _ = tagged
    ds = Dataset(str(out))
    table = ds.read("files")
    for field in TAGGRAM_SCHEMA:
        assert table.schema.field(field.name).type == field.type, field.name
    assert table.schema.field("taggram").type == pa.list_(pa.list_(pa.float32()))
    assert ds.manifest["kind"] == "taggrams"
    assert ds.manifest["tags"] == list(zoo.get_preset("musicnn_msd").tags)
    assert ds.manifest["model"]["weights_sha256"] == table.column("weights_sha256")[0].as_py()
    assert set(table.column("model").to_pylist()) == {"musicnn_msd"}


def test_rerun_processes_only_new_or_changed_files(catalogue, tmp_path):
    src = tmp_path / "music"
    shutil.copytree(catalogue, src)
    out = tmp_path / "tags"
    first = run_catalogue("taggrams", str(src), str(out), "musicnn_msd")
    assert first.files == len(GOOD)
    again = run_catalogue("taggrams", str(src), str(out), "musicnn_msd")
    assert again.files == 0
    # A changed file (new content, new size) and a new file go through; nothing else does.
    shutil.copy(CLIPS / "synth_loud.flac", src / "synth_music.flac")
    shutil.copy(CLIPS / "synth_noise.flac", src / "new.flac")
    third = run_catalogue("taggrams", str(src), str(out), "musicnn_msd")
    assert third.files == 2
    rows = Dataset(str(out)).read("files").to_pylist()
    paths = [r["path"] for r in rows]
    assert paths == sorted(set(paths)) == sorted([*good_paths(), "new.flac"])
    changed = next(r for r in rows if r["path"] == "synth_music.flac")
    reference = zoo.tag(src / "synth_music.flac", model="musicnn_msd")
    assert np.abs(np.asarray(changed["taggram"]) - reference.probabilities).max() <= 1e-5
    assert len(Dataset(str(out)).runs) == 3


def test_a_run_killed_before_its_commit_leaves_nothing_read(catalogue, tmp_path, monkeypatch):
    out = tmp_path / "tags"

    def killed(self, run_id, stats):
        raise KeyboardInterrupt

    monkeypatch.setattr(Dataset, "commit", killed)
    with pytest.raises(KeyboardInterrupt):
        run_catalogue("taggrams", str(catalogue), str(out), "musicnn_msd")
    monkeypatch.undo()
    ds = Dataset(str(out))
    assert ds.runs == [] and len(ds.read("files")) == 0
    stale = list((out / "runs").iterdir())
    assert len(stale) == 1 and any(stale[0].glob("files-*.parquet"))  # shards were written
    report = run_catalogue("taggrams", str(catalogue), str(out), "musicnn_msd")
    assert report.files == len(GOOD)
    assert not stale[0].exists()  # the uncommitted run was removed
    assert [r["path"] for r in Dataset(str(out)).read("files").to_pylist()] == good_paths()


def test_another_model_is_refused_without_overwrite(tagged, catalogue):
    out, _ = tagged
    with pytest.raises(DatasetError, match="--overwrite"):
        run_catalogue("taggrams", str(catalogue), str(out), "musicnn_mtt")


def test_sources_glob_and_list_file(catalogue, tmp_path):
    listing = tmp_path / "files.txt"
    listing.write_text(f"# a catalogue\n{catalogue / GOOD[1]}\n\n{GOOD[2]}\nmissing.flac\n"
                       f"{catalogue / GOOD[1]}\n")
    shutil.copy(CLIPS / GOOD[2], tmp_path / GOOD[2])  # relative to the list's folder
    assert resolve_source(str(listing)).kind == "list"
    report = run_catalogue("taggrams", str(listing), str(tmp_path / "a"), "musicnn_msd")
    assert report.files == 2  # the duplicate line is processed once
    assert [(Path(p).name, s) for p, _, s in report.failed] == [("missing.flac", "match")]
    glob = resolve_source(str(catalogue / "real_*.flac"))
    assert glob.kind == "glob" and glob.root == str(catalogue)
    report = run_catalogue("taggrams", glob.spec, str(tmp_path / "b"), "musicnn_msd")
    assert report.files == 1 and report.failed == []
    with pytest.raises(FileNotFoundError):
        resolve_source(str(tmp_path / "nothing_here"))


@pytest.mark.slow
def test_embeddings_index_from_shards_equals_zoo_index(catalogue, tmp_path):
    from zoo.search import build_index

    shards = tmp_path / "beam.idx" / "shards"
    report = run_catalogue("embeddings", str(catalogue), str(shards), "musicnn_msd",
                           beam_args=["--direct_num_workers=2",
                                      "--direct_running_mode=multi_processing"])
    assert report.files == len(GOOD) and len(report.failed) == len(BAD)
    beam_index = build_index_from_dataset(str(shards), tmp_path / "beam.idx")
    single = build_index(catalogue, tmp_path / "single.idx", model="musicnn_msd",
                         progress=False, on_failure=lambda p, r: None).index
    assert [f.path for f in beam_index.files] == [f.path for f in single.files]
    assert np.abs(np.asarray(beam_index.vectors) - single.vectors).max() <= 1e-5
    assert np.abs(np.asarray(beam_index.segments) - single.segments).max() <= 1e-5
    np.testing.assert_array_equal(beam_index.table.offsets, single.table.offsets)
    np.testing.assert_allclose(beam_index.table.starts, single.table.starts, atol=1e-5)
    assert sorted(f["path"] for f in beam_index.manifest["failed"]) == sorted(BAD)
    for name in GOOD[1:]:
        a = beam_index.query(catalogue / name, top=4)
        b = single.query(catalogue / name, top=4)
        assert [m.path for m in a] == [m.path for m in b]
        np.testing.assert_allclose([m.distance for m in a], [m.distance for m in b], atol=1e-5)


def test_split_beam_args():
    assert split_beam_args(["tag", "d", "--runner", "DirectRunner", "--out", "o", "--",
                            "--direct_num_workers=2"]) == (
        ["tag", "d", "--runner", "DirectRunner", "--out", "o"], ["--direct_num_workers=2"])
    # Without --runner, `--` keeps its usual meaning (file names that start with a dash).
    assert split_beam_args(["tag", "--", "-odd.wav"]) == (["tag", "--", "-odd.wav"], [])


def test_cli_tag_runner(catalogue, tmp_path, capsys):
    out = tmp_path / "tags"
    code = main(["tag", str(catalogue), "--runner", "DirectRunner", "--out", str(out), "--",
                 "--direct_num_workers=1"])
    err = capsys.readouterr().err
    assert code == 1  # some files failed
    assert f"tagged {len(GOOD)} new files ({len(BAD)} failed)" in err
    assert "text.mp3: not an audio file" in err and "Traceback" not in err
    assert len(Dataset(str(out)).read("files")) == len(GOOD)


@pytest.mark.parametrize("argv, message", [
    (["tag", "a", "b", "--runner", "DirectRunner", "--out", "o"], "one SOURCE"),
    (["tag", "a", "--runner", "DirectRunner"], "needs --out"),
    (["tag", "a", "--runner", "DirectRunner", "--out", "o", "--json", "x"], "Parquet"),
    (["tag", "a.wav", "--out", "o"], "go with --runner"),
    (["tag", "/nonexistent/src", "--runner", "DirectRunner", "--out", "o"], "no such folder"),
])
def test_cli_runner_bad_arguments(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_index_runner_then_similar(catalogue, tmp_path, capsys):
    out = tmp_path / "music.idx"
    code = main(["index", str(catalogue), "--out", str(out), "--model", "musicnn_msd",
                 "--runner", "DirectRunner", "-q"])
    assert code == 1  # the bad files are reported
    capsys.readouterr()
    assert main(["similar", str(catalogue / GOOD[2]), "--index", str(out), "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[-1] == str(catalogue / GOOD[2])
    # The single-process command updates the same index without re-embedding anything.
    result = subprocess.run([sys.executable, "-m", "zoo.cli", "index", str(catalogue), "--out",
                             str(out)], capture_output=True, text=True, timeout=300)
    assert "0 embedded" in result.stderr, result.stderr


def _write_table(path: Path, rows: list[dict], schema) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def test_index_from_shuffled_shards_with_a_superseded_file(tmp_path):
    """Segment rows in any order, over several shards and two runs, land file by file."""
    from zoo.beam.shards import FILE_VECTOR_SCHEMA, LISTING_SCHEMA, SEGMENT_SCHEMA
    from zoo.search.embedding import model_info

    rng = np.random.default_rng(0)
    dim, n_files = 16, 300  # > 9,984 segments: enough to train IVF-PQ
    counts = rng.integers(20, 60, n_files)
    info = model_info("musicnn_msd")
    ds = Dataset(str(tmp_path / "shards"))
    ds.create("embeddings", info.to_dict(), str(tmp_path / "music"), [])
    truth = {}

    def unit(x):
        return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)

    def run(run_id, names, seed):
        r = np.random.default_rng(seed)
        files, segments = [], []
        for name in names:
            n = int(counts[int(name[1:])])
            seg = unit(r.normal(size=(n, dim)))
            truth[name] = seg
            files.append({"path": name, "uri": name, "size": 1, "mtime_ns": seed,
                          "duration": 3.0 * n, "sample_rate": 16000, "channels": 1,
                          "model": info.name, "weights_sha256": info.weights_sha256,
                          "hop_seconds": 3.0, "repeat_padded": False, "segments": n,
                          "vector": unit(seg.mean(0)).tolist()})
            segments += [{"path": name, "segment": i, "start": 3.0 * i,
                          "vector": seg[i].tolist()} for i in range(n)]
        r.shuffle(segments)
        d = tmp_path / "shards" / "runs" / run_id
        half = len(segments) // 2
        _write_table(d / "files-00000-of-00001.parquet", files, FILE_VECTOR_SCHEMA)
        _write_table(d / "segments-00000-of-00002.parquet", segments[:half], SEGMENT_SCHEMA)
        _write_table(d / "segments-00001-of-00002.parquet", segments[half:], SEGMENT_SCHEMA)
        listing = [{"path": f"f{i:03d}", "size": 1, "mtime_ns": 2 if i == 7 else 1}
                   for i in range(n_files)]
        _write_table(d / "listing-00000-of-00001.parquet", listing, LISTING_SCHEMA)
        _write_table(d / "failed-00000-of-00001.parquet", [], pa.schema(
            [("path", pa.string()), ("reason", pa.string()), ("stage", pa.string())]))
        ds.commit(run_id, {})

    run("r1", [f"f{i:03d}" for i in range(n_files)], 1)
    run("r2", ["f007"], 2)  # f007 changed: its second version supersedes the first
    index = build_index_from_dataset(ds.root, tmp_path / "idx", segment_index_type="ivfpq")
    assert index.segment_params.type == "ivfpq"
    assert [f.path for f in index.files] == [f"f{i:03d}" for i in range(n_files)]
    assert index.files[7].mtime_ns == 2
    for i, f in enumerate(index.files):
        rows = index.table.rows(i)
        np.testing.assert_allclose(index.segments[rows], truth[f.path], atol=1e-6)
        np.testing.assert_allclose(index.table.starts[rows], 3.0 * np.arange(len(truth[f.path])))
    # The compressed index finds a file from its own segments (exact re-ranking on top).
    hits = index.rank_segments(truth["f042"][:5], top=1)
    assert index.files[hits[0].file].path == "f042"


@pytest.mark.skipif(not cpu_bf16_flags(),
                    reason="this CPU has no AVX512-BF16 or AMX")
def test_bfloat16_pipeline_records_its_precision_and_never_mixes(tmp_path):
    music = tmp_path / "music"
    music.mkdir()
    shutil.copy(CLIPS / GOOD[0], music / GOOD[0])
    out = tmp_path / "tags"
    run_catalogue("taggrams", str(music), str(out), "musicnn_msd", precision="bfloat16")
    assert Dataset(str(out)).manifest["model"]["precision"] == "bfloat16"
    row = Dataset(str(out)).read("files").to_pylist()[0]
    taggram = np.asarray(row["taggram"], np.float32)
    reduced = zoo.tag(music / GOOD[0], model="musicnn_msd", precision="bfloat16").probabilities
    exact = zoo.tag(music / GOOD[0], model="musicnn_msd").probabilities
    assert np.abs(taggram - reduced).max() <= 2e-3  # the same rewrite (batches may differ)
    assert np.abs(taggram - exact).max() > 0  # not the float32 graph
    with pytest.raises(DatasetError, match="bfloat16"):
        run_catalogue("taggrams", str(music), str(out), "musicnn_msd", precision="float32")
