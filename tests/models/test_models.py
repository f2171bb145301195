"""musicnn / vgg architectures: shapes, parameter counts, serialization, TF1 weight mapping."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.errors import WeightsError
from zoo.models.musicnn.convert import LAYER_MAPS, assign_tf1_weights, read_tf1_checkpoint
from zoo.models.musicnn.musicnn import MUSICNN_FEATURES, build_musicnn
from zoo.models.pipeline import wrap_waveform
from zoo.models.vgg import build_vgg
from zoo.presets import get_preset


def test_parameter_counts_match_the_original_graphs():
    assert build_musicnn().count_params() == 792_079
    assert build_vgg().count_params() == 607_030


def test_musicnn_accepts_any_length_when_unconstrained():
    model = build_musicnn(n_frames=None, n_tags=7, midend_filters=8, dense_units=16)
    for frames in (40, 187, 300):
        assert model(np.zeros((2, frames, 96), "float32")).shape == (2, 7)


def test_include_top_false_gives_the_embedding():
    assert build_musicnn(include_top=False, dense_units=32).output_shape == (None, 32)
    assert build_vgg(include_top=False, filters=16).output_shape == (None, 32)


def test_interleaved_pooling_order():
    """The back-end flattens [max, mean] per channel: max_0, mean_0, max_1, mean_1, ..."""
    model = build_musicnn(n_frames=187, midend_filters=4, dense_units=8)
    view = keras.Model(model.input, [model.get_layer(n).output
                                     for n in ("max_pool", "mean_pool", "interleaved_pool")])
    x = np.random.default_rng(0).uniform(0, 3, (2, 187, 96)).astype("float32")
    mx, mean, inter = (t.numpy() if hasattr(t, "numpy") else t for t in view(x))
    np.testing.assert_array_equal(inter[:, 0::2], mx)
    np.testing.assert_array_equal(inter[:, 1::2], mean)


def _tiny_waveform_model():
    config = get_preset("musicnn_mtt")
    backbone = build_musicnn(n_tags=50, midend_filters=8, dense_units=16)
    return wrap_waveform(config, backbone, name="tiny")


def test_waveform_model_round_trips_through_keras_file(tmp_path):
    model = _tiny_waveform_model()
    x = np.random.default_rng(1).normal(0, 0.1, (2, 48128)).astype("float32")
    path = tmp_path / "tiny.keras"
    model.save(path)
    restored = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(restored(x), model(x), rtol=0, atol=1e-6)


def _fake_tf1_variables(model, architecture, rng):
    """Random variables named and shaped as the TF1 checkpoint stores them."""
    variables = {}
    for layer_name, scope in LAYER_MAPS[architecture]():
        layer = model.get_layer(layer_name)
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            for p in ("gamma", "beta", "moving_mean"):
                variables[f"{scope}/{p}"] = rng.normal(size=n).astype("float32")
            variables[f"{scope}/moving_variance"] = rng.uniform(0.5, 2, n).astype("float32")
        else:
            kernel = tuple(layer.kernel.shape)
            if layer_name.startswith("temporal"):
                kernel = (kernel[1], 1, 1, kernel[3])  # TF1 stored (k, 1, 1, filters)
            elif layer_name.startswith("cnn"):
                kernel = (kernel[0], kernel[1], 1, kernel[2])  # TF1 Conv2D over (time, channels)
            variables[f"{scope}/kernel"] = rng.normal(size=kernel).astype("float32")
            variables[f"{scope}/bias"] = rng.normal(size=layer.bias.shape[0]).astype("float32")
    return variables


def _save_tf1_checkpoint(variables, prefix):
    graph = tf.Graph()
    with graph.as_default():
        tf_vars = [tf.compat.v1.Variable(v, name=k) for k, v in variables.items()]
        tf_vars.append(tf.compat.v1.Variable(0.9, name="beta1_power"))
        slot = next(iter(variables))
        tf_vars.append(tf.compat.v1.Variable(variables[slot], name=f"{slot}/Adam"))
        saver = tf.compat.v1.train.Saver(tf_vars)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, str(prefix))


@pytest.mark.parametrize("architecture", ["musicnn", "vgg"])
def test_tf1_checkpoint_is_read_and_mapped_completely(tmp_path, architecture):
    build = build_musicnn if architecture == "musicnn" else build_vgg
    model = build(midend_filters=8, dense_units=16) if architecture == "musicnn" else build(
        filters=8)
    variables = _fake_tf1_variables(model, architecture, np.random.default_rng(2))
    _save_tf1_checkpoint(variables, tmp_path / "ckpt")
    read = read_tf1_checkpoint(tmp_path / "ckpt")
    assert set(read) == set(variables)  # optimizer slots skipped
    assign_tf1_weights(model, architecture, read)
    first_conv = "timbral_40_conv" if architecture == "musicnn" else "conv1"
    scope = "conv2d" if architecture == "musicnn" else "1CNN"
    np.testing.assert_array_equal(model.get_layer(first_conv).kernel.numpy(),
                                  variables[f"{scope}/kernel"])
    if architecture == "musicnn":
        np.testing.assert_array_equal(model.get_layer("temporal_128_conv").kernel.numpy().ravel(),
                                      variables["conv2d_2/kernel"].ravel())


def test_tf1_mapping_refuses_missing_and_leftover_variables():
    model = build_musicnn(midend_filters=8, dense_units=16)
    variables = _fake_tf1_variables(model, "musicnn", np.random.default_rng(3))
    missing = dict(variables)
    del missing["conv2d_5/kernel"]
    with pytest.raises(WeightsError, match="conv2d_5/kernel"):
        assign_tf1_weights(model, "musicnn", missing)
    extra = {**variables, "conv2d_99/kernel": np.zeros(3, "float32")}
    with pytest.raises(WeightsError, match="not used"):
        assign_tf1_weights(model, "musicnn", extra)
    wrong = {**variables, "dense/kernel": np.zeros((5, 5), "float32")}
    with pytest.raises(WeightsError):
        assign_tf1_weights(model, "musicnn", wrong)


def test_unreadable_checkpoint_is_a_weights_error(tmp_path):
    with pytest.raises(WeightsError, match="cannot read"):
        read_tf1_checkpoint(tmp_path / "nothing")


def test_feature_names_cover_the_original_extractor():
    assert list(MUSICNN_FEATURES) == ["timbral", "temporal", "cnn1", "cnn2", "cnn3",
                                      "mean_pool", "max_pool", "penultimate"]


def test_cli_tags_musicnn_msd_big_from_an_original_checkpoint_folder(tmp_path, capsys):
    from zoo.cli import main
    from zoo.models.pipeline import build_backbone

    backbone = build_backbone(zoo.get_preset("musicnn_msd_big"))
    variables = _fake_tf1_variables(backbone, "musicnn", np.random.default_rng(4))
    # The musicnn wheel's layout: the folder itself is the prefix (".index", ".data-...").
    (tmp_path / "MSD_musicnn_big").mkdir()
    _save_tf1_checkpoint(variables, f"{tmp_path / 'MSD_musicnn_big'}/")
    clip = "tests/data/clips/synth_music.flac"
    assert main(["tag", clip, "--model", "musicnn_msd_big"]) == 2  # no weights: says how
    assert "--checkpoint DIR" in capsys.readouterr().err
    assert main(["tag", clip, "--model", "musicnn_msd_big", "--checkpoint",
                 str(tmp_path / "MSD_musicnn_big"), "--top", "3"]) == 0
    assert capsys.readouterr().out.startswith(f"{clip}: ")
    assert main(["presets"]) == 0
    big = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith("musicnn_msd_big"))
    assert "--checkpoint DIR" in big
