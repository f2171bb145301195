"""`zoo embed` (per-patch and per-file embeddings) and `zoo tag --csv --per-file/--threshold`."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import zoo
from zoo.cli import main
from zoo.inference.tagging import embedding_features

CLIP = "tests/data/clips/real_rock_hedgewars.flac"
OTHER = "tests/data/clips/real_orchestral_wesnoth.flac"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two real clips and a text file named .mp3, in a folder."""
    root = tmp_path_factory.mktemp("embed")
    shutil.copy(CLIP, root / "a.flac")
    shutil.copy(OTHER, root / "b.flac")
    (root / "notes.mp3").write_text("not audio\n")
    return root


def test_npz_holds_patch_and_file_embeddings_equal_to_the_library(folder, tmp_path, capsys):
    out = tmp_path / "e.npz"
    assert main(["embed", str(folder), "--out", str(out), "--model", "musicnn_msd"]) == 1
    err = capsys.readouterr().err
    assert "notes.mp3" in err and "embedded 2 of 3 files" in err
    data = np.load(out)
    assert data["model"] == "musicnn_msd"
    assert [p.rsplit("/", 1)[-1] for p in data["files"]] == ["a.flac", "b.flac"]
    for row, name in enumerate(("a.flac", "b.flac")):
        want = zoo.embed(folder / name, model="musicnn_msd")
        patches = data["embedding"][data["patch_file"] == row]
        np.testing.assert_allclose(patches, want["embedding"], atol=1e-6)
        np.testing.assert_allclose(data["patch_start"][data["patch_file"] == row], want.times)
        np.testing.assert_allclose(data["embedding_file"][row], patches.mean(axis=0), atol=1e-6)
    assert data["embedding"].shape[1] == 200 and np.isfinite(data["embedding"]).all()


def test_parquet_rows_per_file_with_named_features(folder, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "e.parquet"
    assert main(["embed", str(folder / "a.flac"), str(folder / "b.flac"), "--out", str(out),
                 "--feature", "max_pool", "--feature", "tags", "-q"]) == 0
    table = pq.read_table(out)
    assert table.num_rows == 2
    meta = json.loads(table.schema.metadata[b"zoo"])
    assert meta["model"] == "musicnn_msd" and meta["shapes"] == {"max_pool": [753], "tags": [50]}
    want = zoo.extract(folder / "b.flac")
    row = table.slice(1, 1).to_pylist()[0]
    np.testing.assert_allclose(np.asarray(row["tags_patches"]), want["tags"], atol=1e-6)
    np.testing.assert_allclose(row["max_pool"], want["max_pool"].mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(row["patch_start"], want.times)


def test_embedding_of_a_tagger_model_object_is_its_embedding_not_its_tags():
    model = zoo.load("musicnn_msd")
    got = zoo.embed(CLIP, model=model)["embedding"]
    np.testing.assert_allclose(got, zoo.extract(CLIP, model=model)["penultimate"], atol=1e-6)


def test_siamese_features_name_its_output_once():
    feats = zoo.embed(CLIP, model="siamese_musicnn_msd_sources",
                      features=["projection", "embedding"])
    assert "tags" not in embedding_features("siamese_musicnn_msd_sources")
    np.testing.assert_array_equal(feats["projection"], feats["embedding"])
    np.testing.assert_allclose(np.linalg.norm(feats["embedding"], axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["--out", "e.txt"], "must end in .npz or .parquet"),
    (["--out", "/nonexistent/e.npz"], "does not exist"),
    (["--out", "e.npz", "--hop", "0"], "--hop must be a positive"),
    (["--out", "e.npz", "--feature", "nope"], "has no feature 'nope'; it has: timbral"),
])
def test_embed_usage_errors_exit_2_before_work(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["embed", str(Path.cwd().parent / "missing.flac"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("e.*"))


def test_per_file_csv_with_threshold(tmp_path):
    out = tmp_path / "t.csv"
    assert main(["tag", CLIP, OTHER, "--model", "musicnn_msd", "--csv", str(out),
                 "--per-file", "--threshold", "0.2", "--top", "10", "-q"]) == 0
    rows = list(csv.reader(out.open()))
    assert rows[0][:2] == ["file", "top_tags"] and len(rows) == 3
    tags = rows[0][2:]
    for row, path in zip(rows[1:], (CLIP, OTHER), strict=True):
        mean = zoo.tag(path, model="musicnn_msd").mean
        listed = [item.split(":")[0] for item in row[1].split(";") if item]
        assert listed == [tags[i] for i in np.argsort(-mean, kind="stable")[:10]
                          if mean[i] >= 0.2]
        for cell, p in zip(row[2:], mean, strict=True):
            assert (cell == "") == (p < 0.2)
            if cell:
                assert abs(float(cell) - p) < 1e-6


def test_per_patch_csv_threshold_blanks_cells_below(tmp_path):
    out = tmp_path / "t.csv"
    assert main(["tag", CLIP, "--model", "musicnn_msd", "--csv", str(out), "--threshold",
                 "0.5", "-q"]) == 0
    rows = list(csv.reader(out.open()))
    probabilities = zoo.tag(CLIP, model="musicnn_msd").probabilities
    assert len(rows) == 1 + len(probabilities)
    for row, want in zip(rows[1:], probabilities, strict=True):
        assert [c != "" for c in row[2:]] == list(want >= 0.5)


def test_threshold_filters_printed_and_json_top_tags(capsys):
    assert main(["tag", CLIP, "--model", "musicnn_msd", "--threshold", "0.99"]) == 0
    assert "(nothing reaches 0.99)" in capsys.readouterr().out
    assert main(["tag", CLIP, "--model", "musicnn_msd", "--threshold", "0.3", "--json",
                 "-"]) == 0
    top = json.loads(capsys.readouterr().out)["files"][0]["top"]
    assert top and all(t["probability"] >= 0.3 for t in top)


@pytest.mark.parametrize("argv, message", [
    (["--threshold", "1.5"], "--threshold is a probability"),
    (["--per-file"], "--per-file shapes the CSV"),
])
def test_tag_csv_option_errors(argv, message, capsys):
    assert main(["tag", CLIP, *argv]) == 2
    assert message in capsys.readouterr().err
