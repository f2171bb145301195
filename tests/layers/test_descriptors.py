"""Harmony / rhythm descriptor layers: pitch classes of real tones, periodicity of click
trains, exact agreement with numpy references, serialization."""

import keras
import numpy as np
import pytest
from backend_utils import to_numpy

from zoo.layers import Log10Scaled, MelChroma, MelSpectrogram, OnsetAutocorrelation
from zoo.layers.descriptors import mel_chroma_matrix

SR = 16000
MEL = dict(sr=SR, n_fft=512, hop_length=256, n_mels=96, fmax=8000.0, center=False)


def logmel(wave: np.ndarray) -> np.ndarray:
    x = MelSpectrogram(**MEL)(wave[None].astype("float32"))
    return to_numpy(Log10Scaled(scale=10000.0)(x))


def tone(hz: float, seconds: float = 3.0, harmonics: int = 4) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return sum(0.3 / k * np.sin(2 * np.pi * hz * k * t) for k in range(1, harmonics + 1))


@pytest.mark.parametrize("hz, pitch_class", [(440.0, 9), (523.25, 0), (659.26, 4),
                                             (783.99, 7), (1174.66, 2)])
def test_chroma_of_a_harmonic_tone_peaks_at_its_pitch_class(hz, pitch_class):
    chroma = to_numpy(MelChroma(n_mels=96, fmin=0.0, fmax=8000.0)(logmel(tone(hz))))[0]
    assert chroma.shape == (12,)
    assert int(np.argmax(chroma)) == pitch_class


def test_chroma_agrees_with_librosa_on_a_chord():
    librosa = pytest.importorskip("librosa")
    wave = tone(261.63) + tone(329.63) + tone(392.00)  # C major triad
    ours = to_numpy(MelChroma(n_mels=96, fmin=0.0, fmax=8000.0)(logmel(wave)))[0]
    ref = librosa.feature.chroma_stft(y=wave.astype("float32"), sr=SR, n_fft=4096,
                                      tuning=0.0).mean(axis=1)
    assert set(np.argsort(ours)[-3:]) == set(np.argsort(ref)[-3:]) == {0, 4, 7}


def test_chroma_is_the_mean_of_the_folded_frames():
    x = np.random.default_rng(0).random((2, 50, 96)).astype("float32")
    matrix = mel_chroma_matrix(96, 0.0, 8000.0)
    np.testing.assert_allclose(to_numpy(MelChroma()(x)), (x @ matrix).mean(axis=1), rtol=1e-5)
    assert not matrix[mel_frequencies_below(400.0)].any()


def mel_frequencies_below(hz: float) -> np.ndarray:
    from zoo.layers import mel_frequencies

    return mel_frequencies(98, 0.0, 8000.0)[1:-1] < hz


def test_onset_autocorrelation_matches_numpy():
    x = np.random.default_rng(1).random((3, 120, 96)).astype("float32")
    ours = to_numpy(OnsetAutocorrelation(max_lag=40)(x))
    flux = np.maximum(np.diff(x, axis=1), 0).mean(axis=2)
    flux -= flux.mean(axis=1, keepdims=True)
    for row, f in zip(ours, flux, strict=True):
        ref = np.correlate(f, f, "full")[len(f):len(f) + 40]
        np.testing.assert_allclose(row, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("bpm", [100, 120, 150])
def test_onset_autocorrelation_finds_the_beat_of_a_click_track(bpm):
    wave = np.zeros(3 * SR)
    period = 60.0 / bpm
    for start in np.arange(0.05, 3.0, period):
        i = int(start * SR)
        wave[i:i + 400] = np.random.default_rng(i).standard_normal(400) * 0.5
    ac = to_numpy(OnsetAutocorrelation(max_lag=94)(logmel(wave)))[0]
    frames = period * SR / 256
    lag = int(np.argmax(ac[5:])) + 6  # skip the smear of one click (lags 1-5)
    beats = round(lag / frames)
    assert beats >= 1 and abs(lag - beats * frames) <= 1.5  # the beat or a multiple of it
    assert ac[round(frames) - 1] > ac[round(frames / 2) - 1]  # not the half beat


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="pitch_fmin"):
        MelChroma(pitch_fmin=5000.0, pitch_fmax=4000.0)
    with pytest.raises(ValueError, match="no mel band"):
        MelChroma(n_mels=4, fmax=8000.0, pitch_fmin=1000.0, pitch_fmax=1100.0)
    with pytest.raises(ValueError, match="max_lag"):
        OnsetAutocorrelation(max_lag=0)
    with pytest.raises(ValueError, match="more than"):
        OnsetAutocorrelation(max_lag=94)(np.zeros((1, 50, 96), "float32"))
    with pytest.raises(ValueError, match="96 mel bands"):
        MelChroma(n_mels=96)(np.zeros((1, 50, 40), "float32"))


@pytest.mark.parametrize("layer", [MelChroma(n_mels=96, pitch_fmin=300.0, width=1.5),
                                   OnsetAutocorrelation(max_lag=30)])
def test_descriptor_layers_round_trip(layer, tmp_path):
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config
    inputs = keras.Input((100, 96))
    model = keras.Model(inputs, layer(inputs))
    path = tmp_path / "descriptor.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(2).random((2, 100, 96)).astype("float32")
    np.testing.assert_allclose(to_numpy(loaded(x)), to_numpy(model(x)), rtol=1e-6)
