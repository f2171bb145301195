"""scripts/train_siamese_sources.py: protocol, folds, retrieval metrics, held-out rows unread."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from script_modules import load_script

T = load_script("train_siamese_sources")


def test_folds_hold_out_every_package_twice_with_two_partners():
    folds = T.make_folds(T.TRAIN_PACKAGES)
    assert len(folds) == 7 and all(len(set(f)) == 2 for f in folds)
    for p in T.TRAIN_PACKAGES:
        partners = [q for f in folds if p in f for q in f if q != p]
        assert len(partners) == 2 and len(set(partners)) == 2


def test_protocol_excerpts_mirror_the_evaluation_script():
    ev = load_script("eval_similarity")
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(16000 * 50)).astype(np.float32)
    track = T.Track(path="audio/p/a.wav", package="p", style="s", track="p:a", duration=50.0,
                    licence="")
    entry, queries, start = T.protocol_excerpts(x, track, seed=0)
    assert T.protocol_seed(0, "p:a") == ev._seed(0, "p:a")
    ref_rng = np.random.default_rng(ev._seed(0, "p:a"))
    assert start == T.evaluation.query_start(50.0, ref_rng)
    assert 35.0 <= start <= 40.0
    np.testing.assert_array_equal(entry, x[:16000 * 30])
    q0 = int(round(start * 16000))
    np.testing.assert_array_equal(queries["clean"], x[q0:q0 + 160000])
    assert set(queries) == set(T.CONDITIONS)
    assert not np.array_equal(queries["mp3-32k"], queries["clean"])


def test_ranking_metrics_by_hand():
    # 3 tracks; query 0 finds itself first, query 1 at rank 2, query 2 at rank 3.
    score = np.array([[0.9, 0.1, 0.2],
                      [0.8, 0.5, 0.1],
                      [0.7, 0.6, 0.3]])
    styles = np.array(["a", "a", "b"])
    m = T.ranking_metrics(score, styles)
    assert m["recall@1"] == pytest.approx(1 / 3)
    assert m["MR1"] == pytest.approx(2.0)
    assert m["mAP"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert m["recall@10"] == 1.0
    # Two other tracks each: q0 (a) -> [b, a], q1 (a) -> [a, b], q2 (b) -> [a, a].
    assert m["style_p@5"] == pytest.approx(1 / 3)


def test_ties_count_against_the_correct_entry():
    m = T.ranking_metrics(np.ones((3, 3)), np.array(["a", "b", "c"]))
    assert m["recall@1"] == 0.0 and m["MR1"] == 3.0


def test_segment_and_file_scores():
    e = np.eye(4)
    catalogue = [e[[0, 1]], e[[2, 3]]]
    query = [e[[0]], e[[2, 1]]]
    seg = T.segment_scores(query, catalogue)
    np.testing.assert_allclose(seg, [[1.0, 0.0], [0.5, 0.5]])
    file = T.file_scores(query, catalogue)
    np.testing.assert_allclose(file[0], [1 / np.sqrt(2), 0.0])
    np.testing.assert_allclose(file[1], [0.5, 0.5])


def test_read_tracks_never_touches_heldout_rows(tmp_path):
    rows = [
        {"path": "audio/0ad-data/a.wav", "set": "train", "package": "0ad-data",
         "style": "0ad-data", "track": "a", "duration_s": "60", "licence": "CC-BY-SA-3.0",
         "version": "1", "source": "x"},
        {"path": "audio/secret/b.wav", "set": "heldout", "package": "secret", "style": "s",
         "track": "b", "duration_s": "60", "licence": "?", "version": "1", "source": "x"},
    ]
    with open(tmp_path / "tracks.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    tracks = T.read_tracks(tmp_path)
    assert [t.key for t in tracks] == ["0ad-data/a"]
    rows[0]["package"] = "not-a-train-package"
    with open(tmp_path / "tracks.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(ValueError, match="unexpected"):
        T.read_tracks(tmp_path)


def test_selection_score_weights_recall_and_style_equally():
    m = {f"{meth}/{c}/h1/recall@1": 0.8 for meth in T.METHODS for c in T.CONDITIONS}
    m.update({f"{meth}/clean/h1/style_p@5": 0.4 for meth in T.METHODS})
    assert T.selection_score(m) == pytest.approx(0.6)


def _rows(n_tracks: int = 6, per_track: int = 10, dim: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_tracks, dim))
    x = np.concatenate([c + 0.3 * rng.normal(size=(per_track, dim)) for c in centres])
    track = np.repeat(np.arange(n_tracks), per_track).astype(np.int32)
    clean = np.tile(np.arange(per_track) < per_track // 2, n_tracks)
    teacher = np.repeat(T.unit(centres), per_track, axis=0).astype(np.float32)
    return T.TrainingRows(x.astype(np.float32), track, track % 2,
                          np.tile(np.arange(per_track) * 4.0, n_tracks), clean,
                          {"penultimate": teacher, "taggram": teacher})


def test_whiten_init_starts_as_the_whitening_of_the_clean_rows():
    from zoo.models.siamese.whitening import fit_whitening

    rows = _rows()
    config = T.HeadConfig("w", units=(8,), activation="linear", init="whiten",
                          normalize_feature=True)
    head = T.build_head(config, rows, seed=0)
    want = fit_whitening(rows.x[rows.clean], 8)(rows.x)
    np.testing.assert_allclose(T.project(head, rows.x), want, atol=1e-4)
    # Fitted on the clean rows only: all rows give another map.
    other = fit_whitening(rows.x, 8)(rows.x)
    assert np.abs(other - want).max() > 1e-2
    with pytest.raises(ValueError, match="normalised feature"):
        T.build_head(T.HeadConfig("bad", units=(8,), init="whiten"), rows, seed=0)


def test_mean_pool_heads_all_start_from_whitening_and_fine_tune():
    assert T.MEAN_POOL_CONFIGS and len({c.name for c in T.MEAN_POOL_CONFIGS}) == len(
        T.MEAN_POOL_CONFIGS)
    for c in T.MEAN_POOL_CONFIGS:
        assert c.init == "whiten" and c.normalize_feature and c.units[0] == 192
    rows = _rows()
    config = T.HeadConfig("w", units=(8,), activation="linear", init="whiten",
                          normalize_feature=True, p=4, k=2, min_gap=3.0, passes=1)
    start = T.project(T.build_head(config, rows, seed=0), rows.x)
    model, history = T.train_head(config, rows, seed=0, epochs=2)
    assert len(history) == 2 and all(np.isfinite(h["loss"]) for h in history)
    assert np.abs(T.project(model, rows.x) - start).max() > 1e-4


def test_preset_config_of_a_mean_pool_head_builds():
    from zoo.models.pipeline import build_backbone

    config = T.MEAN_POOL_CONFIGS[0]
    tracks = [T.Track(path="audio/0ad-data/a.wav", package="0ad-data", style="0ad-data",
                      track="a", duration=60.0, licence="CC-BY-SA-3.0")]
    keys = [f"{m}/{c}/h{h:g}/{k}" for m in T.METHODS for c in T.CONDITIONS
            for h in T.QUERY_HOPS
            for k in ("recall@1", "recall@10", "mAP", "MR1", "style_p@5", "style_p@10")]
    metrics = dict.fromkeys(keys, 0.5)
    preset = T.preset_config(config, tracks, {"mean": metrics, "epoch": 4}, metrics,
                             name="test_head", feature="mean_pool", validation="v.json")
    arch = preset.architecture_config
    assert arch["encoder"]["feature"] == "mean_pool" and arch["normalize_feature"] is True
    assert preset.name == "test_head" and preset.source["validation"] == "v.json"
    backbone = build_backbone(preset)
    assert backbone.output_shape[-1] == config.units[0]


def test_whiten_then_identity_layer_starts_equal_and_keeps_the_map_frozen():
    from zoo.models.siamese.model import projection_dense_name

    rows = _rows()
    one = T.HeadConfig("w", units=(8,), activation="linear", init="whiten",
                       normalize_feature=True)
    two = T.HeadConfig("w2", units=(8, 8), activation="linear", init="whiten",
                       normalize_feature=True, frozen_layers=1, p=4, k=2, passes=1)
    np.testing.assert_allclose(T.project(T.build_head(two, rows, 0), rows.x),
                               T.project(T.build_head(one, rows, 0), rows.x), atol=1e-5)
    start = T.build_head(two, rows, 0).get_layer(projection_dense_name(0)).get_weights()
    model, _ = T.train_head(two, rows, seed=0, epochs=2)
    for got, want in zip(model.get_layer(projection_dense_name(0)).get_weights(), start,
                         strict=True):
        np.testing.assert_array_equal(got, want)
    eye = model.get_layer(projection_dense_name(1)).get_weights()[0]
    assert np.abs(eye - np.eye(8)).max() > 1e-4
    with pytest.raises(ValueError, match="dims, dims"):
        T.build_head(T.HeadConfig("bad", units=(8, 4), init="whiten",
                                  normalize_feature=True), rows, seed=0)
