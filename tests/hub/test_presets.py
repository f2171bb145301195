"""The preset registry, weights integrity and zoo.load."""

import shutil

import numpy as np
import pytest

import zoo
from zoo.errors import PresetError, WeightsError
from zoo.hub import file_sha256
from zoo.presets import PresetConfig, get_preset, presets, shipped_dir

SHIPPED = ["musicnn_mtt", "musicnn_msd", "vgg_mtt", "vgg_msd"]


def test_registry_lists_the_published_presets():
    names = presets()
    assert set(SHIPPED + ["musicnn_msd_big"]) <= set(names)
    assert all(isinstance(d, str) and d for d in names.values())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_preset_is_complete_and_verified(name):
    config = get_preset(name)
    prep = config.preprocessing
    assert (prep.sample_rate, prep.n_fft, prep.hop_length, prep.n_mels) == (16000, 512, 256, 96)
    assert prep.compression == "log10_scaled" and prep.compression_config["quantize_float16"]
    assert prep.pad_mode == "reflect" and prep.patch_samples == 48128
    assert len(config.tags) == 50 and len(set(config.tags)) == 50
    assert config.license == "ISC" and config.metrics["roc_auc"] > 0.85
    assert file_sha256(shipped_dir() / config.weights.file) == config.weights.sha256


def test_msd_tags_keep_their_case():
    assert "Hip-Hop" in get_preset("musicnn_msd").tags
    assert "guitar" == get_preset("musicnn_mtt").tags[0]


def test_config_round_trips_through_json():
    config = get_preset("musicnn_msd")
    assert PresetConfig.from_dict(config.to_dict()) == config


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(PresetError, match="musicnn_msd"):
        get_preset("musicnn_nope")
    with pytest.raises(PresetError, match="does not exist"):
        zoo.load("./no/such/preset/dir")


def test_big_preset_explains_how_to_get_weights():
    with pytest.raises(WeightsError, match="checkpoint="):
        zoo.load("musicnn_msd_big")


def _copy_preset(tmp_path, name):
    config = get_preset(name)
    folder = tmp_path / name
    folder.mkdir()
    shutil.copy(shipped_dir() / config.weights.file, folder / config.weights.file)
    (folder / "config.json").write_text(config.to_json())
    return folder, config


def test_preset_directory_loads(tmp_path):
    folder, _ = _copy_preset(tmp_path, "vgg_mtt")
    model = zoo.load(folder)
    assert model.zoo_preset.root == str(folder)
    assert model.output_shape == (None, 50)


def test_corrupted_weights_are_refused(tmp_path):
    folder, config = _copy_preset(tmp_path, "vgg_mtt")
    path = folder / config.weights.file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        zoo.load(folder)


@pytest.fixture(scope="module")
def musicnn_msd():
    return zoo.load("musicnn_msd")


def test_load_gives_a_waveform_tagger(musicnn_msd):
    assert musicnn_msd.input_shape == (None, 48128)
    assert musicnn_msd.output_shape == (None, 50)
    y = np.asarray(musicnn_msd(np.zeros((2, 48128), "float32")))
    assert np.all((y >= 0) & (y <= 1)) and np.allclose(y[0], y[1])


def test_load_embedding_and_features():
    emb = zoo.load("musicnn_mtt", include_top=False)
    assert emb.output_shape == (None, 200)
    feats = zoo.load("vgg_mtt", features=True)
    out = feats(np.zeros((1, 48128), "float32"))
    assert set(out) == {"pool1", "pool2", "pool3", "pool4", "pool5", "tags"}
    assert tuple(out["pool5"].shape) == (1, 2, 1, 128)


def test_public_api_names():
    import zoo.models.loading  # noqa: F401 - importing submodules must not shadow the functions
    import zoo.presets  # noqa: F401

    assert callable(zoo.presets) and "musicnn_msd" in zoo.presets()
    assert callable(zoo.load) and callable(zoo.tag) and callable(zoo.extract)
    assert zoo.audio.load is not None and issubclass(zoo.AudioError, ValueError)


def test_keras_predict_with_xla_matches_the_direct_call():
    """Users compile with XLA (fine-tuning, predict): the front-end must compile and keep the
    float16 rounding (TF 2.17's XLA folds a plain float16 cast pair away)."""
    model = zoo.load("vgg_mtt")
    x = np.random.default_rng(4).normal(0, 0.1, (2, 48128)).astype("float32")
    model.compile(jit_compile=True)
    np.testing.assert_allclose(model.predict(x, verbose=0), np.asarray(model(x)), atol=1e-5)
