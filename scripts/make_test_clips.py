"""Make the audio clips the tests use (and, optionally, the README's bundled example).

Synthetic clips (always written; numpy only, fixed seed, so they are reproducible bit for bit
given the same numpy random stream) go to ``--out`` as 16 kHz mono 16-bit FLAC:

* ``synth_music.flac`` (7 s): a I-V-vi-IV chord progression of additive harmonic tones with a
  bass line and kick / snare / hi-hat onsets at 120 bpm.
* ``synth_noise.flac`` (4 s, a single 3 s patch for musicnn): pink noise.
* ``synth_clicks_silence.flac`` (6.5 s): exact digital silence alternating with click trains.
* ``synth_loud.flac`` (6 s): full-scale content (a 55 Hz square wave, a hard-clipped square-wave
  chord, a clipped octave stack with saturated noise). After musicnn's preprocessing its mel
  power exceeds 6.5504 (where ``10000 * mel`` overflows float16 if numpy 2 keeps it in float16)
  in a large share of the bins and reaches ~850, about the maximum a [-1, 1] signal can reach
  with a 512-point Hann STFT and Slaney mel filters, so mel power > 65504 (overflow of the
  float16 cast itself) cannot be reached by any 16-bit clip.
* ``synth_short_2s.flac`` (2 s): shorter than one 3 s patch.

Real-music excerpts (written with ``--debian-root DIR``, a folder into which the Debian packages
listed in ``REAL_EXCERPTS`` were unpacked with ``dpkg -x PKG.deb DIR/PKG``): a slice of a track,
downmixed to mono by averaging the channels, resampled to 16 kHz with soxr (VHQ) and rounded to
16 bits. ``--example PATH`` also writes the README example (Ogg Vorbis, 44.1 kHz stereo) from
``EXAMPLE``. Provenance and licences are in ``tests/data/clips/SOURCES.md`` and
``zoo/data/README.md``.

Usage::

    python scripts/make_test_clips.py --out tests/data/clips \\
        [--debian-root /work/debs/x] [--example zoo/data/example.ogg]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000
SEED = 20190801

# (output name, Debian package, version, path inside the package, offset s, duration s)
REAL_EXCERPTS = (
    ("real_electronic_warzone2100.flac", "warzone2100-music", "4.3.3-3",
     "usr/share/games/warzone2100/music/albums/legacy_soundtrack/track13.opus", 200.0, 9.0),
    ("real_rock_hedgewars.flac", "hedgewars-data", "1.0.2-6",
     "usr/share/games/hedgewars/Data/Music/Rock.ogg", 130.0, 9.0),
    ("real_orchestral_wesnoth.flac", "wesnoth-1.16-music", "1:1.16.9-1",
     "usr/share/games/wesnoth/1.16/data/core/music/the_city_falls.ogg", 118.0, 9.0),
)
# (Debian package, version, path inside the package, offset s, duration s, output rate)
EXAMPLE = ("warzone2100-music", "4.3.3-3",
           "usr/share/games/warzone2100/music/albums/legacy_soundtrack/track16.opus",
           230.0, 25.0, 44100)


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * 32767.0), -32768, 32767).astype(
        np.int16
    )


def _write_flac(path: Path, x: np.ndarray) -> None:
    sf.write(str(path), _to_int16(x), SR, format="FLAC", subtype="PCM_16")


def _t(seconds: float) -> np.ndarray:
    return np.arange(int(round(seconds * SR))) / SR


def _tone(freq: float, seconds: float, rng: np.random.Generator, n_harm: int = 8,
          decay: float = 0.6) -> np.ndarray:
    """An additive harmonic tone with a short attack and an exponential decay."""
    t = _t(seconds)
    out = np.zeros_like(t)
    for h in range(1, n_harm + 1):
        if h * freq >= SR / 2:
            break
        out += (0.55 ** (h - 1)) * np.sin(2 * np.pi * h * freq * t + rng.uniform(0, 2 * np.pi))
    env = np.minimum(t / 0.01, 1.0) * (0.3 + 0.7 * np.exp(-t / decay))
    return out * env


def _add(dst: np.ndarray, src: np.ndarray, at: float) -> None:
    i = int(round(at * SR))
    n = min(src.size, dst.size - i)
    if n > 0:
        dst[i:i + n] += src[:n]


def synth_music(rng: np.random.Generator) -> np.ndarray:
    seconds, beat = 7.0, 0.5  # 120 bpm, one chord per two beats
    out = np.zeros(int(seconds * SR))
    midi = lambda m: 440.0 * 2 ** ((m - 69) / 12)  # noqa: E731
    progression = [(60, 64, 67), (55, 59, 62), (57, 60, 64), (53, 57, 60)]  # C G Am F
    for k in range(int(seconds / (2 * beat))):
        chord = progression[k % len(progression)]
        start = k * 2 * beat
        for note in chord:
            _add(out, 0.12 * _tone(midi(note), 2 * beat, rng), start)
        for b in range(2):  # bass: root two octaves down, plucked on each beat
            _add(out, 0.25 * _tone(midi(chord[0] - 24), beat, rng, n_harm=5, decay=0.2),
                 start + b * beat)
    for b in range(int(seconds / beat)):
        t = _t(0.25)
        kick = np.sin(2 * np.pi * np.cumsum(50 + 100 * np.exp(-t / 0.03)) / SR)
        _add(out, 0.6 * kick * np.exp(-t / 0.12), b * beat)
        if b % 2 == 1:  # snare on beats 2 and 4
            t = _t(0.2)
            snare = rng.standard_normal(t.size) + 0.5 * np.sin(2 * np.pi * 185 * t)
            _add(out, 0.25 * snare * np.exp(-t / 0.06), b * beat)
        for e in range(2):  # closed hi-hat on eighths: differentiated (high-passed) noise
            t = _t(0.06)
            hat = np.diff(rng.standard_normal(t.size + 1))
            _add(out, 0.08 * hat * np.exp(-t / 0.015), b * beat + e * beat / 2)
    return 0.5 * out / np.abs(out).max()


def synth_noise(rng: np.random.Generator) -> np.ndarray:
    n = 4 * SR
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    spec[1:] /= np.sqrt(freqs[1:] / freqs[1])  # 1/f power
    spec[0] = 0.0
    x = np.fft.irfft(spec, n)
    return 0.1 * x / np.sqrt(np.mean(x**2))


def synth_clicks_silence(rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(int(6.5 * SR))
    for k, at in enumerate(np.arange(0.75, 2.25, 0.25)):  # regular click train, alternating sign
        out[int(round(at * SR))] = 0.9 if k % 2 == 0 else -0.9
    for at in np.sort(rng.uniform(3.25, 3.9, 12)):  # irregular clicks
        out[int(round(at * SR))] = rng.uniform(-0.95, 0.95)
    out[int(3.9 * SR):int(4.5 * SR):SR // 50] = 0.5  # 50 Hz buzz of single-sample impulses
    t = _t(0.02)
    for at in np.arange(5.5, 6.45, 0.125):  # short decaying clicks
        _add(out, 0.8 * np.cos(2 * np.pi * 3000 * t) * np.exp(-t / 0.002), float(at))
    return out


def synth_loud(rng: np.random.Generator) -> np.ndarray:
    t = _t(2.0)
    square = lambda f: np.sign(np.sin(2 * np.pi * f * t + 0.1))  # noqa: E731
    low = square(55.0)
    chord = np.clip(sum(square(f) for f in (55.0, 82.41, 110.0, 138.59, 164.81)), -1, 1)
    stack = sum(square(f) for f in (55.0, 110.0, 220.0, 440.0, 880.0, 1760.0, 3520.0))
    stack = np.clip(stack + 2.0 * np.sign(rng.standard_normal(t.size)), -1, 1)
    return np.concatenate([low, chord, stack])


def synth_short(rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(2 * SR)
    for at, f in ((0.0, 440.0), (0.5, 523.25), (1.0, 659.26), (1.5, 880.0)):
        _add(out, 0.3 * _tone(f, 0.5, rng), at)
    return out


SYNTHETIC = (
    ("synth_music.flac", synth_music),
    ("synth_noise.flac", synth_noise),
    ("synth_clicks_silence.flac", synth_clicks_silence),
    ("synth_loud.flac", synth_loud),
    ("synth_short_2s.flac", synth_short),
)


def _excerpt(path: Path, offset: float, seconds: float, out_sr: int, mono: bool) -> np.ndarray:
    import soxr

    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    margin = 1.0  # resample a little more than needed so the filter's edges fall outside
    a = int(round((offset - margin) * sr))
    b = int(round((offset + seconds + margin) * sr))
    if a < 0 or b > audio.shape[0]:
        raise ValueError(f"{path}: excerpt {offset}+{seconds}s outside the track")
    x = audio[a:b].astype(np.float64)
    if mono:
        x = x.mean(axis=1)
    y = soxr.resample(x, sr, out_sr, quality="VHQ")
    start = int(round(margin * out_sr))
    return y[start:start + int(round(seconds * out_sr))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("tests/data/clips"))
    parser.add_argument("--debian-root", type=Path, default=None,
                        help="folder with the unpacked Debian packages (DIR/PKG/usr/...)")
    parser.add_argument("--example", type=Path, default=None,
                        help="also write the README example there (needs --debian-root)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(SEED)
    for name, make in SYNTHETIC:
        x = make(rng)
        if np.abs(x).max() > 1.0:
            raise ValueError(f"{name} clips")
        _write_flac(args.out / name, x)
        print(f"{args.out / name}: {x.size / SR:.2f} s")

    if args.debian_root is not None:
        for name, pkg, _version, rel, offset, seconds in REAL_EXCERPTS:
            x = _excerpt(args.debian_root / pkg / rel, offset, seconds, SR, mono=True)
            _write_flac(args.out / name, x)
            print(f"{args.out / name}: {x.size / SR:.2f} s from {pkg}:{rel} at {offset} s")
        if args.example is not None:
            pkg, _version, rel, offset, seconds, out_sr = EXAMPLE
            x = _excerpt(args.debian_root / pkg / rel, offset, seconds, out_sr, mono=False)
            fade = np.minimum(1.0, np.minimum(np.arange(x.shape[0]),
                                              np.arange(x.shape[0])[::-1]) / (0.05 * out_sr))
            x = np.clip(x * fade[:, None], -1.0, 1.0)
            args.example.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(args.example), x, out_sr, format="OGG", subtype="VORBIS",
                     compression_level=0.6)
            print(f"{args.example}: {x.shape[0] / out_sr:.2f} s from {pkg}:{rel} at {offset} s")
    elif args.example is not None:
        parser.error("--example needs --debian-root")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
