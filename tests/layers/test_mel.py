"""MelSpectrogram against librosa.feature.melspectrogram, plus graph/shape behaviour."""

import keras
import librosa
import numpy as np
import pytest
import scipy.signal
from backend_utils import tensorflow_only, to_numpy
from hypothesis import given, settings
from hypothesis import strategies as st
from test_layers_signals import SIGNALS, get_signal

from zoo.layers import MelSpectrogram
from zoo.layers.mel import stft_window

MUSICNN = dict(sr=16000, n_fft=512, hop_length=256, n_mels=96, fmax=8000.0, center=False)
CONFIGS = {
    "musicnn": MUSICNN,
    "musicnn-centred": {**MUSICNN, "center": True},
    "librosa-defaults": dict(sr=22050),
    "htk-nonorm-reflect": dict(
        sr=22050, n_fft=1024, hop_length=256, n_mels=64, htk=True, norm=None, pad_mode="reflect"
    ),
    "short-window-magnitude": dict(
        sr=8000,
        n_fft=256,
        hop_length=80,
        win_length=200,
        n_mels=40,
        fmin=50.0,
        fmax=3800.0,
        pad_mode="reflect",
        power=1.0,
    ),
    "44k-htk-uncentred": dict(sr=44100, n_fft=2048, hop_length=441, htk=True, center=False),
    "whisper-like": dict(sr=16000, n_fft=400, hop_length=160, n_mels=80, norm=None),
    "odd-window-power1.5": dict(
        sr=22050, n_fft=2048, hop_length=500, win_length=1501, n_mels=32, power=1.5
    ),
}


def librosa_mel(y: np.ndarray, config: dict) -> np.ndarray:
    kwargs = dict(config)
    kwargs.setdefault("hop_length", kwargs.get("n_fft", 2048) // 4)
    return librosa.feature.melspectrogram(y=y, **kwargs).T  # (frames, n_mels)


def assert_close_to_librosa(ours: np.ndarray, ref: np.ndarray, power: float = 2.0) -> None:
    assert ours.shape == ref.shape
    assert ours.dtype == np.float32 and np.all(np.isfinite(ours))
    peak = float(ref.max())
    assert np.max(np.abs(ours - ref)) <= 1e-5 * peak
    # Decibels relative to power: a magnitude (power=1) spectrum has 20 log10, and so on.
    db_per_decade = 20.0 / power
    near = (ref > 0) & (ref >= peak * 10.0 ** (-60.0 / db_per_decade))
    db_error = db_per_decade * np.abs(np.log10(ours[near] / ref[near]))
    assert db_error.size == 0 or db_error.max() <= 0.01


@pytest.mark.parametrize("signal", sorted(SIGNALS))
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_matches_librosa(name, signal):
    config = CONFIGS[name]
    sr = int(config["sr"])
    y = get_signal(signal, sr, int(1.1 * sr) + 37)
    ours = to_numpy(MelSpectrogram(**config)(y[None]))[0]
    assert_close_to_librosa(ours, librosa_mel(y, config), config.get("power", 2.0))


def test_musicnn_patch_has_187_frames():
    layer = MelSpectrogram(**MUSICNN)
    assert tuple(layer(np.zeros((3, 48128), np.float32)).shape) == (3, 187, 96)
    assert layer.compute_output_shape((None, 48128)) == (None, 187, 96)
    assert layer.compute_output_shape((None, None)) == (None, None, 96)
    inputs = keras.Input(shape=(48128,))  # static length stays static for later layers
    assert keras.Model(inputs, layer(inputs)).output_shape == (None, 187, 96)


@pytest.mark.parametrize("window", ["hann", "hamming", "blackman", "boxcar"])
@pytest.mark.parametrize("win_length,n_fft", [(512, 512), (400, 512), (301, 512), (255, 256)])
def test_window_matches_scipy_padded_like_librosa(window, win_length, n_fft):
    ref = librosa.util.pad_center(
        scipy.signal.get_window(window, win_length, fftbins=True), size=n_fft
    )
    np.testing.assert_allclose(stft_window(window, win_length, n_fft), ref, atol=1e-7)


def test_filterbank_is_precomputed_constant():
    layer = MelSpectrogram(sr=16000, n_fft=512, n_mels=96, fmax=8000.0)
    np.testing.assert_allclose(
        layer.filterbank,
        librosa.filters.mel(sr=16000, n_fft=512, n_mels=96, fmax=8000.0),
        rtol=2.5e-7,
        atol=1e-9,
    )
    layer(np.zeros((1, 4000), np.float32))
    assert layer.weights == []  # nothing to train or save: rebuilt exactly from the config


@pytest.mark.filterwarnings("ignore:n_fft=.*is too large")
@settings(max_examples=40, deadline=None)
@given(
    samples=st.integers(1, 6000),
    n_fft=st.sampled_from([256, 400, 512, 511]),
    hop=st.sampled_from([64, 100, 256, 333]),
    center=st.booleans(),
)
def test_frame_count_matches_librosa(samples, n_fft, hop, center):
    layer = MelSpectrogram(sr=16000, n_fft=n_fft, hop_length=hop, n_mels=16, center=center)
    y = np.random.default_rng(samples).standard_normal(samples).astype(np.float32)
    ours = to_numpy(layer(y[None]))
    assert ours.shape[1] == layer.num_frames(samples)
    if not center and samples < n_fft:
        assert ours.shape[1] == 0  # librosa refuses such input; we return no frames
        return
    ref = librosa.feature.melspectrogram(
        y=y, sr=16000, n_fft=n_fft, hop_length=hop, n_mels=16, center=center
    )
    assert ours.shape[1] == ref.shape[1]


def test_variable_length_in_one_model():
    inputs = keras.Input(shape=(None,))
    model = keras.Model(inputs, MelSpectrogram(**MUSICNN)(inputs))
    assert model.output_shape == (None, None, 96)
    for samples in (512, 16000, 48128, 70001):
        y = get_signal("speech", 16000, samples)
        out = to_numpy(model(y[None]))[0]
        assert_close_to_librosa(out, librosa_mel(y, MUSICNN))


@pytest.mark.parametrize("name", ["musicnn", "htk-nonorm-reflect"])
def test_batch_independence(name):
    config = CONFIGS[name]
    sr = int(config["sr"])
    batch = np.stack(
        [
            get_signal("silence", sr, 20000),
            1e-4 * get_signal("speech", sr, 20000),
            get_signal("music", sr, 20000),
            0.5 * get_signal("clicks", sr, 20000),
        ]
    )
    layer = MelSpectrogram(**config)
    together = to_numpy(layer(batch))
    for i, y in enumerate(batch):
        alone = to_numpy(layer(y[None]))[0]
        np.testing.assert_allclose(together[i], alone, rtol=1e-6, atol=1e-7 * alone.max())
    # Reordering the batch cannot change any example either.
    np.testing.assert_allclose(to_numpy(layer(batch[::-1]))[::-1], together, rtol=1e-6, atol=1e-12)


@tensorflow_only
def test_works_in_tf_function_with_unknown_shapes():
    import tensorflow as tf

    layer = MelSpectrogram(**MUSICNN)
    fn = tf.function(layer, input_signature=[tf.TensorSpec([None, None], tf.float32)])
    for samples in (48128, 30000):
        y = get_signal("music", 16000, samples)[None]
        np.testing.assert_allclose(to_numpy(fn(y)), to_numpy(layer(y)), rtol=1e-6, atol=1e-9)
    assert fn.experimental_get_tracing_count() == 1


def test_float64_input_gives_float32_output():
    out = MelSpectrogram(**MUSICNN)(np.zeros((1, 48128)))
    assert keras.backend.standardize_dtype(out.dtype) == "float32"


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(pad_mode="edge"),
        dict(power=0.0),
        dict(window="kaiser"),
        dict(win_length=4096),
        dict(hop_length=0),
    ],
)
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        MelSpectrogram(**kwargs)


@tensorflow_only
def test_tflite_op_set_gives_the_same_mel():
    import tensorflow as tf

    from zoo.layers.portability import tflite_builtin_ops

    layer = MelSpectrogram(sr=16000, n_fft=512, hop_length=256, n_mels=96, fmax=8000.0)
    x = np.random.default_rng(3).normal(0, 0.1, (2, 20000)).astype(np.float32)
    fast = to_numpy(layer(x))
    with tflite_builtin_ops():
        portable = tf.function(layer)(x).numpy()
    np.testing.assert_allclose(portable, fast, rtol=1e-5, atol=1e-6 * fast.max())
