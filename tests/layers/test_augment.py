"""SpecAugment: identity at inference, bounded per-example bands in training."""

import keras
import numpy as np
import pytest
from backend_utils import tensorflow_only, to_numpy

from zoo.layers import SpecAugment

FRAMES, FREQS = 120, 96


def ones(batch: int = 64, channels: int | None = None) -> np.ndarray:
    shape = (batch, FRAMES, FREQS) + ((channels,) if channels else ())
    return np.ones(shape, np.float32)


def band_widths(mask_1d: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a 1-D bool array."""
    padded = np.concatenate([[False], mask_1d, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(edges[1::2] - edges[::2])


@pytest.mark.parametrize("training", [False, None])
def test_identity_at_inference(training):
    x = np.random.default_rng(0).standard_normal((4, FRAMES, FREQS)).astype(np.float32)
    layer = SpecAugment(freq_mask_param=30, time_mask_param=50, n_freq_masks=2, n_time_masks=2)
    np.testing.assert_array_equal(to_numpy(layer(x, training=training)), x)
    inputs = keras.Input(shape=(None, FREQS))
    model = keras.Model(inputs, layer(inputs))
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)


@pytest.mark.parametrize("f_param,t_param", [(8, 20), (1, 1), (27, 100)])
def test_single_masks_are_bands_within_bounds(f_param, t_param):
    layer = SpecAugment(freq_mask_param=f_param, time_mask_param=t_param, seed=1)
    out = to_numpy(layer(ones(1024), training=True))
    masked = out == 0.0
    f_seen, t_seen = set(), set()
    for example in masked:
        rows = example.all(axis=1)  # whole frames masked: the time band (f_param < FREQS)
        if rows.all():
            continue  # a time band spanning the clip hides the frequency band
        cols = example[~rows].all(axis=0)  # bins masked in every other frame: the freq band
        # Every masked cell lies in the time band or the frequency band.
        assert np.array_equal(example, rows[:, None] | cols[None, :])
        t_widths, f_widths = band_widths(rows), band_widths(cols)
        assert len(t_widths) <= 1 and len(f_widths) <= 1
        assert sum(t_widths) <= t_param and sum(f_widths) <= f_param
        t_seen.add(sum(t_widths))
        f_seen.add(sum(f_widths))
    # Widths are uniform on [0, param]: with 1024 draws both ends show up.
    assert {0, f_param} <= f_seen
    assert 0 in t_seen and max(t_seen) >= 0.9 * t_param


def test_masks_differ_between_examples_and_calls():
    layer = SpecAugment(freq_mask_param=20, time_mask_param=40, n_freq_masks=2, n_time_masks=2)
    first = to_numpy(layer(ones(32), training=True))
    second = to_numpy(layer(ones(32), training=True))
    assert len({m.tobytes() for m in first}) > 20  # independent masks per example
    assert not np.array_equal(first, second)  # the seed generator moves on


def test_many_masks_cover_at_most_their_budget():
    layer = SpecAugment(freq_mask_param=5, time_mask_param=7, n_freq_masks=3, n_time_masks=4)
    out = to_numpy(layer(ones(128), training=True)) == 0
    assert out.all(axis=2).sum(axis=1).max() <= 4 * 7
    assert out.all(axis=1).sum(axis=1).max() <= 3 * 5


def test_mask_value_and_channels_axis():
    layer = SpecAugment(freq_mask_param=10, time_mask_param=10, mask_value=-80.0, seed=3)
    out = to_numpy(layer(ones(16, channels=2), training=True))
    assert set(np.unique(out)) <= {-80.0, 1.0} and (out == -80.0).any()
    np.testing.assert_array_equal(out[..., 0], out[..., 1])  # same mask on every channel


def test_time_mask_wider_than_input_is_clipped():
    layer = SpecAugment(freq_mask_param=0, time_mask_param=1000, seed=0)
    out = to_numpy(layer(np.ones((64, 5, 8), np.float32), training=True))
    assert out.shape == (64, 5, 8)
    assert (out == 0).all(axis=(1, 2)).any()  # a whole (short) clip can be masked


@tensorflow_only
def test_training_in_tf_function():
    import tensorflow as tf

    layer = SpecAugment(freq_mask_param=10, time_mask_param=10)
    fn = tf.function(
        lambda x: layer(x, training=True),
        input_signature=[tf.TensorSpec([None, None, FREQS], tf.float32)],
    )
    a, b = to_numpy(fn(ones(8))), to_numpy(fn(ones(8)))
    assert (a == 0).any() and not np.array_equal(a, b)


def test_training_in_fit():
    layer = SpecAugment(freq_mask_param=10, time_mask_param=10)
    inputs = keras.Input(shape=(None, FREQS))
    x = layer(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(x)))
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(ones(8), np.zeros((8, 1)), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
