"""Reduced-precision inference: bfloat16 where the CPU has it, a clear refusal where not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import zoo
import zoo.inference.precision as precision
from zoo.cli import main
from zoo.inference.tagging import compiled_inference

CLIPS = Path(__file__).resolve().parents[1] / "data" / "clips"
ROCK = CLIPS / "real_rock_hedgewars.flac"
needs_bf16 = pytest.mark.skipif(not precision.cpu_bf16_flags(),
                                reason="this CPU has no AVX512-BF16 or AMX")


@pytest.fixture(scope="module")
def tagger():
    return zoo.load("musicnn_msd")


def test_unknown_precision_is_refused(tagger):
    with pytest.raises(ValueError, match="precision must be one of float32, bfloat16"):
        zoo.tag(ROCK, model=tagger, precision="int4")


def test_float32_is_the_default_and_exact(tagger):
    default = zoo.tag(ROCK, model=tagger).probabilities
    np.testing.assert_array_equal(zoo.tag(ROCK, model=tagger, precision="float32").probabilities,
                                  default)


def test_a_cpu_without_bfloat16_units_is_told_so(tagger, monkeypatch, capsys):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ())
    with pytest.raises(RuntimeError, match="AVX512-BF16 or AMX"):
        precision.bfloat16_function(tagger, 48128)
    assert main(["tag", str(ROCK), "--precision", "bfloat16"]) == 2
    assert "needs a CPU with AVX512-BF16 or AMX" in capsys.readouterr().err
    assert main(["index", str(CLIPS), "--out", "unused", "--precision", "bfloat16"]) == 2
    assert "AVX512-BF16" in capsys.readouterr().err


def test_a_local_pipeline_checks_the_cpu_first(tmp_path, monkeypatch, capsys):
    pytest.importorskip("apache_beam")
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ())
    assert main(["tag", str(CLIPS), "--runner", "DirectRunner", "--out", str(tmp_path / "t"),
                 "--precision", "bfloat16"]) == 2
    assert "AVX512-BF16" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


@needs_bf16
def test_bfloat16_tags_close_to_float32_and_really_reduced(tagger):
    exact = zoo.tag(ROCK, model=tagger).probabilities
    reduced = zoo.tag(ROCK, model=tagger, precision="bfloat16").probabilities
    diff = np.abs(reduced - exact)
    assert 0 < diff.max() < 0.05  # it is not the float32 graph, and not far from it
    assert diff.mean() < 5e-3
    top = lambda p: np.argsort(-p, axis=1)[:, :5]  # noqa: E731
    agreement = np.mean([len(set(a) & set(b)) / 5
                         for a, b in zip(top(exact), top(reduced), strict=True)])
    assert agreement >= 0.9
    # One function per (model, precision), reused: the float32 one is untouched.
    assert compiled_inference(tagger, "bfloat16") is compiled_inference(tagger, "bfloat16")
    assert compiled_inference(tagger, "bfloat16") is not compiled_inference(tagger)


@needs_bf16
def test_bfloat16_embedding_and_cli(tmp_path, capsys):
    exact = zoo.embed(ROCK, model="siamese_musicnn_msd_sources")["embedding"]
    reduced = zoo.embed(ROCK, model="siamese_musicnn_msd_sources",
                        precision="bfloat16")["embedding"]
    cosine = np.sum(exact * reduced, axis=1) / (np.linalg.norm(exact, axis=1)
                                                * np.linalg.norm(reduced, axis=1))
    assert cosine.min() > 0.99
    assert main(["tag", str(ROCK), "--precision", "bfloat16"]) == 0
    assert "real_rock_hedgewars.flac" in capsys.readouterr().out
    out = tmp_path / "e.npz"
    assert main(["embed", str(ROCK), "--out", str(out), "--precision", "bfloat16", "-q"]) == 0
    assert np.load(out)["embedding"].shape[1] == 200  # musicnn_msd, the default


@needs_bf16
def test_an_index_records_its_precision_and_never_mixes(tmp_path):
    from zoo.search import IndexMismatchError, build_index, load_index

    catalogue = tmp_path / "music"
    catalogue.mkdir()
    for clip in sorted(CLIPS.glob("real_*.flac"))[:2]:
        (catalogue / clip.name).symlink_to(clip)
    out = tmp_path / "idx"
    build_index(catalogue, out, model="musicnn_msd", precision="bfloat16", progress=False)
    index = load_index(out)
    assert index.model.precision == "bfloat16"
    assert index.embedder.info.precision == "bfloat16"  # queries run like the catalogue
    # A rerun without --precision keeps the index's; float32 would mix vectors: refused.
    build_index(catalogue, out, progress=False)
    with pytest.raises(IndexMismatchError, match="--precision bfloat16"):
        build_index(catalogue, out, precision="float32", progress=False)


def test_indexes_without_a_recorded_precision_are_float32():
    from zoo.search.embedding import ModelInfo

    old = ModelInfo.from_dict({"preset": "musicnn_msd", "name": "musicnn_msd",
                               "weights_sha256": "ab", "architecture": "musicnn",
                               "embedding": "penultimate", "hop_seconds": 3.0, "tail": "end",
                               "patch_seconds": 3.0})
    assert old.precision == "float32"
    assert old.identity() != ModelInfo.from_dict({**old.to_dict(),
                                                  "precision": "bfloat16"}).identity()
