"""zoo.audio.degrade: levels, SNR, EQ responses, speed, the MP3 round trip, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.audio import degrade
from zoo.audio.degrade import (
    Band,
    ChainStep,
    add_noise,
    apply_chain,
    equalize,
    gain,
    mp3_roundtrip,
    random_chain,
    sample_chain,
    speed,
)

SR = 16000


def music(seconds: float = 4.0, sr: int = SR, seed: int = 0, amp: float = 0.3) -> np.ndarray:
    """Tones with a vibrato, a bass line and noise bursts: broadband, not periodic."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    x = amp * np.sin(2 * np.pi * (440 * t + 3 * np.sin(2 * np.pi * 5 * t)))
    x += 0.5 * amp * np.sin(2 * np.pi * 110 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
    x += 0.3 * amp * rng.standard_normal(len(t)) * np.exp(-20 * (t % 0.25))
    return x.astype(np.float32)


def snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    noise = noisy.astype(np.float64) - clean
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2))


def level_db(x: np.ndarray, ref: np.ndarray) -> float:
    return 20 * np.log10(np.std(x.astype(np.float64)) / np.std(ref.astype(np.float64)))


def sine(freq: float, seconds: float = 2.0, amp: float = 0.25) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# --- gain -----------------------------------------------------------------------------------

@pytest.mark.parametrize("db", [-6.0, -20.0, 0.0, 3.5])
def test_gain_is_exact(db):
    x = music(amp=0.2)
    y = gain(x, db)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, x * 10 ** (db / 20), rtol=1e-6, atol=1e-9)
    assert level_db(y, x) == pytest.approx(db, abs=1e-4)


def test_gain_boost_clips_to_full_scale():
    y = gain(np.array([0.9, -0.9, 0.1], np.float32), 6.0)
    np.testing.assert_allclose(y, [1.0, -1.0, 0.1 * 10 ** 0.3], rtol=1e-6)


def test_non_finite_input_is_refused():
    x = music()
    x[10] = np.nan
    for fn in (lambda v: gain(v, -6), lambda v: add_noise(v, 30, np.random.default_rng(0)),
               lambda v: speed(v, 1.02), lambda v: mp3_roundtrip(v, SR)):
        with pytest.raises(ValueError, match="NaN"):
            fn(x)


def test_integer_input_is_refused():
    with pytest.raises(ValueError, match="float"):
        gain(np.zeros(10, np.int16), -6)


# --- noise ----------------------------------------------------------------------------------

@pytest.mark.parametrize("color", ["white", "pink"])
@pytest.mark.parametrize("target", [10.0, 30.0, 45.0])
def test_noise_snr_within_half_a_db(color, target):
    x = music(seed=1)
    y = add_noise(x, target, np.random.default_rng(5), color=color)
    assert y.dtype == np.float32 and np.all(np.abs(y) <= 1.0)
    assert snr_db(x, y) == pytest.approx(target, abs=0.5)


def test_pink_noise_has_falling_spectrum_and_white_is_flat():
    silence_ref = np.full(SR * 4, 0.5, np.float32)  # DC "signal": all the rest is the noise

    def band_power(color):
        noise = add_noise(silence_ref, 20.0, np.random.default_rng(2), color=color) - 0.5
        spec = np.abs(np.fft.rfft(noise)) ** 2
        f = np.fft.rfftfreq(len(noise), 1 / SR)
        low = spec[(f > 100) & (f < 200)].mean()
        high = spec[(f > 4000) & (f < 8000)].mean()
        return 10 * np.log10(low / high)

    assert abs(band_power("white")) < 1.0
    # 1/f: 100-200 Hz vs 4-8 kHz is ~16 dB apart.
    assert band_power("pink") > 12.0


def test_noise_is_deterministic_given_the_seed():
    x = music()
    a = add_noise(x, 30, np.random.default_rng(11))
    b = add_noise(x, 30, np.random.default_rng(11))
    c = add_noise(x, 30, np.random.default_rng(12))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_silence_stays_silent():
    z = np.zeros(1000, np.float32)
    np.testing.assert_array_equal(add_noise(z, 30, np.random.default_rng(0)), z)


def test_noise_bad_arguments():
    with pytest.raises(ValueError, match="color"):
        add_noise(music(), 30, np.random.default_rng(0), color="brown")


# --- equaliser ------------------------------------------------------------------------------

def test_peaking_band_boosts_its_centre_only():
    bands = [("peaking", 1000.0, 6.0, 1.0)]
    on = sine(1000.0)
    off_low, off_high = sine(80.0), sine(7000.0)
    mid = slice(SR // 4, -SR // 4)
    assert level_db(equalize(on, SR, bands)[mid], on[mid]) == pytest.approx(6.0, abs=0.05)
    assert abs(level_db(equalize(off_low, SR, bands)[mid], off_low[mid])) < 0.2
    assert abs(level_db(equalize(off_high, SR, bands)[mid], off_high[mid])) < 0.2


def test_shelves_reach_their_plateau():
    low = Band("lowshelf", 300.0, -6.0)
    high = Band("highshelf", 3000.0, 4.0)
    f = np.array([20.0, 7800.0])
    np.testing.assert_allclose(20 * np.log10(low.response(f, SR)), [-6.0, 0.0], atol=0.05)
    np.testing.assert_allclose(20 * np.log10(high.response(f, SR)), [0.0, 4.0], atol=0.05)
    # Half the plateau gain (in dB) at the corner frequency.
    assert 20 * np.log10(low.response(np.array([300.0]), SR)[0]) == pytest.approx(-3.0, abs=0.1)


def test_band_response_matches_scipy_biquads():
    signal = pytest.importorskip("scipy.signal")
    freqs = np.linspace(10, 7990, 200)
    for band in [Band("peaking", 700.0, -5.0, 1.7), Band("lowshelf", 120.0, 4.0),
                 Band("highshelf", 2500.0, -3.0)]:
        a = 10 ** (band.gain_db / 40)
        w0 = 2 * np.pi * band.freq / SR
        alpha = np.sin(w0) / (2 * band.q)
        c = np.cos(w0)
        if band.kind == "peaking":
            b, den = [1 + alpha * a, -2 * c, 1 - alpha * a], [1 + alpha / a, -2 * c, 1 - alpha / a]
        elif band.kind == "lowshelf":
            s = 2 * np.sqrt(a) * alpha
            b = [a * ((a + 1) - (a - 1) * c + s), 2 * a * ((a - 1) - (a + 1) * c),
                 a * ((a + 1) - (a - 1) * c - s)]
            den = [(a + 1) + (a - 1) * c + s, -2 * ((a - 1) + (a + 1) * c),
                   (a + 1) + (a - 1) * c - s]
        else:
            s = 2 * np.sqrt(a) * alpha
            b = [a * ((a + 1) + (a - 1) * c + s), -2 * a * ((a - 1) + (a + 1) * c),
                 a * ((a + 1) + (a - 1) * c - s)]
            den = [(a + 1) - (a - 1) * c + s, 2 * ((a - 1) - (a + 1) * c),
                   (a + 1) - (a - 1) * c - s]
        _, h = signal.freqz(b, den, worN=freqs, fs=SR)
        np.testing.assert_allclose(band.response(freqs, SR), np.abs(h), rtol=1e-9)


def test_equalize_keeps_length_and_bounds_and_refuses_bad_bands():
    x = music(amp=0.9)
    y = equalize(x, SR, [("lowshelf", 200.0, 6.0), ("peaking", 2000.0, 6.0, 0.7)])
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.abs(y).max() <= 1.0 and np.all(np.isfinite(y))
    np.testing.assert_array_equal(equalize(x, SR, []), x)
    with pytest.raises(ValueError, match="frequency"):
        equalize(x, SR, [("peaking", 9000.0, 3.0)])
    with pytest.raises(ValueError, match="kind"):
        equalize(x, SR, [("notch", 1000.0, 3.0)])


# --- speed ----------------------------------------------------------------------------------

@pytest.mark.parametrize("factor", [0.96, 0.99, 1.03, 1.04])
def test_speed_changes_length_and_pitch_by_the_factor(factor):
    x = sine(500.0, seconds=3.0)
    y = speed(x, factor)
    assert len(y) == round(len(x) / factor)
    mid = y[SR // 4: -SR // 4]
    spectrum = np.abs(np.fft.rfft(mid * np.hanning(len(mid)), 16 * len(mid)))
    peak = np.fft.rfftfreq(16 * len(mid), 1 / SR)[np.argmax(spectrum)]
    assert peak == pytest.approx(500.0 * factor, abs=1.0)


def test_speed_one_is_identity_and_range_is_checked():
    x = music()
    np.testing.assert_array_equal(speed(x, 1.0), x)
    with pytest.raises(ValueError, match="factor"):
        speed(x, 3.0)


# --- MP3 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kbps", [24, 32, 48, 64])
def test_mp3_roundtrip_keeps_length_and_alignment_but_is_lossy(kbps):
    x = music(seconds=5.0, seed=3)
    y = mp3_roundtrip(x, SR, bitrate_kbps=kbps)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.abs(y).max() <= 1.0
    corr = np.corrcoef(x, y)[0, 1]
    assert corr > 0.98, corr  # aligned: a delay of even a few samples would ruin this
    assert not np.allclose(x, y, atol=1e-3)
    assert snr_db(x, y) < 40.0


def test_mp3_lower_bitrate_is_worse_and_file_bitrate_is_as_asked():
    import io

    import soundfile as sf

    x = music(seconds=6.0, seed=4)
    assert snr_db(x, mp3_roundtrip(x, SR, 24)) < snr_db(x, mp3_roundtrip(x, SR, 96))
    # The level mapping mirrors libsndfile's: check the real bitrate of the encoded file.
    low, high = degrade.mp3_bitrate_range(SR)
    for kbps in (32, 64):
        buffer = io.BytesIO()
        level = (high - kbps - 0.5) / (high - low)
        sf.write(buffer, x, SR, format="MP3", subtype="MPEG_LAYER_III",
                 compression_level=level, bitrate_mode="CONSTANT")
        assert buffer.tell() * 8 / 6.0 / 1000 == pytest.approx(kbps, rel=0.05)


def test_mp3_is_deterministic_and_other_rates_work():
    x = music(seconds=3.0)
    np.testing.assert_array_equal(mp3_roundtrip(x, SR, 32), mp3_roundtrip(x, SR, 32))
    x44 = music(seconds=2.0, sr=44100)
    y44 = mp3_roundtrip(x44, 44100, 64)
    assert y44.shape == x44.shape and np.corrcoef(x44, y44)[0, 1] > 0.97


# --- chains ---------------------------------------------------------------------------------

def test_random_chain_is_deterministic_and_varied():
    x = music(seconds=3.0)
    a = random_chain(x, SR, np.random.default_rng(7), p=1.0)
    b = random_chain(x, SR, np.random.default_rng(7), p=1.0)
    np.testing.assert_array_equal(a, b)
    outs = [random_chain(x, SR, np.random.default_rng(s)) for s in range(12)]
    for y in outs:
        assert y.dtype == np.float32 and np.all(np.isfinite(y)) and np.abs(y).max() <= 1.0
    names = [tuple(s.name for s in sample_chain(np.random.default_rng(s))) for s in range(12)]
    assert len(set(names)) > 4


def test_chain_steps_and_lengths():
    rng = np.random.default_rng(0)
    steps = sample_chain(rng, p=1.0)
    assert [s.name for s in steps] == ["speed", "equalize", "gain", "add_noise",
                                       "mp3_roundtrip"]
    factor = steps[0].params["factor"]
    assert 0.96 <= factor <= 1.04
    x = music(seconds=3.0)
    y = apply_chain(x, SR, steps, np.random.default_rng(1))
    assert len(y) == round(len(x) / factor)
    assert sample_chain(np.random.default_rng(0), p=0.0) == []
    np.testing.assert_array_equal(apply_chain(x, SR, [], rng), x)
    np.testing.assert_allclose(apply_chain(x, SR, [ChainStep("gain", {"db": -6.0})], rng),
                               gain(x, -6.0))
    with pytest.raises(ValueError, match="unknown"):
        apply_chain(x, SR, [ChainStep("reverse")], rng)
