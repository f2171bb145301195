"""Inference precision and runtime: throughput and accuracy cost, all in one run.

Four ways to run a zoo model on CPU, on the same patches of real music:

* ``tf-float32``: TensorFlow, float32 (what `zoo.tag` runs by default: exact);
* ``tf-bfloat16``: TensorFlow with the graph rewritten to bfloat16 (``zoo tag --precision
  bfloat16``, `zoo.inference.precision`);
* ``ort-float32``: the ONNX export (``zoo export --format onnx``) in ONNX Runtime;
* ``ort-int8``: that model after ONNX Runtime's static int8 quantisation (QDQ, per-channel
  weights, convolutions and matmuls of the backbone only; the front-end stays float32),
  calibrated on tracks of *other* packages than the ones measured.

Throughput: ``musicnn_msd`` over ``--minutes`` of real music (held-out packages of
``build_music_tracks.py``), cut into its 3 s patches and run in batches of 16 (the model alone,
best of ``--repeat``), and `zoo.tag` end to end (decoding included) for the TensorFlow paths.
Accuracy against tf-float32: max and mean |probability difference| and top-5 tag agreement per
patch, and the same-track recall@1 of segment search (`scripts/eval_similarity.py`'s protocol:
30 s catalogue entries, disjoint 10 s clean queries) with a search model run each way
(``--search-model``; default: that of `zoo index`).

    python scripts/bench_precision.py --data /work/datasets/music_tracks --json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import eval_similarity  # noqa: E402
import results_json  # noqa: E402

import zoo  # noqa: E402
import zoo.audio  # noqa: E402
from zoo.inference.tagging import compiled_inference, patch_windows, preset_grid  # noqa: E402
from zoo.search import evaluation, segments  # noqa: E402
from zoo.search.embedding import DEFAULT_MODEL, segments_from_patches  # noqa: E402
from zoo.serving.export import build_patch_model  # noqa: E402
from zoo.serving.onnx_export import onnx_from_keras, onnx_session  # noqa: E402

SR = 16000
BATCH = 16
PATHS = ("tf-float32", "tf-bfloat16", "ort-float32", "ort-int8")


def windows_of(audio: np.ndarray, config) -> np.ndarray:
    return patches_of(audio, config)[1]


def patches_of(audio: np.ndarray, config) -> tuple[np.ndarray, np.ndarray]:
    """``(start seconds, windows)`` of a recording, as `zoo.tag` cuts them."""
    patches = list(patch_windows(audio, config, preset_grid(config), SR))
    starts = np.array([start for start, _, _ in patches], np.float64)
    return (starts * config.preprocessing.hop_length / SR,
            np.stack([window for _, window, _ in patches]))


def batched(fn: Callable[[np.ndarray], np.ndarray], windows: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(fn(windows[i:i + BATCH]), np.float32)
                           for i in range(0, len(windows), BATCH)])


def quantize_int8(onnx_bytes: bytes, calibration: np.ndarray, work: Path) -> bytes:
    """Static QDQ int8 quantisation of the backbone's Conv and MatMul nodes."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, prepared, out = work / "f32.onnx", work / "pre.onnx", work / "int8.onnx"
    source.write_bytes(onnx_bytes)
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    # The front-end (STFT, mel, log) stays float32: quantising it costs most of the accuracy.
    front = [n.name for n in onnx.load(str(prepared)).graph.node
             if "melspectrogram" in n.name or "compression" in n.name]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"waveform": calibration[i:i + 8]}
                                 for i in range(0, len(calibration), 8)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True, op_types_to_quantize=["Conv", "MatMul"],
                    nodes_to_exclude=front)
    return out.read_bytes()


def runners(model, key: str, calibration: np.ndarray, work: Path, threads: int
            ) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Each path as ``windows -> outputs[key]`` (``probabilities`` or ``embedding``)."""
    tf32 = compiled_inference(model, "float32")
    tf16 = compiled_inference(model, "bfloat16")
    patch_model = build_patch_model(model)
    f32 = onnx_from_keras(patch_model)
    sessions = {"ort-float32": onnx_session(f32, threads),
                "ort-int8": onnx_session(quantize_int8(f32, calibration, work), threads)}

    def ort(name: str) -> Callable[[np.ndarray], np.ndarray]:
        session = sessions[name]
        return lambda w: session.run([key], {"waveform": w})[0]

    return {"tf-float32": tf32, "tf-bfloat16": tf16,
            "ort-float32": ort("ort-float32"), "ort-int8": ort("ort-int8")}


def best_time(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        time.sleep(0.2)  # let worker threads of the previous run go idle
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def tagging(tracks: list, calibration: np.ndarray, args: argparse.Namespace, work: Path
            ) -> dict:
    model = zoo.load("musicnn_msd")
    config = model.zoo_preset
    audio, windows, seconds = [], [], 0.0
    for track in tracks:
        if args.minutes * 60 - seconds < 1.0:
            break
        x = zoo.audio.load(track.path, sr=SR)[: int((args.minutes * 60 - seconds) * SR)]
        audio.append((track.path, x))
        windows.append(windows_of(x, config))
        seconds += len(x) / SR
    windows = np.concatenate(windows)
    run = runners(model, "probabilities", calibration, work, args.threads)
    outputs = {name: batched(fn, windows) for name, fn in run.items()}
    ref = outputs["tf-float32"]
    top_ref = np.argsort(-ref, axis=1)[:, :5]
    rows = {}
    for name, fn in run.items():
        model_s = best_time(lambda fn=fn: batched(fn, windows), args.repeat)
        diff = np.abs(outputs[name] - ref)
        top = np.argsort(-outputs[name], axis=1)[:, :5]
        overlap = [len(set(a) & set(b)) / 5 for a, b in zip(top, top_ref, strict=True)]
        rows[name] = {
            "model_seconds": round(model_s, 3),
            "model_realtime_factor": round(seconds / model_s, 1),
            "max_abs_diff": float(diff.max()),
            "mean_abs_diff": float(diff.mean()),
            "top5_agreement": round(float(np.mean(overlap)), 4),
            "top5_identical": round(float(np.mean([o == 1.0 for o in overlap])), 4),
        }
    for precision in ("float32", "bfloat16"):
        def tag_all(precision: str = precision) -> None:
            for _, x in audio:
                zoo.tag(x, model=model, source_sr=SR, precision=precision)

        wall = best_time(tag_all, args.repeat)
        rows[f"tf-{precision}"]["zoo_tag_realtime_factor"] = round(seconds / wall, 1)
    base = rows["tf-float32"]["model_realtime_factor"]
    for row in rows.values():
        row["speedup_vs_tf_float32"] = round(row["model_realtime_factor"] / base, 2)
    return {"model": "musicnn_msd", "audio_seconds": round(seconds, 1),
            "patches": int(len(windows)), "files": len(audio), "paths": rows}


def retrieval(tracks: list, calibration: np.ndarray, args: argparse.Namespace, work: Path
              ) -> dict:
    model = zoo.load(args.search_model, include_top=False)
    config = model.zoo_preset
    run = runners(model, "embedding", calibration, work, args.threads)
    entries, queries = [], []
    for track in tracks[: args.tracks]:
        entry, by_condition, _ = eval_similarity.excerpts(track, args.seed)
        entries.append(entry)
        queries.append(by_condition["clean"])
    truth = np.arange(len(entries))
    rows = {}
    for name, fn in run.items():
        cat = []
        for i, entry in enumerate(entries):
            starts, windows = patches_of(entry, config)
            cat.append(segments_from_patches(batched(fn, windows), starts, f"entry {i}"))
        table = segments.SegmentTable.from_counts([len(c) for c in cat],
                                                  np.concatenate([c.starts for c in cat]))
        vectors = np.concatenate([c.vectors for c in cat])
        scores = []
        for q in queries:
            w = windows_of(q, config)
            v = segments_from_patches(batched(fn, w), np.zeros(len(w)), "query").vectors
            scores.append(segments.exact_scores(v, vectors, table))
        metrics = evaluation.same_track_metrics(np.stack(scores), truth)
        rows[name] = {"recall@1": round(metrics["recall@1"], 4),
                      "recall@10": round(metrics["recall@10"], 4)}
    return {"model": args.search_model, "tracks": len(entries), "method": "segment",
            "queries": "clean 10 s", "paths": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/datasets/music_tracks"),
                        help="build_music_tracks.py output (held-out set measured, train set "
                             "for calibration)")
    parser.add_argument("--minutes", type=float, default=10.0, help="music timed")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tracks", type=int, default=291, help="catalogue of the recall test")
    parser.add_argument("--search-model", default=DEFAULT_MODEL)
    parser.add_argument("--calibration-files", type=int, default=16)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="ONNX Runtime intra-op threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", nargs="?", type=Path, const=results_json.default_path(__file__))
    args = parser.parse_args(argv)
    info = results_json.run_info(__file__, argv, ("tensorflow", "keras", "numpy",
                                                  "onnxruntime", "tf2onnx"))
    heldout = eval_similarity.read_tracks(args.data, "heldout")
    # Calibration music from other packages than the measured ones; 30 s from each file.
    train = eval_similarity.read_tracks(args.data, "train")[:: 7][: args.calibration_files]
    config = zoo.load("musicnn_msd").zoo_preset
    calibration = np.concatenate([windows_of(zoo.audio.load(t.path, sr=SR)[: 30 * SR], config)
                                  for t in train]).astype(np.float32)
    # Throughput over music from every held-out package in turn, not the first one alone.
    by_package: dict[str, list] = {}
    for track in heldout:
        by_package.setdefault(track.package, []).append(track)
    interleaved = [t for group in zip(*by_package.values(), strict=False) for t in group]
    with tempfile.TemporaryDirectory(prefix="bench-precision-") as tmp:
        tag = tagging(interleaved, calibration, args, Path(tmp))
        search = retrieval(heldout, calibration, args, Path(tmp))
    result = {**results_json.finish(info), "tagging": tag, "retrieval": search,
              "calibration": {"files": len(train), "set": "train", "seconds_each": 30}}
    if args.json:
        print(f"wrote {results_json.write(args.json, result)}")
    print(f"musicnn_msd, {tag['audio_seconds'] / 60:.1f} min of music, {tag['patches']} patches")
    print(f"{'path':12} {'RTF model':>10} {'x f32':>6} {'RTF zoo.tag':>11} {'max|d|':>8} "
          f"{'mean|d|':>8} {'top5':>6} {'R@1':>6}")
    for name in PATHS:
        row, r = tag["paths"][name], search["paths"][name]
        e2e = row.get("zoo_tag_realtime_factor")
        print(f"{name:12} {row['model_realtime_factor']:10.1f} {row['speedup_vs_tf_float32']:6.2f}"
              f" {'' if e2e is None else f'{e2e:.1f}':>11} {row['max_abs_diff']:8.4f} "
              f"{row['mean_abs_diff']:8.5f} {row['top5_agreement']:6.3f} {r['recall@1']:6.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
