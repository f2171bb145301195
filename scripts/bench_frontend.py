"""Benchmark: in-graph MelSpectrogram vs librosa.feature.melspectrogram.

Times the mel spectrogram of a long 16 kHz clip with musicnn's settings (n_fft 512, hop 256,
96 bands up to 8 kHz, center=False). Ours runs compiled (a warmed-up ``tf.function``, and a Keras
model's ``predict_on_batch``); librosa runs as usual. Runs go in short alternating blocks so
that background load hits all alike; the medians of wall-clock and of process CPU time are
reported.

``--json [PATH]`` writes the results, with the machine, versions and command line, to PATH
(default docs/results/bench_frontend.json), from which scripts/make_docs_tables.py writes the
table of docs/benchmarks.md.

Usage:
    python scripts/bench_frontend.py [--seconds 180] [--repeats 20] [--json [PATH]]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import keras
import librosa
import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parent))

import results_json  # noqa: E402

from zoo.layers import MelSpectrogram  # noqa: E402

SR = 16000
SETTINGS = dict(sr=SR, n_fft=512, hop_length=256, n_mels=96, fmax=8000.0, center=False)


def test_clip(seconds: float) -> np.ndarray:
    """A deterministic noisy chord, float32 (content does not affect the timing)."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(0)
    y = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 3
    return (0.3 * y + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def timed(fn) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="clip length")
    parser.add_argument("--repeats", type=int, default=20, help="timed runs of each")
    parser.add_argument("--json", nargs="?", type=Path, const=results_json.default_path(__file__),
                        help="write the results to this JSON file "
                             "(default docs/results/bench_frontend.json)")
    args = parser.parse_args(argv)
    info = results_json.run_info(__file__, argv, ("tensorflow", "keras", "numpy", "librosa"))

    y = test_clip(args.seconds)
    batch = y[None]
    layer = MelSpectrogram(**SETTINGS)
    graph = tf.function(layer, input_signature=[tf.TensorSpec([None, None], tf.float32)])
    inputs = keras.Input(shape=(None,))
    model = keras.Model(inputs, layer(inputs))
    candidates = {
        "librosa": lambda: librosa.feature.melspectrogram(y=y, **SETTINGS),
        "zoo tf.function": lambda: graph(batch).numpy(),
        "zoo keras predict_on_batch": lambda: model.predict_on_batch(batch),
    }

    ref = candidates["librosa"]().T
    for name in ("zoo tf.function", "zoo keras predict_on_batch"):
        out = candidates[name]()[0]  # also the warm-up (tracing) call
        error = float(np.max(np.abs(out - ref)) / np.max(ref))
        assert out.shape == ref.shape and error < 1e-5, (name, out.shape, error)
    for fn in candidates.values():
        fn()

    # Short blocks of each candidate in turn, with a pause between blocks: worker threads that
    # spin after a call (TF's Eigen pool, OpenBLAS under numpy) must not eat into the next
    # candidate's time, while alternating blocks still spreads background load over all.
    times = {name: [] for name in candidates}
    block = max(1, args.repeats // 4)
    while len(times["librosa"]) < args.repeats:
        for name, fn in candidates.items():
            time.sleep(0.2)
            fn()  # re-warm caches after the pause
            times[name].extend(timed(fn) for _ in range(block))
    medians = {name: statistics.median(t[0] for t in ts) for name, ts in times.items()}
    # CPU time (all threads) is the work done; it is less sensitive to other load on the box.
    cpu = {name: statistics.median(t[1] for t in ts) for name, ts in times.items()}
    result = {
        **results_json.finish(info),
        "settings": dict(SETTINGS),
        "clip_seconds": args.seconds,
        "frames": int(ref.shape[0]),
        "repeats": args.repeats,
        "median_ms": {k: round(v * 1e3, 2) for k, v in medians.items()},
        "speedup_vs_librosa": {
            k: round(medians["librosa"] / v, 2) for k, v in medians.items() if k != "librosa"
        },
        "median_cpu_ms": {k: round(v * 1e3, 2) for k, v in cpu.items()},
        "max_rel_error_vs_librosa": error,
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    if args.json:
        print(f"wrote {results_json.write(args.json, result)}")
    print(
        f"mel spectrogram of {args.seconds:g} s at {SR} Hz ({result['frames']} frames), "
        f"median of {args.repeats} runs, load avg {result['load_avg_1min']}"
    )
    print(f"  {'':28s} {'wall':>8s}    {'CPU':>8s}")
    for name, ms in result["median_ms"].items():
        speedup = result["speedup_vs_librosa"].get(name)
        extra = f"  ({speedup:.2f}x librosa)" if speedup else ""
        cpu_ms = result["median_cpu_ms"][name]
        print(f"  {name:28s} {ms:8.2f} ms {cpu_ms:8.2f} ms{extra}")


if __name__ == "__main__":
    main()
