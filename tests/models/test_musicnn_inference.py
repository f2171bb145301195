"""The inference-only musicnn graph computes what the Keras model computes, from its variables."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.models.musicnn.inference import (
    TemporalBranch,
    TimbralBranch,
    musicnn_inference_view,
    polyphase_index,
)
from zoo.models.musicnn.musicnn import MUSICNN_FEATURES, build_musicnn
from zoo.models.pipeline import inference_model, inference_view, wrap_waveform
from zoo.presets import get_preset


def _randomise_batch_norms(model: keras.Model, seed: int = 0) -> None:
    """Non-trivial inference statistics, with negative scales on about half the channels (the
    sign fold must then take the minimum over frequency)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.normal(0, 1, n), rng.normal(0, 0.5, n),
                               rng.normal(0, 0.3, n), rng.uniform(0.2, 2.0, n)])


def _tiny_musicnn(n_frames: int | None = 29, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = build_musicnn(n_mels=24, n_frames=n_frames, n_tags=5, midend_filters=8,
                          dense_units=6)
    _randomise_batch_norms(model, seed)
    return model


def _reference(model: keras.Model, layers: dict[str, str]) -> keras.Model:
    return keras.Model(model.input, {k: model.get_layer(v).output for k, v in layers.items()})


@pytest.mark.parametrize(("length", "phases"), [(1, 8), (3, 2), (8, 3), (5, 8), (13, 4)])
def test_polyphase_index_places_every_tap_once_per_output_phase(length, phases):
    index = polyphase_index(length, phases)
    for p in range(phases):
        # Reading the blocks in order (j, q) must give taps 0, 1, ..., length - 1, padded.
        taps = index[:, :, p].reshape(-1)
        real = taps[taps < length]
        np.testing.assert_array_equal(real, np.arange(length))
        assert np.all(taps[:p] == length)  # output phase p starts at input phase p


@pytest.mark.parametrize("phases", [1, 3, 8])
@pytest.mark.parametrize("frames", [29, 32])
def test_branches_equal_the_original_conv_relu_bn_max(phases, frames):
    model = _tiny_musicnn(n_frames=None)
    x = np.random.default_rng(1).normal(size=(3, frames, 24)).astype("float32")
    reference = _reference(model, {
        "in": "input_bn", "t40": "timbral_40_squeeze", "t70": "timbral_70_squeeze",
        **{f"k{k}": f"temporal_{k}_squeeze" for k in (128, 64, 32)}})(x, training=False)
    bn_input = reference["in"]
    get = model.get_layer
    for name in ("timbral_40", "timbral_70"):
        branch = TimbralBranch(get(f"{name}_conv"), get(f"{name}_bn"), (3, 3))
        np.testing.assert_allclose(branch(bn_input), reference[f"t{name[-2:]}"],
                                   rtol=1e-5, atol=1e-5)
    for k in (128, 64, 32):
        branch = TemporalBranch(get(f"temporal_{k}_conv"), get(f"temporal_{k}_bn"), phases)
        np.testing.assert_allclose(branch(bn_input), reference[f"k{k}"], rtol=1e-5, atol=1e-5)


def test_negative_scales_take_the_minimum():
    """All-negative BN scales: a view that skipped the sign fold would pool the wrong extreme."""
    model = _tiny_musicnn()
    for name in ("timbral_40_bn", "temporal_64_bn"):
        layer = model.get_layer(name)
        gamma, beta, mean, var = layer.get_weights()
        layer.set_weights([-np.abs(gamma) - 0.1, beta, mean, var])
    x = np.random.default_rng(2).normal(size=(2, 29, 24)).astype("float32")
    taps = {"timbral": "timbral", "temporal": "temporal"}
    expected = _reference(model, taps)(x, training=False)
    got = musicnn_inference_view(model, taps)(x, training=False)
    for key in taps:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_frames", [29, None])
def test_view_equals_the_backbone_on_every_later_tap(n_frames):
    model = _tiny_musicnn(n_frames=n_frames)
    taps = {name: layer for name, layer in MUSICNN_FEATURES.items()} | {"tags": "tags"}
    x = np.random.default_rng(3).normal(size=(4, 29, 24)).astype("float32")
    expected = _reference(model, taps)(x, training=False)
    got = musicnn_inference_view(model, taps)(x, training=False)
    assert set(got) == set(taps)
    for key in taps:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-5, err_msg=key)
    single = musicnn_inference_view(model, "penultimate")(x, training=False)
    np.testing.assert_allclose(single, expected["penultimate"], rtol=1e-5, atol=1e-5)


def test_view_shares_the_variables_so_it_follows_training():
    model = _tiny_musicnn()
    view = musicnn_inference_view(model, "tags")
    x = np.random.default_rng(4).normal(size=(2, 29, 24)).astype("float32")
    conv = model.get_layer("temporal_32_conv")
    conv.kernel.assign(conv.kernel * 3.0)
    np.testing.assert_allclose(view(x, training=False), model(x, training=False),
                               rtol=1e-5, atol=1e-6)
    assert all(any(w is v for v in model.weights) for w in view.weights)


def test_building_a_view_leaves_the_backbone_usable():
    model = _tiny_musicnn()
    musicnn_inference_view(model, {"tags": "tags", "cnn2": "cnn2"})
    # The original graph's tensors are still the first call's: views of it still build.
    keras.Model(model.input, model.get_layer("penultimate").output)
    musicnn_inference_view(model, "tags")


def test_taps_inside_a_branch_are_refused_and_the_generic_view_falls_back():
    model = _tiny_musicnn()
    with pytest.raises(ValueError, match="timbral_40_bn"):
        musicnn_inference_view(model, {"x": "timbral_40_bn"})
    with pytest.raises(ValueError, match="not a musicnn backbone"):
        musicnn_inference_view(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]),
                               "dense")
    config = get_preset("musicnn_msd")
    x = np.random.default_rng(5).normal(size=(1, 29, 24)).astype("float32")
    plain = inference_view(model, config, {"x": "timbral_40_bn"})
    np.testing.assert_allclose(plain(x, training=False)["x"],
                               _reference(model, {"x": "timbral_40_bn"})(x, training=False)["x"])


def test_view_round_trips_through_a_keras_file(tmp_path):
    model = _tiny_musicnn()
    view = musicnn_inference_view(model, {"tags": "tags", "embedding": "penultimate"})
    path = tmp_path / "view.keras"
    view.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(6).normal(size=(2, 29, 24)).astype("float32")
    for key in ("tags", "embedding"):
        np.testing.assert_allclose(restored(x, training=False)[key], view(x, training=False)[key],
                                   rtol=1e-6, atol=1e-6)


def test_inference_model_twin_of_a_loaded_model():
    """`zoo.tag` runs this twin: same input, outputs, front-end layers and variables."""
    config = get_preset("musicnn_msd")
    keras.utils.set_random_seed(7)
    backbone = build_musicnn(midend_filters=8, dense_units=6, n_tags=len(config.tags))
    _randomise_batch_norms(backbone, 7)
    model = wrap_waveform(config, backbone, name=config.name)
    model.zoo_preset, model.zoo_backbone = config, backbone
    twin = inference_model(model)
    assert twin is not model and twin.zoo_preset is config
    waveform = np.random.default_rng(8).normal(0, 0.1, (2, config.preprocessing.patch_samples))
    np.testing.assert_allclose(twin(waveform.astype("float32"), training=False),
                               model(waveform.astype("float32"), training=False),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="zoo.load"):
        inference_model(backbone)


def test_real_preset_view_matches_the_keras_graph():
    model = zoo.load("musicnn_msd", features=True)
    twin = inference_model(model)
    clip = np.random.default_rng(9).normal(0, 0.1, (2, model.input_shape[-1])).astype("float32")
    expected, got = model(clip, training=False), twin(clip, training=False)
    assert set(got) == set(expected)
    for key in expected:
        scale = float(np.abs(expected[key]).max()) or 1.0
        np.testing.assert_allclose(got[key] / scale, expected[key] / scale, atol=1e-5,
                                   err_msg=key)
    tf.debugging.assert_all_finite(got["tags"], "tags")


@pytest.mark.parametrize("family", ["classifier", "siamese"])
def test_models_built_on_a_musicnn_encoder_get_its_inference_graph(family):
    """Fine-tuned classifiers and Siamese models keep the encoder's layer names in one flat
    graph: the registry's inference hook must apply, and equal the model."""
    from zoo.models.registry import get_architecture

    tiny = {"n_mels": 24, "n_frames": 29, "midend_filters": 8, "dense_units": 6}
    keras.utils.set_random_seed(10)
    if family == "classifier":
        from zoo.models.classifier import build_classifier

        model = build_classifier({"architecture": "musicnn", "config": tiny}, n_tags=3,
                                 head_units=[4])
    else:
        from zoo.models.siamese.model import build_siamese

        model = build_siamese({"architecture": "musicnn", "config": tiny},
                              projection_units=[5])
    _randomise_batch_norms(model, 10)
    output = model.outputs[0]
    name = next(layer.name for layer in model.layers if layer.output is output)
    view = get_architecture(family).inference(model, name)
    assert any(isinstance(layer, TemporalBranch) for layer in view.layers)
    x = np.random.default_rng(11).normal(size=(2, 29, 24)).astype("float32")
    np.testing.assert_allclose(view(x, training=False), model(x, training=False),
                               rtol=1e-5, atol=1e-6)


def test_other_encoders_fall_back_to_the_plain_graph():
    from zoo.models.classifier import build_classifier

    model = build_classifier({"architecture": "vgg", "config": {}}, n_tags=3)
    config = dataclasses.replace(get_preset("vgg_msd"), architecture="classifier")
    plain = inference_view(model, config, "head_tags")
    assert not any(isinstance(layer, (TemporalBranch, TimbralBranch)) for layer in plain.layers)
    x = np.random.default_rng(12).normal(size=(2, 187, 96)).astype("float32")
    np.testing.assert_allclose(plain(x, training=False), model(x, training=False), atol=1e-6)


@pytest.mark.parametrize("include_top, features", [(True, False), (False, False),
                                                    (True, True)])
def test_zoo_model_twin_finds_its_parts_without_layer_positions(include_top, features):
    """A ZooModel keeps where its front-end ends and which backbone layers answer, so its twin
    needs no positional layer lookups; every output agrees with the Keras graph."""
    config = get_preset("musicnn_msd")
    keras.utils.set_random_seed(3)
    backbone = build_musicnn(midend_filters=8, dense_units=6, n_tags=len(config.tags))
    _randomise_batch_norms(backbone, 3)
    model = zoo.models.ZooModel(config, include_top, features, backbone=backbone)
    twin = model.inference_model()
    assert twin is not model and any(layer.name.endswith("_inference") for layer in twin.layers)
    waveform = np.random.default_rng(4).normal(0, 0.1, (2, config.preprocessing.patch_samples))
    got = twin(waveform.astype("float32"), training=False)
    want = model(waveform.astype("float32"), training=False)
    for key in (want if isinstance(want, dict) else [None]):
        np.testing.assert_allclose(got[key] if key else got, want[key] if key else want,
                                   rtol=1e-4, atol=1e-5)


def test_front_end_map_refuses_other_families():
    from zoo.models.musicnn.musicnn import musicnn_front_end
    from zoo.models.vgg import build_vgg

    with pytest.raises(ValueError, match="not a musicnn backbone"):
        musicnn_front_end(build_vgg(n_tags=3, filters=4))
    front = musicnn_front_end(_tiny_musicnn())
    assert len(front.timbral) == 2 and len(front.temporal) == 3
    assert "timbral_40_conv" in front.inner and "cnn1_conv" not in front.inner
