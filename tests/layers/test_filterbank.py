"""zoo.layers.filterbank against librosa's mel scale and filterbank."""

import librosa
import numpy as np
import pytest

from zoo.layers import hz_to_mel, mel_filterbank, mel_frequencies, mel_to_hz

FREQS = np.array([0.0, 20.0, 440.0, 999.9, 1000.0, 1000.1, 4000.0, 8000.0, 22050.0])


@pytest.mark.parametrize("htk", [False, True])
def test_mel_scale_matches_librosa_and_inverts(htk):
    np.testing.assert_allclose(
        hz_to_mel(FREQS, htk=htk), librosa.hz_to_mel(FREQS, htk=htk), rtol=1e-13
    )
    mels = np.linspace(0.0, 50.0 if not htk else 4000.0, 37)
    np.testing.assert_allclose(
        mel_to_hz(mels, htk=htk), librosa.mel_to_hz(mels, htk=htk), rtol=1e-13
    )
    np.testing.assert_allclose(
        mel_to_hz(hz_to_mel(FREQS, htk=htk), htk=htk), FREQS, rtol=1e-12, atol=1e-9
    )


def test_slaney_scale_breakpoint_and_scalar_input():
    assert hz_to_mel(1000.0) == pytest.approx(15.0)
    assert hz_to_mel(6400.0) == pytest.approx(42.0)  # 6.4x above 1 kHz is 27 mels higher
    assert np.ndim(hz_to_mel(440.0)) == 0


@pytest.mark.parametrize("htk", [False, True])
def test_mel_frequencies_match_librosa(htk):
    ours = mel_frequencies(42, fmin=30.0, fmax=11025.0, htk=htk)
    np.testing.assert_allclose(
        ours, librosa.mel_frequencies(42, fmin=30.0, fmax=11025.0, htk=htk), rtol=1e-13
    )


SETTINGS = [
    dict(sr=22050, n_fft=2048, n_mels=128),
    dict(sr=16000, n_fft=512, n_mels=96, fmax=8000.0),  # musicnn
    dict(sr=16000, n_fft=400, n_mels=80),
    dict(sr=44100, n_fft=1024, n_mels=40, fmin=50.0, fmax=14000.0),
    dict(sr=8000, n_fft=256, n_mels=20, fmin=100.0),
]


@pytest.mark.parametrize("norm", ["slaney", None, 1.0, 2.0, np.inf])
@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: f"{s['sr']}-{s['n_fft']}")
def test_filterbank_matches_librosa(setting, htk, norm):
    ref64 = librosa.filters.mel(**setting, htk=htk, norm=norm, dtype=np.float64)
    ours64 = mel_filterbank(**setting, htk=htk, norm=norm, dtype=np.float64)
    assert ours64.shape == ref64.shape == (setting["n_mels"], setting["n_fft"] // 2 + 1)
    np.testing.assert_allclose(ours64, ref64, rtol=1e-12, atol=1e-15 * ref64.max())
    # librosa's float32 bank rounds twice (triangle, then scaled); ours rounds once.
    ref32 = librosa.filters.mel(**setting, htk=htk, norm=norm)
    ours32 = mel_filterbank(**setting, htk=htk, norm=norm)
    assert ours32.dtype == np.float32
    np.testing.assert_allclose(ours32, ref32, rtol=2.5e-7, atol=1e-7 * ref32.max())


def test_slaney_norm_gives_equal_area_in_hz():
    fb = mel_filterbank(sr=16000, n_fft=4096, n_mels=40, norm="slaney", dtype=np.float64)
    area = fb.sum(axis=1) * (16000 / 4096)  # Riemann sum over the FFT bin spacing
    np.testing.assert_allclose(area, 1.0, rtol=0.02)


@pytest.mark.parametrize(
    "kwargs",
    [dict(fmin=9000.0), dict(fmin=-1.0), dict(n_mels=0), dict(norm="bogus")],
)
def test_filterbank_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        mel_filterbank(**{"sr": 16000, "n_fft": 512, **kwargs})
