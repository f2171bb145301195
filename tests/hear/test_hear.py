"""zoo.hear: the HEAR 2021 API over zoo presets (shapes, timestamps, pooling, errors, and HEAR's
own validator where it is installed)."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import zoo
import zoo.hear as hear

CLIP = Path(__file__).resolve().parents[1] / "data" / "clips" / "real_rock_hedgewars.flac"
PRESETS = ("musicnn_msd", "musicnn_mtt", "vgg_msd", "vgg_mtt", "samplecnn_msd_distilled",
           "siamese_musicnn_msd", "siamese_musicnn_msd_sources", "musicnn_msd_whitened",
           "musicnn_msd_whitened_chroma_rhythm")
# (size, first timestamp ms, hop ms), worked out by hand from each family's layers: musicnn's
# mid-end frames are mel frames (16 ms, the first centred on sample 0); VGG's pool1 pools two
# mel frames; sampleCNN's block5 frame covers 3^6 = 729 samples.
GRIDS = {"musicnn": (753, 0.0, 16.0), "vgg": (128, 8.0, 32.0),
         "samplecnn": (64, 364 / 16.0, 729 / 16.0)}
_MODELS: dict[str, hear.HearModel] = {}


def model_of(preset: str) -> hear.HearModel:
    if preset not in _MODELS:
        _MODELS[preset] = hear.load_model(preset)
    return _MODELS[preset]


def family(preset: str) -> str:
    return next(f for f in GRIDS if preset.startswith(f) or f == "musicnn" and "siamese" in preset)


def noise(n_sounds: int, seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (n_sounds, int(seconds * 16000))).astype(np.float32)


@pytest.mark.parametrize("preset", PRESETS)
def test_shapes_dtypes_and_the_timestamp_grid(preset):
    model = model_of(preset)
    size, first, hop = GRIDS[family(preset)]
    assert isinstance(model, tf.Module) and model.sample_rate == 16000
    assert model.timestamp_embedding_size == model.scene_embedding_size == size
    emb, ts = hear.get_timestamp_embeddings(noise(3, 2.0), model)
    assert emb.dtype == tf.float32 and ts.dtype == tf.float32
    n = int(np.ceil((2000.0 - first) / hop))  # frames centred inside the 2 s
    assert emb.shape == (3, n, size) and ts.shape == (3, n)
    np.testing.assert_allclose(ts.numpy()[0], first + hop * np.arange(n), atol=1e-3)
    assert hop <= 50.0 and np.isfinite(emb.numpy()).all()
    scene = hear.get_scene_embeddings(noise(2, 3.74), model)
    assert scene.dtype == tf.float32 and scene.shape == (2, size)


def test_scene_is_the_mean_of_the_timestamp_embeddings_and_sounds_are_independent():
    model = model_of("musicnn_msd")
    audio = noise(3, 7.0, seed=1)
    audio[1] *= 0.01
    emb, _ = hear.get_timestamp_embeddings(audio, model)
    scene = hear.get_scene_embeddings(audio, model)
    np.testing.assert_allclose(scene.numpy(), emb.numpy().mean(axis=1), rtol=1e-5, atol=1e-6)
    alone, _ = hear.get_timestamp_embeddings(audio[1:2], model)
    np.testing.assert_allclose(alone.numpy()[0], emb.numpy()[1], rtol=1e-5, atol=1e-6)


def test_frames_are_the_models_own_features_patch_after_patch():
    model = model_of("musicnn_msd")
    audio = zoo.audio.load(CLIP, sr=16000)[: 16000 * 9]
    emb, _ = hear.get_timestamp_embeddings(audio[None], model)
    patches = zoo.extract(audio, model="musicnn_msd", hop_seconds=187 * 256 / 16000,
                          source_sr=16000, tail="drop")
    for p in range(2):  # whole patches inside the audio: the same windows, the same numbers
        mid_end = np.concatenate([patches[name][p] for name in model.taps.names], axis=-1)
        np.testing.assert_allclose(emb.numpy()[0, 187 * p: 187 * (p + 1)], mid_end,
                                   rtol=1e-4, atol=1e-5)


def test_twenty_minutes_keep_a_regular_grid():
    model = model_of("samplecnn_msd_distilled")
    minutes = 20
    times = model.frame_times_ms(int(minutes * 60_000 / model.timestamp_hop_ms) + 1)
    diffs = np.diff(times.astype(np.float32))
    assert np.abs(diffs - model.timestamp_hop_ms).max() < 1e-3 * 100  # float32 at 1.2e6 ms
    emb, ts = hear.get_timestamp_embeddings(noise(1, minutes * 60, seed=2) * 0.1, model)
    assert ts.numpy()[0, -1] <= minutes * 60_000 and ts.shape[1] == len(times) - 1
    assert np.abs(np.diff(ts.numpy()[0]) - model.timestamp_hop_ms).max() < 1.0
    assert np.isfinite(emb.numpy()).all()


def test_short_sounds_get_the_frames_they_cover():
    model = model_of("musicnn_msd")
    emb, ts = hear.get_timestamp_embeddings(noise(2, 0.1), model)
    assert emb.shape == (2, 7, 753) and ts.numpy()[0, -1] == pytest.approx(96.0)


@pytest.mark.parametrize("audio, message", [
    (np.zeros(16000, np.float32), "n_sounds, n_samples"),
    (np.zeros((0, 16000), np.float32), "empty"),
    (np.zeros((2, 0), np.float32), "empty"),
    (np.zeros((2, 16000), np.int16), "float32"),
    (np.full((1, 16000), np.nan, np.float32), "NaN"),
])
def test_bad_audio_is_refused_clearly(audio, message):
    with pytest.raises(ValueError, match=message):
        hear.get_timestamp_embeddings(audio, model_of("musicnn_msd"))
    with pytest.raises(ValueError, match=message):
        hear.get_scene_embeddings(audio, model_of("musicnn_msd"))


def test_a_model_from_elsewhere_is_refused():
    with pytest.raises(TypeError, match="load_model"):
        hear.get_scene_embeddings(noise(1, 1.0), zoo.load("musicnn_msd"))


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_has_a_module_whose_load_model_needs_no_argument(preset):
    module = importlib.import_module(f"zoo.hear.{preset}")
    assert module.load_model().preset == preset
    assert module.get_scene_embeddings is hear.get_scene_embeddings


def test_the_mfcc_baseline_module_pools_its_own_frames():
    from zoo.finetune.baseline import summarize
    from zoo.hear import mfcc

    model = mfcc.load_model()
    audio = noise(2, 2.0, seed=3)
    emb, ts = mfcc.get_timestamp_embeddings(audio, model)
    assert emb.shape == (2, 63, 40) and model.timestamp_embedding_size == 40
    np.testing.assert_allclose(ts.numpy()[0, :3], [0.0, 32.0, 64.0])
    scene = mfcc.get_scene_embeddings(audio, model)
    assert scene.shape == (2, model.scene_embedding_size)
    np.testing.assert_allclose(scene.numpy()[1], summarize(emb.numpy()[1, :, :20],
                                                           model.settings), rtol=1e-5,
                               atol=1e-5)
    with pytest.raises(ValueError, match="no weights"):
        mfcc.load_model("weights.h5")


@pytest.mark.skipif(shutil.which("hear-validator") is None and
                    importlib.util.find_spec("hearvalidator") is None,
                    reason="hearvalidator is not installed (pip install hearvalidator; it needs "
                           "torch)")
@pytest.mark.parametrize("preset", [*PRESETS, "mfcc"])
def test_hear_validator_passes(preset):
    run = subprocess.run([sys.executable, "-m", "hearvalidator.validate", f"zoo.hear.{preset}"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and "Looks good!" in run.stdout, run.stdout[-2000:] + run.stderr[
        -2000:]
