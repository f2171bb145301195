"""Streamed patching must equal slicing one padded whole-file signal, for any block size."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zoo.inference.patching import PatchGrid, iter_patches


def _blocks(x, size):
    return (x[i:i + size] for i in range(0, x.size, size))


def _reference(x, grid):
    padded = np.pad(x, grid.edge, mode=grid.pad_mode)
    return [(s, padded[s * grid.hop_length: s * grid.hop_length + grid.window])
            for s in grid.start_frames(x.size)]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 6000),
    block=st.integers(1, 3000),
    hop_frames=st.integers(1, 12),
    pad_mode=st.sampled_from(["reflect", "constant"]),
    tail=st.sampled_from(["end", "drop"]),
)
def test_streamed_patches_equal_whole_signal_slicing(n, block, hop_frames, pad_mode, tail):
    grid = PatchGrid(n_fft=64, hop_length=16, patch_frames=10, hop_frames=hop_frames,
                     pad_mode=pad_mode, tail=tail, min_tail_frames=3)
    x = np.random.default_rng(n).normal(size=n).astype(np.float32)
    got = list(iter_patches(_blocks(x, block), grid))
    if n < grid.min_samples():
        assert len(got) == 1 and got[0][2] and got[0][1].shape == (grid.window,)
        return
    want = _reference(x, grid)
    assert [s for s, _, _ in got] == [s for s, _ in want]
    for (_, window, padded), (_, ref) in zip(got, want, strict=True):
        assert not padded
        np.testing.assert_array_equal(window, ref)


def test_musicnn_grid_matches_original_patch_count():
    # The original slices floor((frames - 187) / 187) + 1 patches of a centred STFT.
    grid = PatchGrid(512, 256, 187, 187, "reflect", tail="drop")
    for seconds in (3, 3.5, 10, 29.99, 61):
        n = int(seconds * 16000)
        frames = 1 + n // 256
        assert len(grid.start_frames(n)) == (frames - 187) // 187 + 1
    assert grid.window == 48128


def test_tail_patch_is_end_aligned_on_the_frame_grid():
    grid = PatchGrid(512, 256, 187, 187, "reflect", tail="end", min_tail_frames=63)
    n = 16000 * 10  # 626 frames: 3 regular patches cover 561, 65 frames left
    starts = grid.start_frames(n)
    assert starts == [0, 187, 374, 626 - 187]
    short_tail = 16000 * 9  # 563 frames: 2 left, below the threshold
    assert grid.start_frames(short_tail) == [0, 187, 374]


def test_short_signal_is_tiled_to_one_patch():
    grid = PatchGrid(512, 256, 187, 187, "constant")
    x = np.arange(1, 1001, dtype=np.float32)
    (start, window, padded), = list(iter_patches([x], grid))
    assert start == 0 and padded
    assert window.shape == (48128,)
    np.testing.assert_array_equal(window[:256], 0.0)
    np.testing.assert_array_equal(window[256:1256], x)
    np.testing.assert_array_equal(window[1256:2256], x)


def test_empty_stream_yields_nothing():
    grid = PatchGrid(512, 256, 187, 187)
    assert list(iter_patches([], grid)) == []


@pytest.mark.parametrize("kwargs", [{"pad_mode": "edge"}, {"tail": "pad"}, {"hop_frames": 0}])
def test_invalid_grid_is_refused(kwargs):
    base = {"n_fft": 512, "hop_length": 256, "patch_frames": 187, "hop_frames": 187}
    with pytest.raises(ValueError):
        PatchGrid(**{**base, **kwargs})
