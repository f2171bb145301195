"""sampleCNN: the builder, the waveform front-end (presets, patching, serving) and the shipped
`samplecnn_msd_distilled` preset, plus a smoke test of scripts/distill_samplecnn.py."""

from __future__ import annotations

import io
from pathlib import Path

import keras
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from script_modules import load_script

import zoo
from zoo.errors import PresetError
from zoo.hub import file_sha256
from zoo.inference.patching import PatchGrid, iter_patches
from zoo.models.pipeline import build_backbone, wrap_waveform
from zoo.models.registry import get_architecture
from zoo.models.samplecnn import (
    build_samplecnn,
    default_filters,
    input_samples,
    samplecnn_features,
    samplecnn_param_count,
)
from zoo.presets import Preprocessing, PresetConfig, WeightsRef, get_preset, shipped_dir
from zoo.serving import graph as serving_graph

ROOT = Path(__file__).resolve().parents[2]
CLIPS = Path(__file__).resolve().parents[1] / "data" / "clips"
PRESET = "samplecnn_msd_distilled"
TINY = dict(filters=(8, 8, 8), stem_filters=8, embedding_units=12, n_tags=5)


def _tiny(**kwargs) -> keras.Model:
    return build_samplecnn(**{**TINY, **kwargs})


# ------------------------------------------------------------------------------ builder


def test_tiny_model_builds_from_small_kwargs():
    model = _tiny()
    assert model.input_shape == (None, 81) and model.output_shape == (None, 5)
    assert input_samples(3) == 81 == 3 ** 4
    y = np.asarray(model(np.random.default_rng(0).normal(size=(2, 81)).astype("float32")))
    assert y.shape == (2, 5) and np.all((y > 0) & (y < 1))
    # Depth from `depth` alone uses the paper's pattern (128, 128, 256, ..., 512).
    assert default_filters(9) == (128, 128, 256, 256, 256, 256, 256, 256, 512)
    assert build_samplecnn(depth=4, filters=(4, 4, 4, 4), stem_filters=4,
                           embedding_units=4).input_shape == (None, 243)


def test_input_length_must_be_a_power_of_three():
    with pytest.raises(ValueError, match=r"3\^4 = 81 samples, got n_samples=80"):
        _tiny(n_samples=80)
    assert _tiny(n_samples=81).input_shape == (None, 81)
    with pytest.raises(ValueError, match="depth=4 but 3 block filters"):
        _tiny(depth=4)
    # A preset whose patch is not the model's input length fails with the preset's name.
    config = PresetConfig(name="bad", description="", architecture="samplecnn",
                          architecture_config={k: v for k, v in TINY.items() if k != "n_tags"},
                          preprocessing=Preprocessing.waveform(16000, 80),
                          tags=tuple("abcde"), weights=WeightsRef(file=None))
    with pytest.raises(PresetError, match="'bad'.*80 samples"):
        wrap_waveform(config, build_backbone(config), "bad")


def test_full_3_9_model_parameter_count_from_layer_shapes():
    model = build_samplecnn()  # the paper's 3^9 model, 50 tags
    assert model.input_shape == (None, 59049)

    def conv(k, c_in, c_out):
        return k * c_in * c_out + c_out

    def bn(c):  # gamma, beta, moving mean, moving variance
        return 4 * c

    widths = [128, 128, 128, 256, 256, 256, 256, 256, 256, 512]  # stem, then blocks 1-9
    expected = conv(3, 1, 128) + bn(128)
    expected += sum(conv(3, a, b) + bn(b) for a, b in zip(widths[:-1], widths[1:], strict=True))
    expected += conv(1, 512, 512) + bn(512)  # the 1x1 conv on the last frame (a dense layer)
    expected += conv(1, 512, 50)  # tag layer
    assert model.count_params() == expected == samplecnn_param_count()
    # The frames shrink by 3 per block down to one: 19683 after the stem.
    assert model.get_layer("stem_relu").output.shape[1] == 3 ** 9
    assert model.get_layer("block9_pool").output.shape[1] == 1


def test_serialization_round_trip(tmp_path):
    model = _tiny(name="tiny_samplecnn")
    x = np.random.default_rng(1).normal(size=(3, 81)).astype("float32")
    path = tmp_path / "tiny.keras"
    model.save(path)
    restored = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(restored(x)), np.asarray(model(x)), atol=1e-6)
    assert not [layer for layer in restored.layers if isinstance(layer, keras.layers.Lambda)]


def test_embedding_and_taps():
    embedder = _tiny(include_top=False)
    assert embedder.output_shape == (None, 12)
    arch = get_architecture("samplecnn")
    features, embedding = arch.taps({"filters": [8, 8, 8]})
    assert embedding == "embedding"
    assert list(features) == ["stem", "block1", "block2", "block3", "pooled", "embedding"]
    model = _tiny()
    for layer in features.values():
        model.get_layer(layer)  # every tap names a layer


# ------------------------------------------------------------------ waveform front-end


def test_waveform_preprocessing_json_round_trip():
    prep = Preprocessing.waveform(16000, 59049)
    assert (prep.patch_samples, prep.edge_padding, prep.patch_hop_samples) == (59049, 0, 59049)
    assert prep.patch_seconds == pytest.approx(3.6905625)
    assert prep.to_dict() == {"sample_rate": 16000, "n_fft": 1, "hop_length": 1,
                              "patch_frames": 59049, "frontend": "waveform"}
    assert Preprocessing(**prep.to_dict()) == prep
    assert "frontend" not in Preprocessing().to_dict()  # mel presets keep their JSON
    with pytest.raises(ValueError, match="n_fft and hop_length must be 1"):
        Preprocessing(frontend="waveform", patch_frames=81)
    with pytest.raises(ValueError, match="frontend must be one of"):
        Preprocessing(frontend="raw")


def _waveform_grid(hop_frames, tail="end", patch=81):
    return PatchGrid(n_fft=1, hop_length=1, patch_frames=patch, hop_frames=hop_frames,
                     tail=tail, min_tail_frames=20)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 700), block=st.integers(1, 300), hop_frames=st.integers(1, 100),
       tail=st.sampled_from(["end", "drop"]))
def test_waveform_patches_are_plain_slices(n, block, hop_frames, tail):
    grid = _waveform_grid(hop_frames, tail)
    assert grid.edge == 0 and grid.window == 81 == grid.min_samples()
    x = np.random.default_rng(n).normal(size=n).astype(np.float32)
    got = list(iter_patches((x[i:i + block] for i in range(0, n, block)), grid))
    if n < 81:
        assert len(got) == 1 and got[0][2]
        np.testing.assert_array_equal(got[0][1], np.resize(x, 81))
        return
    starts = list(range(0, n - 81 + 1, hop_frames))
    if tail == "end" and n - (starts[-1] + 81) >= 20:
        starts.append(n - 81)
    assert [s for s, _, _ in got] == starts
    for s, window, padded in got:
        assert not padded
        np.testing.assert_array_equal(window, x[s:s + 81])


@pytest.mark.parametrize("tail", ["end", "drop"])
def test_in_graph_waveform_patching_equals_zoo_patching(tail):
    grid = _waveform_grid(27, tail)
    rng = np.random.default_rng(3)
    for n in [1, 50, 80, 81, 82, 81 + 27, 81 + 46, 81 + 47, 500]:
        x = rng.uniform(-1, 1, n).astype(np.float32)
        want = list(iter_patches([x[: n // 2], x[n // 2:]], grid))
        windows, starts, short = serving_graph.patch_windows(tf.constant(x[None]), grid)
        assert starts.numpy().tolist() == [s for s, _, _ in want], n
        np.testing.assert_array_equal(windows.numpy()[0], np.stack([w for _, w, _ in want]))
        assert bool(short) == want[0][2]


# ----------------------------------------------------------------------- shipped preset


@pytest.fixture(scope="module")
def model():
    return zoo.load(PRESET)


def test_shipped_preset_is_complete_and_verified():
    config = get_preset(PRESET)
    prep = config.preprocessing
    assert prep.frontend == "waveform" and prep.sample_rate == 16000
    assert prep.patch_samples == 59049 == input_samples(config.architecture_config["depth"])
    assert config.tags == get_preset("musicnn_msd").tags
    assert file_sha256(shipped_dir() / config.weights.file) == config.weights.sha256
    assert config.source["teacher_preset"] == "musicnn_msd"
    assert (shipped_dir() / config.source["license_file"]).is_file()
    assert 0.5 < config.metrics["roc_auc_vs_teacher_top3"] <= 1.0


def test_load_tag_and_embedding(model):
    assert model.input_shape == (None, 59049) and model.output_shape == (None, 50)
    width = get_preset(PRESET).architecture_config["embedding_units"]
    assert zoo.load(PRESET, include_top=False).output_shape == (None, width)
    taggram = zoo.tag(CLIPS / "real_rock_hedgewars.flac", model=model)
    assert taggram.probabilities.shape == (len(taggram.times), 50)
    assert np.all(np.isfinite(taggram.probabilities))
    assert np.all((taggram.probabilities >= 0) & (taggram.probabilities <= 1))
    assert taggram.times[1] == pytest.approx(3.0)  # default 3-s hop, 3.69-s patches
    assert taggram.patch_seconds == pytest.approx(59049 / 16000)
    short = zoo.tag(CLIPS / "synth_short_2s.flac", model=model)
    assert short.repeat_padded and short.probabilities.shape == (1, 50)


def test_extract_gives_every_feature(model):
    feats = zoo.extract(CLIPS / "synth_short_2s.flac", model=model)
    depth = get_preset(PRESET).architecture_config["depth"]
    assert set(feats.names) == set(samplecnn_features(depth)) | {"tags"}
    assert feats["block9"].shape[:2] == (1, 1)
    np.testing.assert_allclose(feats["tags"], zoo.tag(CLIPS / "synth_short_2s.flac",
                                                      model=model).probabilities, atol=1e-6)


def _wav_bytes(x: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_export_serving_default_and_tag_wav_equal_zoo_tag(model, tmp_path):
    path = zoo.export(model, tmp_path, max_patches_per_call=2)
    loaded = tf.saved_model.load(str(path))
    assert sorted(loaded.signatures) == ["serving_default", "tag_wav"]
    clips = {}
    for name in ("real_electronic_warzone2100", "synth_short_2s"):  # 2 patches + tail; tiled
        pcm, sr = sf.read(CLIPS / f"{name}.flac", dtype="int16")
        clips[name] = (pcm, pcm.astype(np.float32) / 32768.0, sr)
    want = {name: zoo.tag(x, model=model, source_sr=sr) for name, (_, x, sr) in clips.items()}
    assert len(want["real_electronic_warzone2100"].times) == 3
    assert want["synth_short_2s"].repeat_padded
    for name, (_, x, _) in clips.items():
        out = loaded.signatures["serving_default"](waveform=tf.constant(x[None]))
        np.testing.assert_allclose(out["probabilities"].numpy()[0], want[name].probabilities,
                                   atol=1e-5)
        np.testing.assert_allclose(out["patch_times"].numpy()[0], want[name].times, atol=1e-4)
        assert bool(out["repeat_padded"].numpy()[0]) == want[name].repeat_padded
    width = model.zoo_backbone.get_layer("embedding").output.shape[-1]
    assert out["embedding"].shape[-1] == width
    wav = loaded.signatures["tag_wav"](
        wav=tf.constant([_wav_bytes(pcm, sr) for pcm, _, sr in clips.values()]))
    for row, name in enumerate(clips):
        n = int(wav["num_patches"].numpy()[row])
        assert n == len(want[name].times)
        np.testing.assert_allclose(wav["probabilities"].numpy()[row, :n],
                                   want[name].probabilities, atol=1e-5)


def test_tflite_patch_model_matches_keras(model, tmp_path):
    path = zoo.export(model, tmp_path, format="tflite")
    runner = tf.lite.Interpreter(model_path=str(path / "model.tflite")).get_signature_runner()
    x = np.random.default_rng(5).uniform(-0.5, 0.5, (2, 59049)).astype(np.float32)
    np.testing.assert_allclose(runner(waveform=x)["probabilities"], np.asarray(model(x)),
                               atol=1e-5)


def test_save_preset_round_trip(model, tmp_path):
    folder = zoo.save_preset(model, tmp_path / "copy", name="my_samplecnn")
    again = zoo.load(folder)
    assert again.zoo_preset.preprocessing == model.zoo_preset.preprocessing
    x = np.random.default_rng(6).uniform(-0.5, 0.5, (1, 59049)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(model(x)), atol=1e-6)


def test_card_is_current():
    from zoo.hub.cards import model_card

    card = (ROOT / "docs" / "models" / f"{PRESET}.md").read_text(encoding="utf-8")
    assert card == model_card(get_preset(PRESET), builtin=True)
    assert "## Preprocessing\n" in card and "STFT" not in card and "ISC" in card


# ------------------------------------------------------------------------- distillation


def _distill_module():
    return load_script("distill_samplecnn")


def test_distillation_training_smoke(tmp_path):
    distill = _distill_module()
    geometry = distill.Geometry(student=81, teacher=60, hop=9)
    assert (geometry.per_excerpt, geometry.jitter) == (3, 3)
    rng = np.random.default_rng(0)
    signals = [rng.normal(0, 0.3, 300 + 40 * i).astype(np.float32) for i in range(3)]
    targets = [rng.uniform(0.05, 0.95, (geometry.n_windows(len(s)), 5)).astype(np.float32)
               for s in signals]
    # Every excerpt lies inside its clip and covers its teacher windows.
    for n in (81, 100, 300):
        for k in range(geometry.last_window(n) + 1):
            for shift in range(geometry.jitter + 1):
                start = geometry.start(k, shift, n)
                assert 0 <= start <= k * geometry.hop
                assert (k + geometry.per_excerpt - 1) * geometry.hop + 60 <= start + 81 <= n
    xv, yv, _, _ = distill.fixed_excerpts(signals, targets, geometry, per_clip=2)
    assert xv.shape == (6, 81) and yv.shape == (6, 5)
    keras.utils.set_random_seed(0)
    student = _tiny(bn_momentum=0.9)
    before = [w.copy() for w in student.get_weights()]
    history = distill.train_student(student, (signals, targets), (xv, yv), geometry=geometry,
                                    epochs=2, steps_per_epoch=3, batch_size=4, seed=0,
                                    workdir=tmp_path, verbose=0)
    assert len(history["loss"]) == 2 and np.all(np.isfinite(history["loss"] + history["val_loss"]))
    assert any(not np.array_equal(a, b) for a, b in zip(before, student.get_weights(),
                                                        strict=True))
    assert (tmp_path / "history.csv").is_file()


def test_agreement_metrics():
    distill = _distill_module()
    rng = np.random.default_rng(2)
    teacher = rng.uniform(0, 1, (40, 6)).astype(np.float32)
    same = distill.agreement(teacher, teacher, top_k=2, baseline=teacher.mean(0))
    # A threshold is per tag, so the teacher itself scores 1; top-k is per excerpt, so not quite.
    assert same["roc_auc_p>=0.5"] == 1.0 and 0.85 < same["roc_auc_top2"] < 1.0
    assert same["top5_overlap"] == 1.0 and same["mean_abs_error"] == 0.0
    assert same["pearson_all"] == pytest.approx(1.0)
    assert same["pearson_per_tag_mean"] == pytest.approx(1.0)
    noise = distill.agreement(rng.uniform(0, 1, teacher.shape), teacher, top_k=2)
    assert abs(noise["roc_auc_top2"] - 0.5) < 0.2 and noise["top5_overlap"] < 1.0
