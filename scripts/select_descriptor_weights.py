"""Choose the weights of the projection, chroma and rhythm parts of a joined similarity preset,
on the ``train`` packages only.

The protocol is `scripts/eval_similarity.py`'s (30 s catalogue entries, a disjoint 10 s query
from later in each track, clean and degraded, segment search with a 3 s query hop), on the
200 tracks of the seven ``train`` packages of ``music_tracks``: the packages whose music the
whitening map of ``musicnn_msd_whitened`` was fitted on, never the held-out ones. Every patch is
embedded once with ``--preset`` (its ``projection``, ``chroma`` and ``rhythm`` taps); each
weighting of the grid re-joins the parts as the preset's `WeightedUnitConcat` does and searches
again, which costs seconds.

The chosen weighting maximises the selection score: the mean of segment recall@1 over the four
query conditions and package precision@5 (same-track first, without giving up the neighbours of
the same soundtrack).

Usage:
    python scripts/select_descriptor_weights.py --data /work/datasets/music_tracks \\
        --cache /work/runs/descriptors --json docs/results/descriptor_weights.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from eval_similarity import SR, excerpts, read_tracks  # noqa: E402

from zoo.search import evaluation  # noqa: E402
from zoo.search.segments import SegmentTable, exact_scores  # noqa: E402

PARTS = ("projection", "chroma", "rhythm")
CENTRED = {"projection": False, "chroma": True, "rhythm": True}
CHROMA_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
RHYTHM_WEIGHTS = (0.0, 0.1, 0.2, 0.3)


def extract(data: Path, preset: str, seed: int, cache: Path) -> dict[str, np.ndarray]:
    """Per-patch parts of every train track's entry and queries, cached as one ``.npz``."""
    import zoo

    path = cache / f"{preset}_train_s{seed}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    tracks = read_tracks(data, "train")
    if not tracks:
        raise SystemExit(f"error: {data / 'tracks.csv'} has no train tracks")
    store: dict[str, list[np.ndarray]] = {}
    started = time.perf_counter()
    for i, track in enumerate(tracks):
        entry, queries, _ = excerpts(track, seed)
        for name, audio in [("entry", entry)] + [(f"q_{c}", q) for c, q in queries.items()]:
            feats = zoo.extract(audio, model=preset, source_sr=SR)
            for part in PARTS:
                store.setdefault(f"{name}/{part}", []).append(np.asarray(feats[part], np.float32))
        if (i + 1) % 25 == 0 or i + 1 == len(tracks):
            eta = (time.perf_counter() - started) / (i + 1) * (len(tracks) - i - 1)
            print(f"  {i + 1}/{len(tracks)} tracks, ETA {eta:.0f} s", flush=True)
    flat = {"package": np.array([t.package for t in tracks])}
    for key, arrays in store.items():
        flat[key] = np.concatenate(arrays)
        flat[key + "/counts"] = np.array([len(a) for a in arrays])
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **flat)
    return flat


def joined(feats: dict[str, np.ndarray], name: str, weights: dict[str, float]) -> np.ndarray:
    """The parts of ``name``'s patches joined as `WeightedUnitConcat` joins them."""
    out = []
    for part, weight in weights.items():
        if weight <= 0:
            continue
        x = feats[f"{name}/{part}"].astype(np.float64)
        if CENTRED[part]:
            x = x - x.mean(axis=1, keepdims=True)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        out.append(np.sqrt(weight) * x)
    return np.concatenate(out, axis=1).astype(np.float32)


def evaluate(feats: dict[str, np.ndarray], weights: dict[str, float]) -> dict:
    """Segment-search metrics of one weighting, every condition."""
    counts = feats["entry/projection/counts"]
    catalogue = joined(feats, "entry", weights)
    table = SegmentTable.from_counts(list(counts), np.zeros(len(catalogue), np.float32))
    truth = np.arange(len(counts))
    row: dict = {"weights": weights}
    for condition in evaluation.CONDITIONS:
        name = f"q_{condition}"
        bounds = np.cumsum(feats[f"{name}/projection/counts"])[:-1]
        queries = np.split(joined(feats, name, weights), bounds)
        scores = np.stack([exact_scores(q, catalogue, table) for q in queries])
        metrics = evaluation.same_track_metrics(scores, truth)
        row[f"recall@1_{condition}"] = metrics["recall@1"]
        if condition == "clean":
            row.update({"recall@10": metrics["recall@10"], "MR1": metrics["MR1"]})
            by_package = evaluation.style_precision(scores, truth, list(feats["package"]))
            row["package_p@5"] = by_package["style_p@5"]
    recalls = [row[f"recall@1_{c}"] for c in evaluation.CONDITIONS]
    row["selection_score"] = float(np.mean(recalls + [row["package_p@5"]]))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="music_tracks folder")
    parser.add_argument("--preset", default="musicnn_msd_whitened_chroma_rhythm",
                        help="a joined preset with projection, chroma and rhythm taps")
    parser.add_argument("--cache", type=Path, required=True, help="feature cache folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the grid and the choice here")
    args = parser.parse_args(argv)
    if not (args.data / "tracks.csv").is_file():
        parser.error(f"{args.data} has no tracks.csv: build it with "
                     "scripts/datasets/build_music_tracks.py")
    feats = extract(args.data, args.preset, args.seed, args.cache)
    grid = []
    for chroma in CHROMA_WEIGHTS:
        for rhythm in RHYTHM_WEIGHTS:
            projection = round(1.0 - chroma - rhythm, 3)
            if projection < 0.3:
                continue
            row = evaluate(feats, {"projection": projection, "chroma": chroma,
                                   "rhythm": rhythm})
            grid.append(row)
            w = row["weights"]
            print(f"projection {w['projection']:.1f} chroma {w['chroma']:.1f} rhythm "
                  f"{w['rhythm']:.1f}: R@1 " + " / ".join(
                      f"{row[f'recall@1_{c}']:.3f}" for c in evaluation.CONDITIONS)
                  + f", package P@5 {row['package_p@5']:.3f}, score {row['selection_score']:.4f}")
    best = max(grid, key=lambda r: r["selection_score"])
    print(f"chosen: {best['weights']} (selection score {best['selection_score']:.4f})")
    if args.json:
        result = {"script": "scripts/select_descriptor_weights.py", "preset": args.preset,
                  "set": "train", "tracks": int(len(feats["package"])),
                  "packages": sorted(set(feats["package"].tolist())), "seed": args.seed,
                  "query_hop": 3.0, "date": time.strftime("%Y-%m-%d"),
                  "machine": platform.machine(), "grid": grid, "chosen": best["weights"]}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
