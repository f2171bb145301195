"""zoo.tag / zoo.extract on whole recordings: patching, batching, arrays, short and bad input."""

import numpy as np
import pytest
import soundfile as sf

import zoo
from zoo.errors import AudioError

CLIP = "tests/data/clips/real_rock_hedgewars.flac"


@pytest.fixture(scope="module")
def tagger():
    return zoo.load("musicnn_mtt")


@pytest.fixture(scope="module")
def signal():
    return zoo.audio.load(CLIP, sr=16000)


def test_taggram_fields(tagger, signal):
    tg = zoo.tag(CLIP, model=tagger)
    assert tg.tags == tagger.zoo_preset.tags
    assert tg.probabilities.shape == (len(tg.times), 50)
    assert np.all((tg.probabilities >= 0) & (tg.probabilities <= 1))
    np.testing.assert_allclose(tg.times[:3], [0, 2.992, 5.984])
    top = tg.top(3)
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)
    assert top[0][1] == pytest.approx(float(tg.mean.max()))


def test_rows_are_the_model_applied_to_each_window(tagger, signal):
    """A row equals the Keras model on the padded window of that patch (no hidden extras)."""
    tg = zoo.tag(signal, model=tagger, source_sr=16000, tail="drop")
    padded = np.pad(signal, 256, mode="reflect")
    windows = np.stack([padded[i * 47872: i * 47872 + 48128] for i in range(len(tg.times))])
    np.testing.assert_allclose(tg.probabilities, np.asarray(tagger(windows)), atol=1e-6)


def test_batch_size_and_array_input_do_not_change_results(tagger, signal):
    a = zoo.tag(CLIP, model=tagger, batch_size=1)
    b = zoo.tag(signal, model=tagger, source_sr=16000, batch_size=64)
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-6)


def test_other_sample_rates_are_resampled(tagger, signal):
    import soxr

    x44 = soxr.resample(signal, 16000, 44100)
    tg = zoo.tag(x44, model=tagger, source_sr=44100)
    ref = zoo.tag(signal, model=tagger, source_sr=16000)
    assert tg.probabilities.shape == ref.probabilities.shape
    assert np.abs(tg.probabilities - ref.probabilities).max() < 0.05


def test_hop_controls_overlap(tagger):
    tg = zoo.tag(CLIP, model=tagger, hop_seconds=1.0, tail="drop")
    np.testing.assert_allclose(np.diff(tg.times), 62 * 256 / 16000)


def test_tail_policy(tagger, signal):
    x = signal[: 16000 * 8]  # 501 frames: 2 patches (374) + 127 frames left
    end = zoo.tag(x, model=tagger, source_sr=16000)
    drop = zoo.tag(x, model=tagger, source_sr=16000, tail="drop")
    assert len(drop.times) == 2 and len(end.times) == 3
    assert end.times[-1] == pytest.approx((501 - 187) * 256 / 16000)
    np.testing.assert_allclose(end.probabilities[:2], drop.probabilities, atol=1e-6)


def test_short_clip_is_accepted(tagger, signal):
    tg = zoo.tag(signal[:16000], model=tagger, source_sr=16000)
    assert tg.repeat_padded and tg.probabilities.shape == (1, 50)


def test_silence_gives_finite_probabilities(tagger):
    tg = zoo.tag(np.zeros(16000 * 4, np.float32), model=tagger, source_sr=16000)
    assert np.isfinite(tg.probabilities).all()


def test_loud_audio_never_gives_nan(tagger):
    t = np.arange(16000 * 4) / 16000
    square = np.sign(np.sin(2 * np.pi * 60 * t)).astype(np.float32)  # full-scale, bass-heavy
    tg = zoo.tag(square, model=tagger, source_sr=16000)
    assert np.isfinite(tg.probabilities).all()


def test_bad_input_is_an_audio_error(tmp_path, tagger):
    bad = tmp_path / "notes.mp3"
    bad.write_text("not audio")
    with pytest.raises(AudioError, match="notes.mp3"):
        zoo.tag(bad, model=tagger)
    with pytest.raises(AudioError, match="missing.wav"):
        zoo.tag(tmp_path / "missing.wav", model=tagger)
    nan = np.full(20000, np.nan, np.float32)
    with pytest.raises(AudioError):
        zoo.tag(nan, model=tagger, source_sr=16000)


def test_long_file_streams_in_bounded_batches(tmp_path, tagger, signal):
    path = tmp_path / "long.wav"
    sf.write(path, np.tile(signal, 4), 16000)  # ~36 s
    tg = zoo.tag(path, model=tagger, batch_size=4)
    assert len(tg.times) == 12


def test_taggram_plot_and_dict(tmp_path, tagger):
    tg = zoo.tag(CLIP, model=tagger)
    png = tmp_path / "t.png"
    tg.plot(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    d = tg.to_dict(top=3)
    assert len(d["top"]) == 3 and len(d["probabilities"]) == len(tg.times)


def test_extract_features_are_per_patch():
    feats = zoo.extract(CLIP, model="musicnn_msd", tail="drop")
    n = len(feats.times)
    assert feats["penultimate"].shape == (n, 200)
    assert feats["timbral"].shape == (n, 187, 408)
    assert feats["cnn3"].shape == (n, 187, 64)
    # Unlike the original extractor, later patches have their own mid-end features.
    assert not np.allclose(feats["cnn1"][0], feats["cnn1"][1])
    assert not np.allclose(feats["penultimate"][0], feats["penultimate"][1])


def test_embedding_model_cannot_tag():
    with pytest.raises(TypeError, match="include_top"):
        zoo.tag(CLIP, model=zoo.load("musicnn_mtt", include_top=False))


def test_run_model_gives_the_raw_batches_behind_tag(tagger):
    from zoo.inference.tagging import ModelRun, describe_source, run_model

    run = run_model(CLIP, tagger, batch_size=2)
    assert isinstance(run, ModelRun) and run.config is tagger.zoo_preset
    assert all(len(batch) <= 2 for batch in run.outputs)
    probabilities = np.concatenate(run.outputs)
    tg = zoo.tag(CLIP, model=tagger)
    np.testing.assert_array_equal(run.times, tg.times)
    np.testing.assert_allclose(probabilities, tg.probabilities, atol=1e-6)
    assert describe_source(CLIP) == CLIP and describe_source(b"x") == "<bytes>"
    with pytest.raises(AudioError, match="<array>"):
        run_model(np.zeros(0, np.float32), tagger, source_sr=16000)


def test_features_is_a_read_only_mapping_with_a_short_repr():
    feats = zoo.extract(CLIP, model="musicnn_msd")
    assert "penultimate" in feats and "nope" not in feats
    assert list(feats.keys()) == list(feats.names) and len(feats) == len(feats.names)
    assert dict(feats.items())["penultimate"] is feats["penultimate"]
    with pytest.raises(TypeError):
        feats.features["penultimate"] = None  # read-only
    text = repr(feats)
    assert len(text) < 1000 and "penultimate (" in text and "float32" in text


@pytest.mark.parametrize("signal, words", [
    (np.zeros(16000 * 10, np.float32), "silent"),
    (np.full(16000 * 10, 1e-3, np.float32) * np.sign(np.sin(np.arange(160000))), "very quiet"),
    (np.array([0.5], np.float32), "shorter than one"),
])
def test_doubtful_audio_is_tagged_with_a_warning(signal, words):
    with pytest.warns(zoo.errors.AudioWarning, match=words):
        taggram = zoo.tag(signal, model="musicnn_msd", source_sr=16000)
    assert any(words in w for w in taggram.warnings)
    assert any(words in w for w in taggram.to_dict()["warnings"])


def test_music_is_tagged_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert zoo.tag(CLIP, model="musicnn_msd").warnings == ()
