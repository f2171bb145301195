"""Siamese models joined with harmony / rhythm descriptors: the join's cosine algebra, the
architecture config, the fast inference view, serialization."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from backend_utils import to_numpy

from zoo.errors import PresetError
from zoo.models.pipeline import inference_view
from zoo.models.registry import get_architecture
from zoo.models.siamese import build_siamese
from zoo.models.siamese.descriptors import JOINED, WeightedUnitConcat, parse_descriptors
from zoo.presets import PresetConfig

CLIPS = Path(__file__).resolve().parents[1] / "data" / "clips"
ENCODER = {"architecture": "musicnn",
           "config": {"n_mels": 96, "n_frames": 120, "midend_filters": 8, "dense_units": 6},
           "feature": "mean_pool"}
DESCRIPTORS = {"projection_weight": 0.6,
               "chroma": {"weight": 0.3, "n_mels": 96, "fmin": 0.0, "fmax": 8000.0},
               "rhythm": {"weight": 0.1, "max_lag": 40}}


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_joined_cosine_is_the_weighted_sum_of_part_cosines():
    rng = np.random.default_rng(0)
    parts_a = [rng.normal(size=(4, d)).astype("float32") for d in (8, 12, 5)]
    parts_b = [rng.normal(size=(4, d)).astype("float32") for d in (8, 12, 5)]
    join = WeightedUnitConcat(weights=(3.0, 1.5, 0.5), center=(False, True, True))
    a, b = to_numpy(join(parts_a)), to_numpy(join(parts_b))
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    prepared = [(unit(x), unit(y)) for x, y in zip(parts_a[:1], parts_b[:1], strict=True)]
    prepared += [(unit(x - x.mean(1, keepdims=True)), unit(y - y.mean(1, keepdims=True)))
                 for x, y in zip(parts_a[1:], parts_b[1:], strict=True)]
    weights = (0.6, 0.3, 0.1)
    expected = sum(w * np.sum(x * y, axis=1)
                   for w, (x, y) in zip(weights, prepared, strict=True))
    np.testing.assert_allclose(np.sum(a * b, axis=1), expected, atol=1e-5)


def test_join_refuses_bad_weights():
    with pytest.raises(ValueError, match="positive"):
        WeightedUnitConcat(weights=(1.0, 0.0))
    with pytest.raises(ValueError, match="centre flags"):
        WeightedUnitConcat(weights=(1.0, 1.0), center=(True,))


@pytest.mark.parametrize("bad, message", [
    ({**DESCRIPTORS, "tempo": {"weight": 1.0}}, "unknown descriptors"),
    ({k: v for k, v in DESCRIPTORS.items() if k != "projection_weight"}, "projection_weight"),
    ({**DESCRIPTORS, "chroma": {"n_mels": 96}}, "positive 'weight'"),
    ({**DESCRIPTORS, "chroma": {"weight": 0.3, "colour": 1}}, "descriptor 'chroma'"),
])
def test_bad_descriptor_configs_are_preset_errors(bad, message):
    with pytest.raises(PresetError, match=message):
        build_siamese(ENCODER, projection_units=[16], activation="linear",
                      normalize_feature=True, descriptors=bad)


@pytest.fixture(scope="module")
def joined():
    return build_siamese(ENCODER, projection_units=[16], activation="linear",
                         normalize_feature=True, descriptors=DESCRIPTORS)


def logmel(n: int = 3, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 120, 96)).astype("float32") * 3.0


def test_output_is_projection_chroma_rhythm_in_that_order(joined):
    assert joined.output_shape == (None, 16 + 12 + 40)
    x = logmel()
    out = to_numpy(joined(x))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    projection = to_numpy(keras.Model(joined.input, joined.get_layer("projection").output)(x))
    np.testing.assert_allclose(out[:, :16], projection * np.sqrt(0.6), atol=1e-5)
    chroma = to_numpy(keras.Model(joined.input, joined.get_layer("chroma").output)(x))
    centred = chroma - chroma.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(out[:, 16:28], unit(centred) * np.sqrt(0.3), atol=1e-5)


def test_taps_name_the_joined_vector_the_embedding():
    config = {"encoder": ENCODER, "projection_units": [16], "descriptors": DESCRIPTORS}
    taps, embedding = get_architecture("siamese").taps(config)
    assert embedding == JOINED
    assert {"chroma", "rhythm", "projection", JOINED, "mean_pool"} <= set(taps)
    assert parse_descriptors(DESCRIPTORS)[0] == 0.6


def test_fast_inference_view_equals_the_plain_model(joined):
    config = PresetConfig.from_dict({
        "schema_version": 1, "name": "joined", "description": "test", "architecture": "siamese",
        "architecture_config": {"encoder": ENCODER, "projection_units": [16],
                                "activation": "linear", "normalize_feature": True,
                                "descriptors": DESCRIPTORS},
        "preprocessing": {"patch_frames": 120}, "tags": [], "weights": {"file": None}})
    view = inference_view(joined, config, {"embedding": JOINED, "chroma": "chroma",
                                           "projection": "projection"})
    assert "chroma_view" in {layer.name for layer in view.layers}  # not the slow fallback
    x = logmel(seed=4)
    out = view(x)
    np.testing.assert_allclose(to_numpy(out["embedding"]), to_numpy(joined(x)), atol=1e-5)
    single = inference_view(joined, config, JOINED)
    np.testing.assert_allclose(to_numpy(single(x)), to_numpy(joined(x)), atol=1e-5)


def test_keras_round_trip_safe_mode(joined, tmp_path):
    path = tmp_path / "joined.keras"
    joined.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    x = logmel(seed=2)
    np.testing.assert_allclose(to_numpy(again(x)), to_numpy(joined(x)), atol=1e-6)


def test_shipped_joined_preset_extends_musicnn_msd_whitened():
    import zoo
    from zoo.presets import get_preset

    name = "musicnn_msd_whitened_chroma_rhythm"
    config, base = get_preset(name), get_preset("musicnn_msd_whitened")
    assert config.weights.sha256 == base.weights.sha256  # the same map, nothing retrained
    assert config.preprocessing == base.preprocessing
    chroma = config.architecture_config["descriptors"]["chroma"]
    prep = config.preprocessing
    assert (chroma["n_mels"], chroma["fmin"], chroma["fmax"], chroma["htk"]) == (
        prep.n_mels, prep.fmin, prep.fmax, prep.htk)  # it reads the input's mel scale
    clip = CLIPS / "real_rock_hedgewars.flac"
    joined = zoo.extract(clip, model=name)
    plain = zoo.extract(clip, model="musicnn_msd_whitened")
    np.testing.assert_allclose(joined["projection"], plain["projection"], atol=1e-5)
    vectors = np.asarray(joined[JOINED])
    assert vectors.shape[1] == 192 + 12 + 94
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[:, :192], np.sqrt(0.6) * plain["projection"], atol=1e-5)
