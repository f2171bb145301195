"""LogEps, Log10Scaled, PowerToDb and LogLearn against numpy / librosa references."""

import keras
import librosa
import numpy as np
import pytest
from backend_utils import BACKEND, gradients, tensorflow_only, to_numpy
from test_layers_signals import SIGNALS, get_signal

from zoo.layers import Log10Scaled, LogEps, LogLearn, MelSpectrogram, PowerToDb
from zoo.layers.compression import quantize_float16

LOG_ULPS = 4  # float32 log vs numpy's float32 log10: both approximate, neither exact
MUSICNN = dict(sr=16000, n_fft=512, hop_length=256, n_mels=96, fmax=8000.0, center=False)


def mel_power(signal: str, samples: int = 24000, gain: float = 1.0) -> np.ndarray:
    """(frames, 96) mel power of a test signal, as librosa computes it (float32)."""
    y = gain * get_signal(signal, 16000, samples)
    return librosa.feature.melspectrogram(y=y.astype(np.float32), **MUSICNN).T


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in float32 units in the last place (both arrays finite float32)."""

    def ordered(x):
        i = x.astype(np.float32).view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)

    return np.abs(ordered(a) - ordered(b))


def run(layer, x) -> np.ndarray:
    out = to_numpy(layer(np.asarray(x, np.float32)[None]))[0]
    assert out.dtype == np.float32
    return out


# ------------------------------------------------------------------------------------ LogEps
@pytest.mark.parametrize("eps", [1e-6, 1e-3])
@pytest.mark.parametrize("signal", sorted(SIGNALS))
def test_log_eps(signal, eps):
    x = mel_power(signal)
    out = run(LogEps(eps=eps), x)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, np.log(x + np.float32(eps)), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------- Log10Scaled
def float16_probe_values() -> np.ndarray:
    """float32 values that exercise float16 rounding: subnormals, ties, the top of the range."""
    tiny = np.float32(2.0**-24)  # smallest float16 subnormal
    subnormals = np.arange(0, 1030, dtype=np.float32) * tiny
    ties = (np.arange(0, 40, dtype=np.float32) + 0.5) * tiny  # exact halfway: nearest even
    near_ties = np.concatenate([np.nextafter(ties, 0), np.nextafter(ties, 1)])
    normal_edge = np.float32(2.0**-14) * np.array([0.999, 1.0, 1.0001, 1.5], np.float32)
    top = np.array([65503.0, 65504.0, 65519.0, 65519.996, 65520.0, 70000.0, 1e6, 3e38], np.float32)
    rng = np.random.default_rng(0)
    spread = (10.0 ** rng.uniform(-9, 5, 4000)).astype(np.float32)
    return np.concatenate([subnormals, ties, near_ties, normal_edge, top, spread])


def musicnn_numpy_reference(x: np.ndarray) -> np.ndarray:
    """Original musicnn maths with its overflow fixed: clamp, float16 round trip, float32 log."""
    q = np.minimum(x, np.float32(65504.0)).astype(np.float16).astype(np.float32)
    return np.log10(np.float32(10000.0) * q + np.float32(1.0))


def _compilers() -> dict:
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return {"tf.function": tf.function, "xla": lambda f: tf.function(f, jit_compile=True)}
    if BACKEND == "jax":
        import jax

        return {"jax.jit": jax.jit}
    return {}


COMPILED = {"eager": lambda f: f, **_compilers()}


@pytest.mark.parametrize("compiled", sorted(COMPILED))
def test_float16_quantisation_is_bit_exact(compiled):
    x = float16_probe_values()
    x = np.concatenate([x, -x])
    out = to_numpy(COMPILED[compiled](quantize_float16)(x))
    ref = np.clip(x, -65504.0, 65504.0).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(out.view(np.int32), ref.view(np.int32))  # -0.0 included


@pytest.mark.parametrize("compiled", sorted(COMPILED))
def test_log10_scaled_float16_matches_numpy(compiled):
    x = float16_probe_values()
    out = to_numpy(COMPILED[compiled](Log10Scaled(scale=10000.0, quantize_float16=True))(x[None]))
    assert np.all(np.isfinite(out))
    # numpy's and TensorFlow's float32 logs are each up to ~2-3 ulp from correctly rounded.
    assert ulp_distance(out[0], musicnn_numpy_reference(x)).max() <= LOG_ULPS


def test_log10_scaled_quantisation_changes_values_like_float16():
    x = np.array([1.0001, 0.1, 3e-6, 1000.3], np.float32)
    plain = run(Log10Scaled(), x)
    quant = run(Log10Scaled(quantize_float16=True), x)
    assert np.all(plain != quant)  # the round trip through float16 is not optimised away
    assert ulp_distance(quant, musicnn_numpy_reference(x)).max() <= LOG_ULPS


@pytest.mark.parametrize("quantize", [False, True])
@pytest.mark.parametrize("signal", sorted(SIGNALS))
def test_log10_scaled_on_mel_power(signal, quantize):
    x = mel_power(signal, gain=4.0)
    out = run(Log10Scaled(quantize_float16=quantize), x)
    ref = musicnn_numpy_reference(x) if quantize else np.log10(10000 * x + 1)
    assert np.all(np.isfinite(out))
    assert ulp_distance(out, ref).max() <= LOG_ULPS


def test_log10_scaled_stays_finite_where_float16_overflowed():
    x = np.array([[10.0, 6.6e4, 1e9]], np.float32)  # 10000 * 10 is already inf in float16
    out = to_numpy(Log10Scaled(quantize_float16=True)(x))[0]
    expected = np.log10([100001.0, 655040001.0, 655040001.0])  # clamped to 65504
    np.testing.assert_allclose(out, expected, rtol=1e-6)


# --------------------------------------------------------------------------------- PowerToDb
@pytest.mark.parametrize("top_db", [80.0, 40.0, None])
@pytest.mark.parametrize("ref", [1.0, "max", 0.01])
@pytest.mark.parametrize("signal", ["speech", "music", "pink", "clicks", "silence"])
def test_power_to_db_matches_librosa(signal, ref, top_db):
    x = mel_power(signal)
    out = run(PowerToDb(ref=ref, top_db=top_db), x)
    expected = librosa.power_to_db(x, ref=np.max if ref == "max" else ref, top_db=top_db)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, expected, rtol=0, atol=2e-4)


@pytest.mark.parametrize("ref", [1.0, "max"])
def test_power_to_db_is_per_example(ref):
    quiet, loud = mel_power("speech", gain=1e-3), mel_power("music", gain=10.0)
    layer = PowerToDb(ref=ref, top_db=80.0)
    together = to_numpy(layer(np.stack([quiet, loud])))
    np.testing.assert_array_equal(together[0], run(layer, quiet))
    np.testing.assert_array_equal(together[1], run(layer, loud))
    # A batch-wide reference or floor would have moved the quiet clip; its own are kept.
    if ref == "max":
        assert together[0].max() == 0.0 and together[1].max() == 0.0
    else:
        assert together[0].min() < together[1].max() - 80.0


def test_power_to_db_rejects_bad_ref():
    with pytest.raises(ValueError):
        PowerToDb(ref="min")


# ---------------------------------------------------------------------------------- LogLearn
def test_log_learn_initial_values_and_output():
    layer = LogLearn()
    x = mel_power("speech")
    out = run(layer, x)
    assert layer.alpha == pytest.approx(np.exp(7.0), rel=1e-6)  # 1096.633
    assert layer.beta == pytest.approx(np.log1p(np.e), rel=1e-6)  # 1.31326
    np.testing.assert_allclose(out, np.log(np.exp(7.0) * x + np.log1p(np.e)), rtol=1e-5, atol=1e-6)


def test_log_learn_gradients_reach_both_weights():
    layer = LogLearn(alpha_init=2.0, beta_init=-1.0)
    x = keras.ops.convert_to_tensor(mel_power("music")[None])
    layer.build(x.shape)
    grads = gradients(layer, x, keras.ops.mean)
    assert len(grads) == 2
    assert all(np.isfinite(g) and g != 0 for g in grads)
    layer.a.assign(3.0)
    layer.b.assign(-50.0)
    assert layer.alpha == pytest.approx(np.exp(3.0))
    assert 0 < layer.beta == pytest.approx(np.exp(-50.0), rel=1e-6)


@pytest.mark.parametrize("layer_cls", [LogEps, Log10Scaled, LogLearn, PowerToDb])
def test_silence_stays_finite(layer_cls):
    out = run(layer_cls(), np.zeros((50, 96), np.float32))
    assert np.all(np.isfinite(out))


def test_mel_then_log_under_mixed_precision_stays_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layers = [MelSpectrogram(**MUSICNN), Log10Scaled(), PowerToDb(), LogLearn(), LogEps()]
        x = keras.ops.convert_to_tensor(get_signal("music", 16000, 48128)[None])
        for layer in layers:
            x = layer(x)
            assert keras.backend.standardize_dtype(x.dtype) == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("quantize", [False, True])
def test_log10_scaled_floors_negative_input_at_zero(quantize):
    out = run(Log10Scaled(quantize_float16=quantize), np.array([-1e-7, -3.0, 0.0], np.float32))
    np.testing.assert_array_equal(out, 0.0)


@tensorflow_only
def test_tflite_op_set_gives_the_same_float16_rounding():
    import tensorflow as tf

    from zoo.layers.compression import quantize_float16
    from zoo.layers.portability import tflite_builtin_ops

    x = np.concatenate([
        np.random.default_rng(5).lognormal(0, 8, 20000),
        [0.0, 2.0**-25, 3 * 2.0**-25, 2.0**-14, 65504.0, 65519.0, 1e9, 1.0 + 2.0**-11],
    ]).astype(np.float32)
    x = np.concatenate([x, -x])
    default = to_numpy(quantize_float16(x))
    with tflite_builtin_ops():
        portable = tf.function(quantize_float16)(tf.constant(x)).numpy()
    np.testing.assert_array_equal(default, portable)
    want = np.clip(x, -65504, 65504).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(default, want)
