"""zoo on every Keras backend: parity with TensorFlow on real music, tagging, extraction,
training through the learnable front-ends, portable .keras files, export and the CLI.

CI runs this folder with KERAS_BACKEND=tensorflow (in the whole suite), jax and torch. The
TensorFlow reference outputs are tests/data/backend_reference (scripts/make_backend_reference.py);
on TensorFlow the same tests prove that those files are current.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from backend_utils import BACKEND, to_numpy

import zoo
from zoo import layers as zl
from zoo.cli import main

DATA = Path(__file__).resolve().parents[1] / "data"
CLIPS = sorted((DATA / "clips").glob("real_*.flac"))
REFERENCE = DATA / "backend_reference"
TAGGERS = ("musicnn_msd", "musicnn_mtt", "vgg_msd", "vgg_mtt")
EMBEDDERS = ("samplecnn_msd_distilled", "siamese_musicnn_msd", "siamese_musicnn_msd_sources",
             "musicnn_msd_whitened", "musicnn_msd_whitened_chroma_rhythm")
TOLERANCE = 1e-5
FEATURE_TOLERANCE = 5e-4  # of the largest magnitude, as tests/models/test_parity.py
OTHER_BACKENDS = [b for b in ("tensorflow", "jax", "torch")
                  if b != BACKEND and importlib.util.find_spec(b)]


def test_reference_covers_every_converted_preset_and_clip():
    assert len(CLIPS) == 3
    for preset in TAGGERS + EMBEDDERS:
        with np.load(REFERENCE / f"{preset}.npz") as ref:
            assert sorted(ref.files) == sorted(c.stem for c in CLIPS)


@pytest.mark.parametrize("preset", TAGGERS)
def test_taggrams_match_tensorflow(preset):
    model = zoo.load(preset)
    with np.load(REFERENCE / f"{preset}.npz") as ref:
        for clip in CLIPS:
            got = zoo.tag(clip, model=model).probabilities
            assert got.shape == ref[clip.stem].shape
            assert np.abs(got - ref[clip.stem]).max() <= TOLERANCE, clip.name


@pytest.mark.parametrize("preset", EMBEDDERS)
def test_embeddings_match_tensorflow(preset):
    model = zoo.load(preset, include_top=False)
    with np.load(REFERENCE / f"{preset}.npz") as ref:
        for clip in CLIPS:
            features = zoo.embed(clip, model=model)
            got = features[features.names[0]]
            assert got.shape == ref[clip.stem].shape
            assert np.abs(got - ref[clip.stem]).max() <= TOLERANCE, clip.name


def test_extract_gives_the_tagging_probabilities_and_every_feature():
    features = zoo.extract(CLIPS[0], model="musicnn_msd")
    with np.load(REFERENCE / "musicnn_msd.npz") as ref:
        assert np.abs(features["tags"] - ref[CLIPS[0].stem]).max() <= TOLERANCE
    assert {"timbral", "temporal", "penultimate", "tags"} <= set(features)
    assert all(np.isfinite(features[name]).all() for name in features)


def _waveform_model(compression: keras.layers.Layer) -> keras.Model:
    waveform = keras.Input((8000,), name="waveform")
    x = zl.MelSpectrogram(sr=8000, n_fft=256, hop_length=128, n_mels=32, center=False)(waveform)
    x = compression(x)
    x = zl.SpecAugment(4, 8, seed=0)(x)
    x = keras.layers.Conv1D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(waveform, keras.layers.Dense(2, activation="softmax")(x))


@pytest.mark.parametrize("compression", ["log_learn", "pcen"])
def test_fit_on_waveforms_trains_the_front_end(compression):
    layer = (zl.LogLearn(name="compression") if compression == "log_learn"
             else zl.PCEN(sr=8000, hop_length=128, trainable_s=True, name="compression"))
    model = _waveform_model(layer)
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 8000
    x = np.stack([np.sin(2 * np.pi * (300 if i % 2 else 1200) * t) * rng.uniform(0.1, 1)
                  + 0.01 * rng.standard_normal(8000) for i in range(16)]).astype(np.float32)
    y = np.arange(16) % 2
    before = [to_numpy(w).copy() for w in layer.trainable_weights]
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    after = [to_numpy(w) for w in layer.trainable_weights]
    assert all(np.any(a != b) for a, b in zip(after, before, strict=True))


_LOAD_ELSEWHERE = """
import sys, numpy as np, keras
import zoo.models  # registers the zoo layers and models
model = keras.models.load_model(sys.argv[1], safe_mode=True)
x = np.load(sys.argv[2])
out = keras.tree.map_structure(keras.ops.convert_to_numpy, model(x, training=False))
np.savez(sys.argv[3], **(out if isinstance(out, dict) else {"out": out}))
"""


@pytest.mark.parametrize("other", OTHER_BACKENDS)
def test_a_keras_file_saved_here_gives_the_same_outputs_on(other, tmp_path):
    model = zoo.load("musicnn_msd", features=True)
    path = tmp_path / "model.keras"
    model.save(path)
    x = (0.1 * np.random.default_rng(1).standard_normal((2, model.input_shape[-1])))
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    env = {**os.environ, "KERAS_BACKEND": other}
    run = subprocess.run([sys.executable, "-c", _LOAD_ELSEWHERE, str(path), str(tmp_path / "x.npy"),
                          str(tmp_path / "out.npz")], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    here = to_numpy(model(x.astype(np.float32), training=False))
    with np.load(tmp_path / "out.npz") as there:
        assert sorted(there.files) == sorted(here)
        assert np.abs(there["tags"] - here["tags"]).max() <= TOLERANCE
        for name in here:
            # Inner features: each backend's FFT rounds differently, and musicnn's float16
            # rounding of the mel power can then flip by one float16 step (the parity suite's
            # bound for the original's features).
            scale = max(1.0, float(np.abs(here[name]).max()))
            assert np.abs(there[name] - here[name]).max() <= FEATURE_TOLERANCE * scale, name


def test_export_from_this_backend_serves_what_zoo_tag_gives(tmp_path):
    import tensorflow as tf

    model = zoo.load("musicnn_msd")
    path = zoo.export(model, tmp_path / "serving", wav_sample_rates=())
    assert (path / "saved_model.pb").is_file()
    audio = zoo.audio.load(CLIPS[0], sr=16000)
    served = tf.saved_model.load(str(path)).signatures["serving_default"]
    out = served(waveform=tf.constant(audio[None].astype(np.float32)))
    want = zoo.tag(CLIPS[0], model=model).probabilities.mean(axis=0)
    assert np.abs(out["mean_probabilities"].numpy()[0] - want).max() <= 1e-5


def test_export_errors_come_back_as_themselves(tmp_path):
    zoo.export("vgg_msd", tmp_path, wav_sample_rates=())
    with pytest.raises(FileExistsError, match="--overwrite"):
        zoo.export("vgg_msd", tmp_path, wav_sample_rates=())


def test_cli_tag_and_index_and_similar(tmp_path, capsys):
    with np.load(REFERENCE / "musicnn_msd.npz") as ref:
        want = ref[CLIPS[0].stem]
    assert main(["tag", str(CLIPS[0]), "--json", str(tmp_path / "t.json"), "-q"]) == 0
    assert "warning" not in capsys.readouterr().err  # e.g. numpy 2's __array__ notice on torch
    tagged = json.loads((tmp_path / "t.json").read_text())["files"][0]
    assert np.abs(np.asarray(tagged["probabilities"]) - want).max() <= TOLERANCE
    catalogue = tmp_path / "music"
    catalogue.mkdir()
    for clip in CLIPS:
        (catalogue / clip.name).symlink_to(clip)
    index = tmp_path / "index"
    assert main(["index", str(catalogue), "--out", str(index), "-q"]) == 0
    capsys.readouterr()
    assert main(["similar", str(CLIPS[1]), "--index", str(index), "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    hits = hits["results"] if isinstance(hits, dict) else hits
    assert Path(hits[0]["path"]).name == CLIPS[1].name
