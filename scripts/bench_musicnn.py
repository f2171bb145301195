"""Tagging speed of zoo's musicnn vs the original musicnn, in one run, plus peak memory.

Makes a long 16 kHz WAV by tiling the bundled example clip (timing does not depend on content),
then measures:
  * ours: `zoo.tag(file)` with the model already loaded (decode + patch + infer), median of
    --repeat runs; also the model alone on batches of 64 patches;
  * the original: `musicnn.extractor.extractor(file, model=...)`, unmodified, run by the
    oracle environment's python (see scripts/musicnn_oracle.py for how to create it);
  * peak RSS of a fresh process tagging a --rss-minutes long file.

``--json [PATH]`` writes the results, with the machine, versions and command line, under the
model's name in PATH (default docs/results/bench_musicnn.json; other models' runs are kept),
from which scripts/make_docs_tables.py writes the table of docs/benchmarks.md.

``--backend tensorflow jax torch`` measures ours on each Keras backend instead (one child
process per backend, the same file), and ``--json`` then writes docs/results/bench_backends.json.

Usage:
    python scripts/bench_musicnn.py --oracle-python /work/oracle/venv/bin/python
    python scripts/bench_musicnn.py --minutes 10 --model musicnn_msd --json
    python scripts/bench_musicnn.py --backend tensorflow jax torch --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))

import results_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ORIGINAL_NAMES = {"musicnn_msd": "MSD_musicnn", "musicnn_mtt": "MTT_musicnn",
                  "vgg_msd": "MSD_vgg", "vgg_mtt": "MTT_vgg"}

# Runs inside the oracle venv: the original extractor as its users call it (batch size 1).
ORIGINAL_SNIPPET = r"""
import json, os, sys, time
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
import numpy as np
import tensorflow as tf
restored = []
_restore = tf.compat.v1.train.Saver.restore
def _checked(self, sess, path):
    out = _restore(self, sess, path); restored.append(path); return out
tf.compat.v1.train.Saver.restore = _checked
from musicnn import extractor
path, model, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
times = []
for _ in range(repeat):
    t = time.perf_counter()
    taggram, tags = extractor.extractor(path, model=model, extract_features=False)
    times.append(time.perf_counter() - t)
assert restored, "checkpoint was not restored"
import librosa
from importlib.metadata import version
versions = {"tensorflow": tf.__version__, "numpy": np.__version__,
            "librosa": librosa.__version__, "musicnn": version("musicnn")}
print(json.dumps({"seconds": times, "mean_taggram": np.asarray(taggram).mean(0).tolist(),
                  "versions": versions}))
"""


def make_audio(minutes: float, path: Path) -> float:
    from zoo.audio import load

    clip = load(ROOT / "zoo" / "data" / "example.ogg", sr=16000)
    n = int(minutes * 60 * 16000)
    with sf.SoundFile(path, "w", samplerate=16000, channels=1, subtype="PCM_16") as f:
        written = 0
        while written < n:
            piece = clip[: n - written]
            f.write(piece)
            written += piece.size
    return n / 16000


def bench_ours(path: Path, model_name: str, repeat: int) -> dict:
    import zoo
    from zoo.inference.tagging import compiled_inference

    t = time.perf_counter()
    model = zoo.load(model_name)
    load_s = time.perf_counter() - t
    zoo.tag(path, model=model)  # warm-up: traces the compiled function once
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        taggram = zoo.tag(path, model=model)
        runs.append(time.perf_counter() - t)
    # The function zoo.tag runs, on this backend.
    model_s = batch64_seconds(compiled_inference(model), model.input_shape[-1], repeat)
    return {"load_seconds": load_s, "seconds": runs, "median": statistics.median(runs),
            "model_batch64_seconds": model_s,
            "mean_taggram": taggram.mean.tolist(), "patches": len(taggram.times)}


def bench_formulations(model_name: str, repeat: int) -> dict:
    """Model-only seconds per batch of 64 for the plain graph and the family's inference graph
    on this backend (the registry picks the faster per backend: `Architecture.
    inference_backends`)."""
    import dataclasses

    import keras

    import zoo
    from zoo.inference.compiled import inference_function
    from zoo.models import registry
    from zoo.models.pipeline import inference_model

    model = zoo.load(model_name)
    name = model.zoo_preset.architecture
    arch = registry.ARCHITECTURES[name]
    if arch.inference is None:
        return {}
    samples = model.input_shape[-1]
    out = {}
    try:
        for label, backends in (("plain", ()), ("inference_graph", (keras.backend.backend(),))):
            registry.ARCHITECTURES[name] = dataclasses.replace(arch, inference_backends=backends)
            fn = inference_function(inference_model(model), samples)
            out[label] = batch64_seconds(fn, samples, repeat)
    finally:
        registry.ARCHITECTURES[name] = arch
    return out


def batch64_seconds(fn, samples: int, repeat: int) -> float:
    """Median seconds of ``fn`` on one batch of 64 noise patches (after one warm-up call),
    outputs brought to numpy."""
    import keras

    from zoo.inference.compiled import to_numpy

    x = np.random.default_rng(0).normal(0, 0.1, (64, samples)).astype("float32")
    keras.tree.map_structure(to_numpy, fn(x))
    runs = []
    for _ in range(max(3, repeat)):
        t = time.perf_counter()
        keras.tree.map_structure(to_numpy, fn(x))
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def bench_backends(path: Path, seconds: float, args: argparse.Namespace) -> dict:
    """``ours`` on each of ``args.backend``, each in its own process (one backend per process)."""
    out = {}
    for backend in args.backend:
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
        child = subprocess.run([sys.executable, __file__, "--child-of-backends", str(path),
                                "--model", args.model, "--repeat", str(args.repeat)],
                               capture_output=True, text=True, env=env)
        if child.returncode != 0:
            raise SystemExit(f"{backend}: {child.stderr.strip()[-2000:]}")
        ours = json.loads(child.stdout.strip().splitlines()[-1])
        ours.pop("mean_taggram")
        ours["realtime_factor"] = seconds / ours["median"]
        ours["model_only_realtime_factor"] = 64 * 3.0 / ours["model_batch64_seconds"]
        out[backend] = ours
        shapes = ", ".join(f"{k} {64 * 3.0 / v:.0f}x"
                           for k, v in ours["formulations_batch64_seconds"].items())
        print(f"  {backend:10s} {ours['realtime_factor']:.0f}x real time (model only at batch 64: "
              f"{ours['model_only_realtime_factor']:.0f}x; {shapes})", flush=True)
    return out


def bench_original(path: Path, model_name: str, python: str, repeat: int) -> dict:
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([python, "-c", ORIGINAL_SNIPPET, str(path), ORIGINAL_NAMES[model_name],
                          str(repeat)], capture_output=True, text=True, env=env, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["median"] = statistics.median(result["seconds"])
    return result


def peak_rss(path: Path, model_name: str) -> float:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork+exec, so a child started by a
    # big parent (this one, after the runs above) would report the parent's size.
    code = ("import re, sys, zoo; zoo.tag(sys.argv[1], model=sys.argv[2]); "
            "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))")
    out = subprocess.run([sys.executable, "-c", code, str(path), model_name],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return int(out.stdout.strip().splitlines()[-1]) / 1024  # KiB -> MiB


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="musicnn_msd", choices=sorted(ORIGINAL_NAMES))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--oracle-python", help="python of the original-musicnn environment")
    parser.add_argument("--rss-minutes", type=float, default=60.0,
                        help="length of the file for the peak-memory run (0 = skip)")
    parser.add_argument("--json", nargs="?", type=Path, const=results_json.default_path(__file__),
                        help="write the results under the model's name in this JSON file "
                             "(default docs/results/bench_musicnn.json)")
    parser.add_argument("--backend", nargs="+", choices=("tensorflow", "jax", "torch"),
                        help="measure ours on these Keras backends (one process each)")
    parser.add_argument("--child-of-backends", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_of_backends:  # one backend's measurement, as JSON on stdout
        ours = bench_ours(args.child_of_backends, args.model, args.repeat)
        ours["formulations_batch64_seconds"] = bench_formulations(args.model, args.repeat)
        print(json.dumps(ours))
        return
    if args.backend:
        main_backends(args, argv)
        return

    info = results_json.run_info(__file__, argv)
    from zoo.inference.tagging import DEFAULT_BATCH_SIZE

    report = {"model": args.model, "minutes": args.minutes, "repeat": args.repeat,
              "zoo_batch_size": DEFAULT_BATCH_SIZE, "original_batch_size": 1,
              "model_only_batch": 64}
    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(tmp) / "bench.wav"
        seconds = make_audio(args.minutes, audio)
        report["audio_seconds"] = seconds
        ours = bench_ours(audio, args.model, args.repeat)
        report["ours"] = {k: v for k, v in ours.items() if k != "mean_taggram"}
        report["ours"]["realtime_factor"] = seconds / ours["median"]
        report["ours"]["model_only_realtime_factor"] = (
            64 * 3.0 / ours["model_batch64_seconds"])
        if args.oracle_python:
            orig = bench_original(audio, args.model, args.oracle_python, args.repeat)
            report["original"] = {"seconds": orig["seconds"], "median": orig["median"],
                                  "realtime_factor": seconds / orig["median"],
                                  "versions": orig.get("versions", {})}
            report["speedup"] = orig["median"] / ours["median"]
            # Sanity: same music, same tags (the original pads with zeros under modern librosa,
            # which changes only the first frame).
            diff = np.abs(np.asarray(orig["mean_taggram"]) - np.asarray(ours["mean_taggram"]))
            report["mean_taggram_max_abs_diff"] = float(diff.max())
        if args.rss_minutes > 0:
            long_audio = Path(tmp) / "long.wav"
            make_audio(args.rss_minutes, long_audio)
            report["peak_rss_mib"] = {f"{args.rss_minutes:g}_min_file": peak_rss(long_audio,
                                                                                 args.model)}
    if args.json:
        report = {**results_json.finish(info), **report}
        print(f"wrote {results_json.upsert(args.json, args.model, report)}")
    o = report["ours"]
    print(f"{args.model}, {seconds / 60:.1f} min of audio, {platform.machine()}, "
          f"{os.cpu_count()} CPUs")
    print(f"  ours:     {o['median']:.2f} s  ({o['realtime_factor']:.0f}x real time; model only "
          f"at batch 64: {o['model_only_realtime_factor']:.0f}x; load {o['load_seconds']:.1f} s)")
    if "original" in report:
        r = report["original"]
        print(f"  original: {r['median']:.2f} s  ({r['realtime_factor']:.0f}x real time)")
        print(f"  speed-up: {report['speedup']:.2f}x   (mean-taggram max diff "
              f"{report['mean_taggram_max_abs_diff']:.1e})")
    for k, v in report.get("peak_rss_mib", {}).items():
        print(f"  peak RSS tagging a {k.replace('_', ' ')}: {v:.0f} MiB")


def main_backends(args: argparse.Namespace, argv: list[str] | None) -> None:
    info = results_json.run_info(__file__, argv,
                                 results_json.DEFAULT_PACKAGES + ("jax", "jaxlib", "torch"))
    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(tmp) / "bench.wav"
        seconds = make_audio(args.minutes, audio)
        print(f"{args.model}, {seconds / 60:.1f} min of audio, {os.cpu_count()} CPUs")
        report = {"model": args.model, "minutes": args.minutes, "repeat": args.repeat,
                  "audio_seconds": seconds, "model_only_batch": 64,
                  "backends": bench_backends(audio, seconds, args)}
    if args.json:
        path = (args.json if args.json != results_json.default_path(__file__)
                else args.json.with_name("bench_backends.json"))
        report = {**results_json.finish(info), **report}
        print(f"wrote {results_json.upsert(path, args.model, report)}")


if __name__ == "__main__":
    main()
