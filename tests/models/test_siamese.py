"""The siamese family: architecture, losses against numpy, the track sampler, head training on
synthetic clusters, retrieval metrics, and the shipped `siamese_musicnn_msd` preset."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.errors import PresetError
from zoo.hub.cards import model_card
from zoo.models.registry import get_architecture
from zoo.models.siamese import (
    L2Normalize,
    NTXentLoss,
    TrackBatchSampler,
    TripletLoss,
    build_siamese,
    retrieval_metrics,
)
from zoo.models.siamese.losses import pairwise_distances
from zoo.models.siamese.samplers import max_spaced
from zoo.models.siamese.training import HeadTrainingConfig, train_projection
from zoo.presets import get_preset

CLIPS = Path(__file__).resolve().parents[1] / "data" / "clips"
PRESET = "siamese_musicnn_msd"
SOURCES_PRESET = "siamese_musicnn_msd_sources"
TINY_ENCODER = {"architecture": "melcnn",
                "config": {"n_mels": 16, "n_frames": 32, "filters": [4, 4, 4, 4],
                           "dense_units": 12}}


# -- architecture ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    return build_siamese(TINY_ENCODER, projection_units=[16, 8])


def test_tiny_siamese_builds_and_outputs_unit_rows(tiny):
    assert tiny.output_shape == (None, 8)
    x = np.random.default_rng(0).normal(size=(5, 32, 16)).astype("float32")
    norms = np.linalg.norm(np.asarray(tiny(x)), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_taps_are_the_encoders_plus_projection():
    features, embedding = get_architecture("siamese").taps({"encoder": TINY_ENCODER})
    assert embedding == "projection" and features["projection"] == "projection"
    assert {"embedding", "pooled", "block1"} <= set(features)
    with pytest.raises(PresetError, match="no feature"):
        build_siamese({**TINY_ENCODER, "feature": "nope"})


def test_keras_round_trip_safe_mode(tiny, tmp_path):
    x = np.random.default_rng(1).normal(size=(3, 32, 16)).astype("float32")
    path = tmp_path / "siamese.keras"
    tiny.save(path)
    again = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(tiny(x)), atol=1e-6)
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in again.layers)
    layer = L2Normalize(axis=-1, epsilon=1e-9, name="n")
    assert L2Normalize.from_config(layer.get_config()).epsilon == 1e-9
    zero = np.asarray(layer(np.zeros((1, 3), "float32")))
    assert np.all(np.isfinite(zero))


# -- losses ------------------------------------------------------------------------------------


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _np_dist(z):
    return np.sqrt(np.maximum(((z[:, None, :] - z[None, :, :]) ** 2).sum(-1), 0.0))


def _np_triplet(z, labels, margin, mining):
    d = _np_dist(z)
    n = len(z)
    out = []
    for a in range(n):
        pos = [p for p in range(n) if p != a and labels[p] == labels[a]]
        neg = [m for m in range(n) if labels[m] != labels[a]]
        if mining == "batch_hard":
            out.append(max(max(d[a, pos]) - min(d[a, neg]) + margin, 0.0))
        elif mining == "batch_all":
            terms = [max(d[a, p] - d[a, m] + margin, 0.0) for p in pos for m in neg]
            active = [t for t in terms if t > 1e-16]
            out.append(sum(terms) / max(len(active), 1))
        else:  # semi_hard
            terms = []
            for p in pos:
                farther = [d[a, m] for m in neg if d[a, m] > d[a, p]]
                chosen = min(farther) if farther else max(d[a, neg])
                terms.append(max(d[a, p] - chosen + margin, 0.0))
            out.append(np.mean(terms))
    return float(np.mean(out))


def _np_ntxent(z, labels, t):
    s = z @ z.T / t
    n = len(z)
    out = []
    for i in range(n):
        others = [a for a in range(n) if a != i]
        log_den = np.log(np.sum(np.exp(s[i, others])))
        pos = [p for p in others if labels[p] == labels[i]]
        out.append(-np.mean([s[i, p] - log_den for p in pos]))
    return float(np.mean(out))


@pytest.fixture(scope="module")
def hand_batch():
    # Three groups of two, unit vectors in 3-D: roughly clustered, with one stray member.
    z = _unit(np.array([[1.0, 0.1, 0.0], [0.9, 0.3, 0.1],
                        [0.0, 1.0, 0.2], [0.2, 0.8, -0.3],
                        [0.1, -0.2, 1.0], [0.7, 0.1, 0.6]]))
    labels = np.array([0, 0, 1, 1, 2, 2])
    return z.astype("float32"), labels


@pytest.mark.parametrize("mining", ["batch_hard", "semi_hard", "batch_all"])
def test_triplet_loss_matches_numpy(hand_batch, mining):
    z, labels = hand_batch
    got = float(TripletLoss(margin=0.3, mining=mining)(labels, z))
    assert got == pytest.approx(_np_triplet(z.astype(np.float64), labels, 0.3, mining), abs=1e-5)


def test_ntxent_matches_numpy(hand_batch):
    z, labels = hand_batch
    got = float(NTXentLoss(temperature=0.5)(labels, z))
    assert got == pytest.approx(_np_ntxent(z.astype(np.float64), labels, 0.5), abs=1e-5)
    # Four groups of three: the multi-positive form.
    rng = np.random.default_rng(3)
    z4 = _unit(rng.normal(size=(12, 5)))
    y4 = np.repeat(np.arange(4), 3)
    assert float(NTXentLoss(0.2)(y4, z4.astype("float32"))) == pytest.approx(
        _np_ntxent(z4, y4, 0.2), abs=1e-4)


def test_pairwise_distances_have_finite_gradients():
    x = tf.constant([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        d = pairwise_distances(x)
        total = tf.reduce_sum(d)
    np.testing.assert_allclose(np.asarray(d), _np_dist(np.asarray(x)), atol=1e-6)
    assert np.all(np.isfinite(np.asarray(tape.gradient(total, x))))


@pytest.mark.parametrize("loss", [TripletLoss(0.2, "batch_hard"), TripletLoss(0.2, "semi_hard"),
                                  TripletLoss(0.2, "batch_all"), NTXentLoss(0.1)])
def test_losses_prefer_clustered_batches(loss):
    rng = np.random.default_rng(0)
    centres = _unit(rng.normal(size=(6, 16)))
    labels = np.repeat(np.arange(6), 4)
    z = _unit(centres[labels] + 0.1 * rng.normal(size=(24, 16))).astype("float32")
    shuffled = rng.permutation(labels)
    assert float(loss(labels, z)) < float(loss(shuffled, z))
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(again) is type(loss) and again.get_config() == loss.get_config()


def test_losses_reject_bad_arguments():
    with pytest.raises(ValueError, match="mining"):
        TripletLoss(mining="hardest")
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature=0.0)


# -- sampler -----------------------------------------------------------------------------------


def _tracks(n_tracks=10, per_track=12, hop=1.5):
    tracks = np.repeat([f"t{i}" for i in range(n_tracks)], per_track)
    times = np.tile(np.arange(per_track) * hop, n_tracks)
    return tracks, times


def test_sampler_yields_p_tracks_of_k_spaced_excerpts():
    tracks, times = _tracks()
    # A track too short for 4 excerpts 3 s apart (3 patches in 3 s) is left out.
    tracks = np.concatenate([tracks, ["short"] * 3])
    times = np.concatenate([times, [0.0, 1.5, 3.0]])
    sampler = TrackBatchSampler(tracks, times, p=4, k=4, min_gap=3.0, seed=0)
    assert sampler.skipped == ["short"] and len(sampler) == 2
    seen = []
    for _ in range(5):
        batches = list(sampler.epoch())
        assert len(batches) == 2
        for idx in batches:
            assert idx.shape == (16,)
            groups = tracks[idx].reshape(4, 4)
            assert all(len(set(g)) == 1 for g in groups)  # positives: one track per group
            assert len({g[0] for g in groups}) == 4  # no track in two groups of a batch
            for g in idx.reshape(4, 4):
                t = np.sort(times[g])
                assert np.all(np.diff(t) >= 3.0)
            seen.extend(groups[:, 0])
    assert "short" not in seen and set(seen) == {f"t{i}" for i in range(10)}


def test_sampler_is_reproducible_and_validates():
    tracks, times = _tracks()
    a = [b.tolist() for b in TrackBatchSampler(tracks, times, 3, 2, seed=7).epoch()]
    b = [b.tolist() for b in TrackBatchSampler(tracks, times, 3, 2, seed=7).epoch()]
    assert a == b
    assert max_spaced(np.array([0.0, 1.0, 2.9, 3.0, 6.5]), 3.0) == 3
    with pytest.raises(ValueError, match="p >= 2"):
        TrackBatchSampler(tracks, times, p=1, k=2)
    with pytest.raises(ValueError, match="need at least p"):
        TrackBatchSampler(tracks, times, p=11, k=2)


# -- retrieval and training --------------------------------------------------------------------


def test_retrieval_metrics_by_hand():
    # Tracks a, a, b, b; styles x, x, x, y. Excerpts 0 and 1 of track a overlap in time.
    z = np.array([[1.0, 0.0], [0.9, 0.1], [0.8, 0.6], [0.0, 1.0]])
    tracks = ["a", "a", "b", "b"]
    out = retrieval_metrics(z, tracks, ["x", "x", "x", "y"], times=[0.0, 1.0, 0.0, 10.0],
                            window=3.0, ks=(1, 2), style_k=1)
    # Queries 0 and 1 have no non-overlapping same-track excerpt: only 2 and 3 count.
    assert out["queries"] == 2
    # 2 ranks 1 (cos .86), 0 (.80), 3 (.60): misses at 1 and 2; 3 ranks 2 (.60) first: hit.
    assert out["recall@1"] == 0.5 and out["recall@2"] == 0.5
    # Other tracks only: 0 -> 2 (x) ok, 1 -> 2 ok, 2 -> 1 ok, 3 -> 1 (x) wrong.
    assert out["style_p@1"] == 0.75


def _synthetic(n_tracks, per_track, rng, dim=32, signal=4):
    """Track identity in a few dimensions, drowned by per-excerpt noise in the others."""
    centres = rng.normal(size=(n_tracks, signal)) * 1.0
    tracks = np.repeat(np.arange(n_tracks), per_track)
    x = rng.normal(size=(len(tracks), dim)) * 1.0
    x[:, :signal] = centres[tracks] + 0.15 * rng.normal(size=(len(tracks), signal))
    times = np.tile(np.arange(per_track) * 3.0, n_tracks)
    return x.astype("float32"), tracks, times


def test_training_on_synthetic_clusters_raises_recall():
    rng = np.random.default_rng(0)
    x_tr, t_tr, s_tr = _synthetic(40, 8, rng)
    x_va, t_va, s_va = _synthetic(20, 8, rng)
    t_va = t_va + 1000  # other tracks than training
    before = retrieval_metrics(x_va, t_va, times=s_va, window=3.0)["recall@1"]
    config = HeadTrainingConfig(projection_units=(32, 16), p=8, k=4, epochs=8, passes=4,
                                patience=8, learning_rate=3e-3, seed=0)
    result = train_projection(x_tr, t_tr, s_tr, x_va, t_va, s_va, config, window=3.0)
    z = np.asarray(result.model.predict(x_va, verbose=0))
    after = retrieval_metrics(z, t_va, times=s_va, window=3.0)["recall@1"]
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    assert after > before + 0.2, (before, after)
    assert result.best_epoch >= 1 and after == pytest.approx(result.best_value)


# -- the shipped preset ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    return zoo.load(PRESET)


@pytest.mark.parametrize("name", [PRESET, SOURCES_PRESET])
def test_shipped_preset_gives_unit_vectors_for_a_real_clip(name):
    shipped = zoo.load(name)
    config = get_preset(name)
    assert config.tags == () and config.architecture == "siamese"
    assert config.preprocessing == get_preset("musicnn_msd").preprocessing
    assert shipped.input_shape == (None, 48128) and shipped.output_shape == (None, 128)
    feats = zoo.extract(CLIPS / "real_rock_hedgewars.flac", model=name)
    vectors = feats["projection"]
    assert vectors.shape == (len(feats.times), 128) and "penultimate" in feats.names
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # include_top=False is the same output: the embedding is the projection.
    embedder = zoo.load(name, include_top=False)
    audio = zoo.audio.load(CLIPS / "real_rock_hedgewars.flac", sr=16000)[:2 * 48128]
    patches = audio.reshape(2, 48128)
    direct = np.asarray(embedder(patches))
    np.testing.assert_allclose(direct, np.asarray(shipped(patches)), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(direct, axis=1), 1.0, atol=1e-5)
    # The encoder is musicnn_msd's, unchanged.
    base = zoo.extract(CLIPS / "real_rock_hedgewars.flac", model="musicnn_msd")
    np.testing.assert_allclose(feats["penultimate"], base["penultimate"], atol=1e-4)


def test_the_two_siamese_presets_are_different_heads_on_one_encoder():
    a = zoo.extract(CLIPS / "real_rock_hedgewars.flac", model=PRESET)
    b = zoo.extract(CLIPS / "real_rock_hedgewars.flac", model=SOURCES_PRESET)
    np.testing.assert_allclose(a["penultimate"], b["penultimate"], atol=1e-6)
    assert np.abs(a["projection"] - b["projection"]).max() > 0.05


def test_tag_on_an_embedding_model_says_use_extract(shipped):
    with pytest.raises(PresetError, match="no tags: use zoo.extract"):
        zoo.tag(CLIPS / "synth_music.flac", model=shipped)


def test_shipped_card_describes_an_embedding_model():
    card = model_card(get_preset(PRESET), builtin=True)
    assert "zoo.extract" in card and "zoo.tag(" not in card and "## Differences" not in card
    hub_card = model_card(get_preset(PRESET), load_as="hf://me/siamese")
    assert "pipeline_tag: feature-extraction" in hub_card


def test_export_serves_the_embedding(shipped, tmp_path):
    path = zoo.export(shipped, tmp_path, max_patches_per_call=4)
    assert (path / "assets" / "tags.txt").read_text() == ""
    serving = tf.saved_model.load(str(path)).signatures["serving_default"]
    audio = zoo.audio.load(CLIPS / "synth_music.flac", sr=16000)
    out = serving(waveform=tf.constant(audio[None]))
    assert set(out) == {"embedding", "mean_embedding", "patch_times", "num_patches",
                        "repeat_padded"}
    expected = zoo.extract(audio, model=shipped, source_sr=16000)["projection"]
    np.testing.assert_allclose(out["embedding"].numpy()[0], expected, atol=1e-4)
    np.testing.assert_allclose(out["mean_embedding"].numpy()[0], expected.mean(0), atol=1e-4)


def test_cli_tag_refuses_an_embedding_model(capsys):
    from zoo.cli import main

    assert main(["tag", str(CLIPS / "synth_music.flac"), "--model", PRESET]) == 2
    assert "no tags: use zoo.extract" in capsys.readouterr().err
