"""Every front-end layer survives get_config/from_config and a .keras save/load (safe_mode)."""

import keras
import numpy as np
import pytest
from backend_utils import tensorflow_only, to_numpy
from test_layers_signals import get_signal

from zoo.layers import (
    PCEN,
    Log10Scaled,
    LogEps,
    LogLearn,
    MelSpectrogram,
    PowerToDb,
    SpecAugment,
)

MUSICNN = dict(sr=16000, n_fft=512, hop_length=256, n_mels=96, fmax=8000.0, center=False)

LAYERS = {
    "mel-musicnn": lambda: MelSpectrogram(**MUSICNN),
    "mel-htk-reflect": lambda: MelSpectrogram(
        sr=16000,
        n_fft=400,
        hop_length=160,
        win_length=300,
        window="hamming",
        n_mels=40,
        htk=True,
        norm=None,
        pad_mode="reflect",
        power=1.0,
        fmin=20.0,
    ),
    "log-eps": lambda: LogEps(eps=1e-5),
    "log10-scaled": lambda: Log10Scaled(scale=1000.0, quantize_float16=True),
    "power-to-db-max": lambda: PowerToDb(ref="max", amin=1e-8, top_db=60.0),
    "power-to-db-none": lambda: PowerToDb(ref=2.0, top_db=None),
    "log-learn": lambda: LogLearn(alpha_init=5.0, beta_init=0.5),
    "pcen": lambda: PCEN(sr=16000, hop_length=256, alpha=0.9, trainable_s=True),
    "pcen-first": lambda: PCEN(s=0.1, initial_state="first_frame", eps=1e-4),
    "specaugment": lambda: SpecAugment(8, 20, n_freq_masks=2, mask_value=-1.0, seed=4),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_config_round_trip(name):
    layer = LAYERS[name]()
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    rebuilt = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(rebuilt) is type(layer) and rebuilt.get_config() == config


def front_end_model(name: str) -> keras.Model:
    """Waveform -> mel -> the layer under test (mel layers alone), variable length."""
    inputs = keras.Input(shape=(None,))
    x = inputs
    if not name.startswith("mel"):
        x = MelSpectrogram(**MUSICNN)(x)
    return keras.Model(inputs, LAYERS[name]()(x))


def perturb_weights(model: keras.Model) -> None:
    """Move trainable weights off their initial values so loading must restore them."""
    for w in model.trainable_weights:
        value = np.asarray(w)
        w.assign(value + np.linspace(0.1, 0.3, value.size).reshape(value.shape))


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_keras_file_round_trip(name, tmp_path):
    model = front_end_model(name)
    perturb_weights(model)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    batch = np.stack([get_signal("speech", 16000, 30000), get_signal("music", 16000, 30000)])
    np.testing.assert_array_equal(to_numpy(loaded(batch)), to_numpy(model(batch)))
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # The loaded model still takes any length.
    mel = next(layer for layer in loaded.layers if isinstance(layer, MelSpectrogram))
    assert loaded(batch[:, :20000]).shape[1] == mel.num_frames(20000)


@tensorflow_only
def test_full_front_end_in_tf_function_and_saved_model(tmp_path):
    import tensorflow as tf

    inputs = keras.Input(shape=(None,))
    x = MelSpectrogram(**MUSICNN)(inputs)
    x = SpecAugment(8, 20)(x)
    x = Log10Scaled(quantize_float16=True)(x)
    model = keras.Model(inputs, x)
    signature = tf.TensorSpec([None, None], tf.float32)
    fn = tf.function(model, input_signature=[signature])
    y = get_signal("music", 16000, 48128)[None]
    np.testing.assert_array_equal(to_numpy(fn(y)), to_numpy(model(y)))
    model.export(str(tmp_path / "saved"), input_signature=[signature], verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_array_equal(to_numpy(reloaded.serve(y)), to_numpy(model(y)))
