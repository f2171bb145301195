"""The whitening head: the fit against numpy on constructed data, the ``siamese`` graph with a
normalised feature computing exactly that map, and the shipped ``musicnn_msd_whitened``."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

import zoo
from zoo.models.siamese import build_siamese, fit_whitening, set_whitening_head
from zoo.models.siamese.model import projection_dense_name
from zoo.presets import get_preset

CLIPS = Path(__file__).resolve().parents[1] / "data" / "clips"
PRESET = "musicnn_msd_whitened"
TINY_ENCODER = {"architecture": "melcnn",
                "config": {"n_mels": 16, "n_frames": 32, "filters": [4, 4, 4, 4],
                           "dense_units": 12},
                "feature": "embedding"}


def _anisotropic(n: int = 4000, dim: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scales = np.geomspace(10.0, 0.05, dim)
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    return 3.0 + (rng.normal(size=(n, dim)) * scales) @ rotation


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_fit_whitens_the_unit_normalised_rows():
    x = _anisotropic()
    w = fit_whitening(x, dims=6)
    z = _unit(x) @ w.kernel + w.bias  # before the final normalisation
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(np.cov(z, rowvar=False), np.eye(6), atol=1e-4)
    assert w.dims == 6 and 0.0 < w.variance_kept < 1.0
    assert np.all(np.diff(w.variances) <= 0)
    out = w(x[:5])
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-12)
    # Not a rescaling of the raw cosine: whitening changes which rows are nearest.
    raw = _unit(x[:200]) @ _unit(x[:200]).T
    white = w(x[:200]) @ w(x[:200]).T
    np.fill_diagonal(raw, -2)
    np.fill_diagonal(white, -2)
    assert np.mean(raw.argmax(1) != white.argmax(1)) > 0.2


@pytest.mark.parametrize("bad, dims, match", [
    (np.ones((1, 4)), 2, "n >= 2"), (np.ones(8), 2, "n >= 2"),
    (np.full((5, 4), np.nan), 2, "finite"), (np.ones((5, 4)), 0, "dims"),
    (np.ones((5, 4)), 5, "dims")])
def test_fit_refuses_bad_input(bad, dims, match):
    with pytest.raises(ValueError, match=match):
        fit_whitening(bad, dims)


def test_siamese_graph_computes_the_map_on_its_normalised_feature(tmp_path):
    model = build_siamese(TINY_ENCODER, projection_units=[5], normalize_feature=True)
    encoder = keras.Model(model.input, model.get_layer("embedding").output)
    logmel = np.random.default_rng(1).normal(size=(400, 32, 16)).astype("float32")
    feature = np.asarray(encoder(logmel))
    w = fit_whitening(feature, dims=5)
    set_whitening_head(model, w)
    got = np.asarray(model(logmel[:16]))
    np.testing.assert_allclose(got, w(feature[:16]), atol=1e-4)
    # Without the normalised input the same weights give another map.
    plain = build_siamese(TINY_ENCODER, projection_units=[5])
    plain.set_weights(model.get_weights())
    assert np.abs(np.asarray(plain(logmel[:16])) - got).max() > 1e-2
    path = tmp_path / "whitened.keras"
    model.save(path)
    again = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(again(logmel[:16])), got, atol=1e-6)


def test_set_whitening_head_refuses_another_head():
    w = fit_whitening(_anisotropic(dim=12), dims=5)
    with pytest.raises(ValueError, match="normalize_feature=True"):
        set_whitening_head(build_siamese(TINY_ENCODER, projection_units=[5]), w)
    with pytest.raises(ValueError, match="one-layer head"):
        set_whitening_head(build_siamese(TINY_ENCODER, projection_units=[8, 5],
                                         normalize_feature=True), w)


# -- the shipped preset ------------------------------------------------------------------------


def test_shipped_preset_is_musicnn_msd_mean_pool_whitened():
    config = get_preset(PRESET)
    assert config.architecture == "siamese" and config.tags == ()
    assert config.architecture_config["normalize_feature"] is True
    assert config.architecture_config["encoder"]["feature"] == "mean_pool"
    assert config.preprocessing == get_preset("musicnn_msd").preprocessing
    dims = config.architecture_config["projection_units"][0]
    model = zoo.load(PRESET, features=True)
    kernel, bias = model.zoo_backbone.get_layer(projection_dense_name(0)).get_weights()
    feats = zoo.extract(CLIPS / "real_rock_hedgewars.flac", model=model)
    base = zoo.extract(CLIPS / "real_rock_hedgewars.flac", model="musicnn_msd")
    np.testing.assert_allclose(feats["mean_pool"], base["mean_pool"], atol=1e-4)
    want = _unit(_unit(base["mean_pool"].astype(np.float64)) @ kernel + bias)
    assert feats["projection"].shape == (len(feats.times), dims)
    np.testing.assert_allclose(feats["projection"], want, atol=1e-4)
