"""Serving speed: the exported SavedModel (as TF Serving would run it) vs in-process Keras.

Exports the preset with `zoo.export` (or uses --export-dir), loads it with
``tf.saved_model.load`` and measures, with the real 3 s excerpt of a bundled test clip:

  * latency of one 3 s clip (48,000 samples = one patch), p50 / p95 over --runs calls:
    ``serving_default`` (float waveform), ``tag_wav`` (WAV bytes, decoded in-graph), the
    in-process Keras model on the same patch (compiled ``tf.function``, as `zoo.tag` runs it:
    musicnn's inference graph, `zoo.models.musicnn.inference`), the model's original Keras graph
    (the training graph; what `zoo.tag` ran before the inference graph), and `zoo.tag` on the
    array (decode-free whole-file path: patching, batching, thread hand-off);
  * throughput of a batch of 64 clips of 3 s: ``serving_default`` on ``[64, 48000]`` vs the
    Keras model on the 64 patches (median of --batch-runs calls);
  * optionally (--xla) the Keras patch model compiled with XLA, as a what-if: the export does not
    use XLA because stock TF Serving builds may not run ``jit_compile`` functions.

The whole set is measured --repeats times, because a shared CPU makes single runs noisy.

``--json [PATH]`` writes the results, with the machine, versions and command line, to PATH
(default docs/results/bench_serving.json), from which scripts/make_docs_tables.py writes the
tables of docs/benchmarks.md.

Usage:
    python scripts/bench_serving.py                       # musicnn_msd, 3 repeats
    python scripts/bench_serving.py --repeats 3 --xla --json
    python scripts/bench_serving.py --intra-op-threads 2 --inter-op-threads 1
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))

import results_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "tests" / "data" / "clips" / "real_rock_hedgewars.flac"
CLIP_SECONDS = 3.0


def latency_ms(fn: Callable[[], object], runs: int, warmup: int) -> dict[str, float]:
    """p50 / p95 / mean wall time of ``fn()`` in ms, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return {"p50": float(np.percentile(times, 50)), "p95": float(np.percentile(times, 95)),
            "mean": statistics.fmean(times)}


def materialise(out: object) -> object:
    """Force results to host memory (as a server must, to answer)."""
    import tensorflow as tf

    return [t.numpy() for t in tf.nest.flatten(out)]


def measure(args: argparse.Namespace, export_dir: Path) -> dict[str, dict[str, float]]:
    import tensorflow as tf

    import zoo
    from zoo.inference.tagging import compiled_inference
    from zoo.serving.export import build_patch_model

    signal, sr = sf.read(CLIP, dtype="float32")
    clip = signal[: int(CLIP_SECONDS * sr)]
    buf = io.BytesIO()
    sf.write(buf, clip, sr, format="WAV", subtype="PCM_16")
    wav = tf.constant([buf.getvalue()])
    padded = np.pad(clip, 256, mode="reflect")
    window = padded[None, :48128]

    loaded = tf.saved_model.load(str(export_dir))
    serve, tag_wav = loaded.signatures["serving_default"], loaded.signatures["tag_wav"]
    model = zoo.load(args.preset)
    keras_fn = compiled_inference(model)
    one = tf.constant(clip[None])
    batch = tf.constant(np.tile(clip, (args.batch, 1)))
    windows = np.tile(window, (args.batch, 1))

    results: dict[str, dict[str, float]] = {}
    r, w = args.runs, args.warmup
    results["savedmodel serving_default, 1 clip"] = latency_ms(
        lambda: materialise(serve(waveform=one)), r, w)
    results["savedmodel tag_wav, 1 clip"] = latency_ms(lambda: materialise(tag_wav(wav=wav)), r, w)
    results["keras patch model, 1 clip"] = latency_ms(lambda: materialise(keras_fn(window)), r, w)
    original = tf.function(lambda x: model(x, training=False))
    results["keras original graph, 1 clip"] = latency_ms(
        lambda: materialise(original(window)), r, w)
    results["zoo.tag (array), 1 clip"] = latency_ms(
        lambda: zoo.tag(clip, model=model, source_sr=sr), r, w)
    if args.xla:
        patch_model = build_patch_model(model)
        xla = tf.function(lambda x: patch_model(x, training=False), jit_compile=True)
        results["keras patch model + XLA, 1 clip"] = latency_ms(
            lambda: materialise(xla(window)), r, w)

    for name, fn in [("savedmodel serving_default", lambda: materialise(serve(waveform=batch))),
                     ("keras patch model", lambda: materialise(keras_fn(windows)))]:
        stats = latency_ms(fn, args.batch_runs, 1)
        results[f"{name}, batch {args.batch}"] = {
            **stats, "clips_per_s": args.batch / (stats["p50"] / 1e3),
            "ms_per_clip": stats["p50"] / args.batch}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="musicnn_msd")
    parser.add_argument("--export-dir", type=Path,
                        help="an existing export version folder (default: export to a temp dir)")
    parser.add_argument("--runs", type=int, default=50, help="timed calls per latency")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batch-runs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="measure the whole set N times")
    parser.add_argument("--intra-op-threads", type=int, default=0, help="0 = TF's default")
    parser.add_argument("--inter-op-threads", type=int, default=0, help="0 = TF's default")
    parser.add_argument("--xla", action="store_true", help="also time the patch model with XLA")
    parser.add_argument("--json", nargs="?", type=Path, const=results_json.default_path(__file__),
                        help="write the results to this JSON file "
                             "(default docs/results/bench_serving.json)")
    args = parser.parse_args(argv)
    info = results_json.run_info(__file__, argv)

    import tensorflow as tf

    # Must happen before TensorFlow runs its first op.
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    from zoo.serving.export import export

    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as tmp:
        export_dir = args.export_dir or export(args.preset, tmp)
        runs = []
        for i in range(args.repeats):
            load = os.getloadavg()[0]
            results = measure(args, Path(export_dir))
            runs.append({"load_average_1min_before": load, "results": results})
            print(f"\nrun {i + 1}/{args.repeats} (1-min load average before: {load:.2f})")
            for name, stats in results.items():
                extra = (f"  {stats['clips_per_s']:.1f} clips/s ({stats['ms_per_clip']:.1f} "
                         "ms/clip)" if "clips_per_s" in stats else "")
                print(f"  {name:42s} p50 {stats['p50']:8.1f} ms  p95 {stats['p95']:8.1f} ms"
                      f"{extra}")
    summary = {
        **results_json.finish(info),
        "preset": args.preset, "clip": str(CLIP.relative_to(ROOT)), "clip_seconds": CLIP_SECONDS,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "runs": runs,
    }
    print(f"\n{summary['machine']}")
    if args.json:
        print(f"wrote {results_json.write(args.json, summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
