"""Properties of the decoder/patching boundary: what zoo.tag feeds a model from a stream equals
what one whole-file decode would give, for any length, rate, channel count, block size and
patch grid, and never holds NaN/inf.

The whole-file path is `zoo.audio.load` followed by one padded signal sliced at the grid's
starts (what a centred STFT of the whole file sees); the streamed path is `zoo.audio.stream` in
blocks of any size, cut by `zoo.inference.patching.iter_patches`. Files are encoded in memory
(bytes), so no example touches the disk.
"""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
from hypothesis import example, given, settings
from hypothesis import strategies as st

from zoo import audio
from zoo.errors import AudioError
from zoo.hub import resolve_config
from zoo.inference.patching import PatchGrid, iter_patches
from zoo.inference.tagging import patch_grid, patch_windows

RATES = [8000, 11025, 16000, 22050, 44100, 48000]
ENCODINGS = [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_24")]
# soxr's streaming resampler matches its one-shot resampling to about 1e-6 (zoo.audio.stream).
STREAM_TOL = 2e-5


def _signal(seed: int, frames: int, channels: int, kind: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "silence":
        return np.zeros((frames, channels), np.float32)
    if kind == "dc":
        return np.full((frames, channels), 0.5, np.float32)
    x = rng.standard_normal((frames, channels)).astype(np.float32)
    return np.clip(x, -1, 1) if kind == "clipped" else 0.3 * x


def _encode(x: np.ndarray, rate: int, fmt: str, subtype: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def _filled(x: np.ndarray, length: int, rule: str) -> np.ndarray:
    """A short signal brought to patch length: tiled, or centred / left-aligned in silence."""
    if rule == "tile":
        return np.resize(x, length)
    out = np.zeros(length, np.float32)
    start = (length - len(x)) // 2 if rule == "centre" else 0
    out[start:start + len(x)] = x
    return out


def _whole_file_patches(x: np.ndarray, grid: PatchGrid) -> list[tuple[int, np.ndarray, bool]]:
    """The reference: one padded signal sliced at every start (filled first if too short)."""
    short = len(x) < grid.min_samples()
    if short:
        x = _filled(x, grid.min_samples(), grid.short_clips)
    padded = np.pad(x, grid.edge, mode=grid.pad_mode) if grid.edge else x
    if short:
        return [(0, padded[:grid.window], True)]
    hop = grid.hop_length
    return [(s, padded[s * hop:s * hop + grid.window], False) for s in grid.start_frames(len(x))]


def _assert_same_patches(got, want, atol: float) -> None:
    assert [(s, p) for s, _, p in got] == [(s, p) for s, _, p in want]
    for (_, window, _), (_, ref, _) in zip(got, want, strict=True):
        assert window.dtype == np.float32 and window.shape == ref.shape
        assert np.isfinite(window).all()
        np.testing.assert_allclose(window, ref, rtol=0, atol=atol)


grids = st.builds(
    lambda n_fft, hop_div, patch_frames, hop_frames, pad_mode, tail, min_tail, short: PatchGrid(
        n_fft=n_fft, hop_length=max(1, n_fft // hop_div), patch_frames=patch_frames,
        hop_frames=hop_frames, pad_mode=pad_mode, tail=tail, min_tail_frames=min_tail,
        short_clips=short),
    n_fft=st.sampled_from([1, 2, 16, 64, 512]),
    hop_div=st.sampled_from([1, 2, 4]),
    patch_frames=st.integers(1, 40),
    hop_frames=st.integers(1, 50),
    pad_mode=st.sampled_from(["reflect", "constant"]),
    tail=st.sampled_from(["end", "drop"]),
    min_tail=st.integers(1, 20),
    short=st.sampled_from(["tile", "centre", "left"]),
)
# A grid of one-frame patches: a signal no longer than its edge pad still holds whole patches
# (iter_patches once emitted them without their left pad).
ONE_FRAME = PatchGrid(n_fft=512, hop_length=512, patch_frames=1, hop_frames=1)


@settings(max_examples=30, deadline=None)
@example(rate=16000, channels=1, seconds=0.01, block=40000, encoding=ENCODINGS[0],
         kind="noise", grid=ONE_FRAME, seed=0)
@example(rate=44100, channels=2, seconds=0.005, block=7, encoding=ENCODINGS[1],
         kind="noise", grid=replace(ONE_FRAME, pad_mode="constant"), seed=1)
@given(
    rate=st.sampled_from(RATES),
    channels=st.integers(1, 8),
    # Short signals (below a patch, below an edge pad) are where the paths part: draw them often.
    seconds=st.one_of(st.floats(0.00002, 0.05), st.floats(0.05, 3.0)),
    block=st.integers(1, 40000),
    encoding=st.sampled_from(ENCODINGS),
    kind=st.sampled_from(["noise", "clipped", "silence", "dc"]),
    grid=grids,
    seed=st.integers(0, 2**16),
)
def test_streamed_file_patches_equal_whole_file_patches(rate, channels, seconds, block,
                                                        encoding, kind, grid, seed):
    frames = max(1, round(seconds * rate))
    data = _encode(_signal(seed, frames, channels, kind), rate, *encoding)
    block = max(block, grid.window // 8)  # tiny blocks under a big window: slow, not different
    try:
        whole = audio.load(data, sr=16000)
    except AudioError as err:  # too short to resample: the stream must refuse it as well
        with pytest.raises(AudioError, match="too short to resample"):
            list(iter_patches(audio.stream(data, sr=16000, block_samples=block), grid))
        assert "too short to resample" in err.reason
        return
    streamed = list(audio.stream(data, sr=16000, block_samples=block))
    assert all(0 < len(b) <= block for b in streamed) and all(len(b) == block
                                                              for b in streamed[:-1])
    assert sum(len(b) for b in streamed) == len(whole)
    got = list(iter_patches(iter(streamed), grid))
    exact = rate == 16000  # no resampling: both paths must agree to the bit
    _assert_same_patches(got, _whole_file_patches(whole, grid), 0.0 if exact else STREAM_TOL)


@settings(max_examples=20, deadline=None)
@given(
    rate=st.sampled_from(RATES),
    channels=st.integers(1, 8),
    frames=st.integers(1, 30000),
    block=st.integers(1, 30000),
    seed=st.integers(0, 2**16),
)
def test_streamed_channels_equal_whole_file_channels(rate, channels, frames, block, seed):
    """``mono=False``: the blocks, joined, are `load`'s (channels, samples) at any block size."""
    data = _encode(_signal(seed, frames, channels, "noise"), rate, "WAV", "FLOAT")
    try:
        whole = audio.load(data, sr=16000, mono=False)
    except AudioError:
        with pytest.raises(AudioError, match="too short to resample"):
            list(audio.stream(data, sr=16000, block_samples=block, mono=False))
        return
    streamed = list(audio.stream(data, sr=16000, block_samples=block, mono=False))
    assert all(b.shape[0] == channels and 0 < b.shape[1] <= block for b in streamed)
    joined = np.concatenate(streamed, axis=1)
    assert joined.shape == whole.shape == (channels, joined.shape[1])
    assert np.isfinite(joined).all()
    np.testing.assert_allclose(joined, whole, rtol=0, atol=0.0 if rate == 16000 else STREAM_TOL)


@pytest.fixture(scope="module")
def musicnn_config():
    return resolve_config("musicnn_msd")


@settings(max_examples=12, deadline=None)
@given(
    rate=st.sampled_from(RATES),
    channels=st.integers(1, 3),
    seconds=st.floats(0.01, 10.0),
    hop_seconds=st.sampled_from([0.5, 1.5, 3.0]),
    tail=st.sampled_from(["end", "drop"]),
    short_clips=st.sampled_from(["tile", "centre", "left"]),
    seed=st.integers(0, 2**16),
)
def test_what_tag_feeds_the_model_equals_the_whole_file_path(musicnn_config, rate, channels,
                                                             seconds, hop_seconds, tail,
                                                             short_clips, seed):
    """`patch_windows` (zoo.tag's input: stream blocks of a few patch hops) on a preset's grid."""
    frames = max(1, round(seconds * rate))
    data = _encode(_signal(seed, frames, channels, "noise"), rate, "FLAC", "PCM_24")
    grid = patch_grid(musicnn_config.preprocessing, hop_seconds, tail, short_clips)
    got = list(patch_windows(data, musicnn_config, grid))
    whole = audio.load(data, sr=musicnn_config.preprocessing.sample_rate)
    exact = rate == musicnn_config.preprocessing.sample_rate
    _assert_same_patches(got, _whole_file_patches(whole, grid), 0.0 if exact else STREAM_TOL)
