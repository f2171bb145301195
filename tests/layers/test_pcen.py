"""PCEN against librosa.pcen, plus trainability, batch independence and graph use."""

import keras
import librosa
import numpy as np
import pytest
from backend_utils import gradients, tensorflow_only, to_numpy
from test_layers_signals import SIGNALS, get_signal

from zoo.layers import PCEN
from zoo.layers.pcen import smoothing_coefficient

SR, HOP = 16000, 256


def energies(signal: str, samples: int = 30000, gain: float = 1.0) -> np.ndarray:
    """(frames, 64) mel magnitudes scaled to an integer-like range, as librosa's docs suggest."""
    y = gain * get_signal(signal, SR, samples)
    mel = librosa.feature.melspectrogram(
        y=y, sr=SR, n_fft=512, hop_length=HOP, n_mels=64, power=1.0
    )
    return (mel * 2.0**31).T.astype(np.float32)


PARAMS = {
    "librosa-defaults": dict(),
    "fast-strong": dict(gain=0.8, bias=10.0, power=0.25, time_constant=0.06),
    "weak": dict(gain=0.5, bias=0.5, power=0.8, time_constant=1.5, eps=1e-3),
}


def to_layer_args(p: dict) -> dict:
    names = {"gain": "alpha", "bias": "delta", "power": "r"}
    return {names.get(k, k): v for k, v in p.items()}


@pytest.mark.parametrize("signal", sorted(SIGNALS))
@pytest.mark.parametrize("name", sorted(PARAMS))
def test_matches_librosa(name, signal):
    e = energies(signal)
    params = PARAMS[name]
    ref = librosa.pcen(e.T, sr=SR, hop_length=HOP, **params).T
    out = to_numpy(PCEN(sr=SR, hop_length=HOP, **to_layer_args(params))(e[None]))[0]
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    np.testing.assert_allclose(out, ref, rtol=2e-5, atol=1e-5 * max(1.0, np.abs(ref).max()))


def test_first_frame_initial_state_matches_librosa_with_zi():
    e = energies("music")
    b = smoothing_coefficient(0.4, SR, HOP)
    ref = librosa.pcen(e.T, sr=SR, hop_length=HOP, zi=(1 - b) * e.T[:, :1]).T
    out = to_numpy(PCEN(sr=SR, hop_length=HOP, initial_state="first_frame")(e[None]))[0]
    np.testing.assert_allclose(out, ref, rtol=2e-5, atol=1e-5)


def test_default_smoothing_coefficient_is_librosas():
    t = 0.4 * 22050 / 512  # the time constant in frames
    b = smoothing_coefficient(0.4, 22050, 512)
    assert b == pytest.approx((np.sqrt(1 + 4 * t**2) - 1) / (2 * t**2), rel=1e-12)
    assert PCEN().get_config()["s"] == pytest.approx(b)


@pytest.mark.parametrize("trainable_s", [False, True])
def test_gradients_reach_every_parameter(trainable_s):
    layer = PCEN(sr=SR, hop_length=HOP, trainable_s=trainable_s)
    x = keras.ops.convert_to_tensor(energies("speech")[None])
    layer.build(x.shape)
    names = [w.name for w in layer.trainable_weights]
    expected = ["log_alpha", "log_delta", "log_r"] + (["s_logit"] if trainable_s else [])
    assert names == expected
    for g in gradients(layer, x, lambda out: keras.ops.sum(out**2)):
        assert g.shape == (64,) and np.all(np.isfinite(g)) and np.any(g != 0)


def test_trainable_s_starts_where_fixed_s_is():
    x = energies("pink")[None]
    fixed = to_numpy(PCEN(sr=SR, hop_length=HOP)(x))
    learnt = to_numpy(PCEN(sr=SR, hop_length=HOP, trainable_s=True)(x))
    np.testing.assert_allclose(learnt, fixed, rtol=1e-5, atol=1e-6)


def test_parameters_stay_positive_after_large_updates():
    layer = PCEN(trainable_s=True)
    x = energies("clicks")[None]
    layer(x)
    for w in layer.trainable_weights:
        w.assign(w - 40.0)
    out = to_numpy(layer(x))
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("initial_state", ["unit", "first_frame"])
def test_batch_independence_and_silence(initial_state):
    batch = np.stack([energies("silence"), energies("speech", gain=1e-3), energies("music")])
    layer = PCEN(sr=SR, hop_length=HOP, initial_state=initial_state)
    together = to_numpy(layer(batch))
    assert np.all(np.isfinite(together))
    np.testing.assert_array_equal(together[0], 0.0)
    for i in range(len(batch)):
        np.testing.assert_allclose(together[i], to_numpy(layer(batch[i : i + 1]))[0], rtol=1e-6)


@tensorflow_only
def test_variable_length_model_and_tf_function():
    import tensorflow as tf

    inputs = keras.Input(shape=(None, 64))
    model = keras.Model(inputs, PCEN(sr=SR, hop_length=HOP)(inputs))
    fn = tf.function(model, input_signature=[tf.TensorSpec([None, None, 64], tf.float32)])
    e = energies("speech", samples=60000)
    full = to_numpy(model(e[None]))[0]
    for frames in (1, 2, 3, 17, 64, 65, len(e)):
        # A causal filter: any prefix of the input gives the same prefix of the output.
        np.testing.assert_allclose(
            to_numpy(fn(e[None, :frames]))[0], full[:frames], rtol=1e-5, atol=1e-6
        )
    assert fn.experimental_get_tracing_count() == 1


def test_long_input_matches_sequential_recursion():
    e = np.random.default_rng(1).random((2, 5000, 8)).astype(np.float32) * 100
    s = 0.02
    layer = PCEN(s=s, alpha=0.9, delta=1.0, r=0.5)
    out = to_numpy(layer(e))
    m = np.ones((2, 8))
    ref = np.empty_like(e, dtype=np.float64)
    for t in range(e.shape[1]):
        m = (1 - s) * m + s * e[:, t]
        ref[:, t] = (e[:, t] / (1e-6 + m) ** 0.9 + 1.0) ** 0.5 - 1.0
    np.testing.assert_allclose(out, ref, rtol=2e-5)


@pytest.mark.parametrize("kwargs", [dict(alpha=0.0), dict(s=1.5), dict(initial_state="zero")])
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        PCEN(**kwargs)
