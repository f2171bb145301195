"""A preset's application grid: default hop, short-clip rule, clip answer, classifier output."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.cli import main
from zoo.inference.patching import fill_patch
from zoo.inference.tagging import Taggram, patch_windows, preset_grid
from zoo.models.zoo_model import ZooModel
from zoo.presets import Application, Preprocessing, PresetConfig, WeightsRef, get_preset
from zoo.serving.graph import patch_windows as graph_patch_windows

SR = 16000
WORDS = ("yes", "no", "up")


def speech_config(**application) -> PresetConfig:
    """A keyword model's preset with 1.0 s patches (100 frames of 10 ms)."""
    prep = Preprocessing(sample_rate=SR, n_fft=512, hop_length=160, win_length=400, n_mels=40,
                         fmin=20.0, fmax=8000.0, compression="power_to_db",
                         pad_mode="constant", patch_frames=100)
    return PresetConfig(
        name="tiny_words", description="tiny random keyword model", architecture="melcnn",
        architecture_config={"n_mels": 40, "n_frames": 100, "filters": [4, 4],
                             "dense_units": 8},
        preprocessing=prep, tags=WORDS, weights=WeightsRef(file=None),
        application=Application(**application))


@pytest.fixture(scope="module")
def word_model() -> ZooModel:
    keras.utils.set_random_seed(0)
    return ZooModel(speech_config(short_clips="centre", aggregate="best_window",
                                  task="classification"))


def tone(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(round(seconds * SR))).clip(-1, 1).astype(np.float32)


def test_a_one_second_patch_preset_tags_nine_seconds_with_nine_patches(word_model):
    taggram = zoo.tag(tone(9.0), model=word_model, source_sr=SR)
    assert len(taggram.times) == 9
    np.testing.assert_allclose(taggram.times, np.arange(9.0), atol=1e-9)
    # an explicit hop still wins
    assert len(zoo.tag(tone(9.0), model=word_model, source_sr=SR, hop_seconds=3.0,
                       tail="drop").times) == 3


@pytest.mark.parametrize("rule", ["centre", "left", "tile"])
def test_short_clips_fill_a_patch_by_the_preset_rule(rule):
    config = speech_config(short_clips=rule)
    clip = tone(0.4, seed=1)
    grid = preset_grid(config)
    (start, window, padded), = patch_windows(clip, config, grid, SR)
    assert start == 0 and padded
    n = grid.min_samples()  # the signal one patch holds, after the (zero) edge pad
    body = window[grid.edge:grid.edge + n]
    if rule == "centre":
        lead = (n - clip.size) // 2
        np.testing.assert_array_equal(body[lead:lead + clip.size], clip)
        assert not body[:lead].any() and not body[lead + clip.size:].any()
    elif rule == "left":
        np.testing.assert_array_equal(body[:clip.size], clip)
        assert not body[clip.size:].any()
    else:
        np.testing.assert_array_equal(body, np.resize(clip, n))
    # the exported graph pads the same way
    windows, _, graph_padded = graph_patch_windows(tf.constant(clip[None]), preset_grid(config))
    assert bool(graph_padded)
    np.testing.assert_allclose(windows.numpy()[0, 0], window, atol=1e-7)


def test_fill_patch_rules():
    x = np.arange(1, 4, dtype=np.float32)
    np.testing.assert_array_equal(fill_patch(x, 7, "centre"), [0, 0, 1, 2, 3, 0, 0])
    np.testing.assert_array_equal(fill_patch(x, 7, "left"), [1, 2, 3, 0, 0, 0, 0])
    np.testing.assert_array_equal(fill_patch(x, 7, "tile"), [1, 2, 3, 1, 2, 3, 1])


def test_centred_clip_through_the_model_equals_the_centred_window(word_model):
    clip = tone(0.3, seed=2)
    got = zoo.tag(clip, model=word_model, source_sr=SR)
    centred = fill_patch(clip, preset_grid(word_model.zoo_preset).min_samples(), "centre")
    want = zoo.tag(centred, model=word_model, source_sr=SR)
    np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-6)
    assert got.repeat_padded and not got.warnings  # centring is how such a preset trained


def test_best_window_is_the_clip_answer():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.85, 0.05], [0.7, 0.2, 0.1]], np.float32)
    tg = Taggram(probabilities, WORDS, np.arange(3.0), aggregate="best_window",
                 task="classification")
    assert tg.best_window == 1 and tg.predicted() == ("no", pytest.approx(0.85))
    assert tg.top(1) == [("no", pytest.approx(0.85))]
    assert Taggram(probabilities, WORDS, np.arange(3.0)).top(1)[0][0] == "yes"  # the mean
    np.testing.assert_allclose(Taggram(probabilities, WORDS, np.arange(3.0),
                                       aggregate="max").clip, [0.7, 0.85, 0.1])
    doc = tg.to_dict()
    assert doc["predicted"] == {"class": "no", "probability": pytest.approx(0.85)}


def test_musicnn_default_grid_is_the_original_three_second_patching():
    config = get_preset("musicnn_msd")
    assert preset_grid(config).hop_frames == 187
    assert preset_grid(get_preset("samplecnn_msd_distilled")).hop_frames == 3 * SR
    assert "application" not in config.to_dict()  # shipped JSON unchanged


def test_application_round_trips_and_rejects_unknown_rules():
    config = speech_config(short_clips="centre", aggregate="best_window", task="classification")
    again = PresetConfig.from_dict(config.to_dict())
    assert again.application == config.application
    with pytest.raises(ValueError, match="short_clips"):
        Application(short_clips="mirror")
    with pytest.raises(zoo.PresetError, match="aggregate"):
        PresetConfig.from_dict({**config.to_dict(), "application": {"aggregate": "vote"}})


def test_cli_prints_a_classifier_class_and_each_window(word_model, tmp_path, capsys):
    import soundfile as sf

    from zoo.hub.saving import save_preset

    directory = save_preset(word_model, tmp_path / "words")
    wav = tmp_path / "three.wav"
    sf.write(wav, tone(3.0, seed=3), SR)
    assert main(["tag", str(wav), "--model", str(directory), "--per-window"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    label, p = zoo.tag(str(wav), model=str(directory)).predicted()
    assert lines[0] == f"{wav}: {label} ({p:.3f})"
    assert len(lines) == 4 and lines[1].strip().startswith("0.00 s")
    assert all(line.count("(") == 1 for line in lines[1:])  # one class per window


def test_a_preset_saved_with_its_application_keeps_it(word_model, tmp_path):
    from zoo.hub.saving import save_preset

    directory = save_preset(word_model, tmp_path / "words")
    loaded = zoo.load(str(directory))
    assert loaded.zoo_preset.application == word_model.zoo_preset.application
    replaced = dataclasses.replace(loaded.zoo_preset, application=Application())
    assert replaced.to_dict().get("application") is None


def test_the_last_second_of_a_recording_is_not_left_out_by_a_short_patch_preset():
    # 101-frame patches (1.01 s, as `zoo finetune speech_commands` makes): 8 regular patches
    # cover 8.08 s of 9 s; the 0.92 s left over gets one end-aligned patch.
    prep = dataclasses.replace(speech_config().preprocessing, patch_frames=101)
    config = dataclasses.replace(speech_config(short_clips="centre"), preprocessing=prep)
    grid = preset_grid(config)
    starts = grid.start_frames(9 * SR)
    assert len(starts) == 9 and starts[-1] + grid.patch_frames == grid.n_frames(9 * SR)
    # the exported graph makes the same windows
    _, graph_starts, _ = graph_patch_windows(tf.constant(tone(9.0)[None]), grid)
    assert graph_starts.numpy().tolist() == starts


@pytest.mark.parametrize("name", ["musicnn_msd", "vgg_msd", "samplecnn_msd_distilled"])
def test_long_patch_presets_keep_the_one_second_tail_rule(name):
    config = get_preset(name)
    prep = config.preprocessing
    assert preset_grid(config).min_tail_frames == np.ceil(prep.sample_rate / prep.hop_length)
