"""Which feature of a model, and which linear map of it, finds the same track best on music
from packages no model was trained on.

The protocol is `scripts/eval_similarity.py`'s (same tracks, same seeded query excerpts and
degradations, same metrics), with every intermediate feature of each model kept per 3 s patch
(`zoo.extract`): musicnn's ``penultimate`` (200-d, the search embedding), ``mean_pool`` and
``max_pool`` (753-d: time-pooled front-end + mid-end maps), the same maps' standard deviation
over time (``std_pool``), the 50 tag probabilities (``tags``); the Siamese presets'
``projection``. Concatenations are of unit-scaled parts.

Each feature is searched raw (unit vectors, as `zoo index` stores them) and after a linear map
fitted **without labels**: centring, or PCA whitening to ``k`` dimensions (centre, rotate,
scale each component to unit variance, re-normalise), fitted either on the ``train`` packages'
segments (music the Siamese models were trained on) or on the catalogue's own segments (what a
deployed index can do: it has its catalogue, never the queries' answers).

Features are cached (``--cache``): a rerun with other maps costs seconds.

Usage:
    python scripts/experiment_similarity_features.py --data /work/datasets/music_tracks \\
        --cache /work/runs/simfeat --json docs/results/experiment_similarity_features.json
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

MAPS = ("timbral", "temporal", "cnn1", "cnn2", "cnn3")
MUSICNN_FEATURES = ("penultimate", "mean_pool", "max_pool", "std_pool", "tags")


def patch_features(audio: np.ndarray, model: str) -> dict[str, np.ndarray]:
    """Per-patch vectors (3 s hop, end-aligned tail) of every feature kept for ``model``."""
    import zoo

    feats = zoo.extract(audio, model=model, source_sr=SR)
    out = {k: feats[k] for k in ("penultimate", "mean_pool", "max_pool", "tags", "projection")
           if k in feats}
    if all(k in feats for k in MAPS):
        out["std_pool"] = np.concatenate([feats[k] for k in MAPS], axis=-1).std(axis=1)
    return {k: np.asarray(v, np.float32).reshape(len(v), -1) for k, v in out.items()}


def to_level(x: np.ndarray, level_db: float | None) -> np.ndarray:
    """The excerpt scaled to an RMS of ``level_db`` dBFS (None: as it is), peaks kept <= 1."""
    if level_db is None:
        return x
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    if rms < 1e-8:
        return x
    gain = min(10.0 ** (level_db / 20.0) / rms, 1.0 / max(float(np.max(np.abs(x))), 1e-8))
    return (x * gain).astype(np.float32)


def extract_set(data: Path, which: str, model: str, seed: int, cache: Path,
                with_queries: bool, level_db: float | None = None) -> dict:
    """Features of every track's entry (and queries), cached as one ``.npz``."""
    level = "" if level_db is None else f"_rms{level_db:g}"
    path = cache / f"{model}_{which}_s{seed}{level}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    tracks = read_tracks(data, which)
    parts: dict[str, list[np.ndarray]] = {}
    counts: dict[str, list[int]] = {}
    started = time.perf_counter()
    for i, track in enumerate(tracks):
        entry, queries, _ = excerpts(track, seed)
        pieces = {"entry": entry}
        if with_queries:
            pieces.update({f"query_{c}": q for c, q in queries.items()})
        for piece, audio in pieces.items():
            for name, v in patch_features(to_level(audio, level_db), model).items():
                parts.setdefault(f"{piece}/{name}", []).append(v)
            counts.setdefault(piece, []).append(len(v))
        if (i + 1) % 20 == 0 or i + 1 == len(tracks):
            took = time.perf_counter() - started
            print(f"{model} {which}: {i + 1}/{len(tracks)} tracks, {took:.0f} s, ETA "
                  f"{took / (i + 1) * (len(tracks) - i - 1):.0f} s", file=sys.stderr)
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out.update({f"{piece}/counts": np.asarray(c, np.int64) for piece, c in counts.items()})
    out["tracks"] = np.asarray([t.track for t in tracks])
    out["styles"] = np.asarray([t.style for t in tracks])
    out["packages"] = np.asarray([t.package for t in tracks])
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return out


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def feature(z: dict, piece: str, name: str) -> np.ndarray:
    """Unit vectors of a feature; ``a+b`` concatenates unit-scaled parts."""
    return unit(np.concatenate([unit(z[f"{piece}/{n}"]) for n in name.split("+")], axis=1))


class Whitening:
    """Centre (and PCA-whiten to ``k`` dims when ``k``) unit vectors, then re-normalise."""

    def __init__(self, fit: np.ndarray, k: int | None):
        fit = fit.astype(np.float64)
        self.mean = fit.mean(axis=0)
        self.proj = None
        if k:
            cov = np.cov(fit - self.mean, rowvar=False)
            values, vectors = np.linalg.eigh(cov)
            order = np.argsort(values)[::-1][:k]
            self.proj = vectors[:, order] / np.sqrt(values[order] + 1e-6 * values.max())

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = x.astype(np.float64) - self.mean
        if self.proj is not None:
            y = y @ self.proj
        return unit(y).astype(np.float32)


def evaluate(cat: dict, name: str, transform, label: str) -> list[dict]:
    """Segment and file search of every query condition with one feature and map."""
    counts = cat["entry/counts"]
    table = SegmentTable.from_counts(counts.tolist(), np.zeros(int(counts.sum()), np.float32))
    starts = np.concatenate([[0], np.cumsum(counts)])
    entry = transform(feature(cat, "entry", name))
    files = unit(np.stack([entry[a:b].mean(axis=0) for a, b in zip(starts[:-1], starts[1:],
                                                                    strict=True)]))
    truth = np.arange(len(counts))
    rows = []
    for condition in evaluation.CONDITIONS:
        qc = cat[f"query_{condition}/counts"]
        qs = np.concatenate([[0], np.cumsum(qc)])
        query = transform(feature(cat, f"query_{condition}", name))
        seg = np.stack([exact_scores(query[a:b], entry, table)
                        for a, b in zip(qs[:-1], qs[1:], strict=True)])
        qfile = unit(np.stack([query[a:b].mean(axis=0)
                               for a, b in zip(qs[:-1], qs[1:], strict=True)]))
        for method, scores in (("segment", seg), ("file", qfile @ files.T)):
            row = {"feature": name, "map": label, "method": method, "condition": condition}
            row.update(evaluation.same_track_metrics(scores, truth))
            row.update(evaluation.style_precision(scores, truth, list(cat["styles"]), ks=(5,)))
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="build_music_tracks.py output")
    parser.add_argument("--cache", type=Path, required=True, help="feature cache folder")
    parser.add_argument("--models", nargs="+",
                        default=["musicnn_msd", "siamese_musicnn_msd_sources"])
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--level-db", type=float, default=None,
                        help="scale every excerpt (entry, query) to this RMS level first")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    runs = []
    for model in args.models:
        cat = extract_set(args.data, "heldout", model, args.seed, args.cache, True,
                          args.level_db)
        train = extract_set(args.data, "train", model, args.seed, args.cache, False,
                            args.level_db)
        names = [n for n in (*MUSICNN_FEATURES, "projection") if f"entry/{n}" in cat]
        names += ["mean_pool+max_pool", "mean_pool+std_pool", "mean_pool+max_pool+std_pool",
                  "penultimate+mean_pool"] if "entry/std_pool" in cat else []
        names += ["projection+mean_pool"] if "entry/projection" in cat else []
        for name in names:
            maps = [("raw", lambda x: x)]
            for fit_label, fit in (("train", feature(train, "entry", name)),
                                   ("catalogue", feature(cat, "entry", name))):
                maps.append((f"centre[{fit_label}]", Whitening(fit, None)))
                maps += [(f"whiten{k}[{fit_label}]", Whitening(fit, k)) for k in args.dims
                         if k < fit.shape[1]]
            for label, transform in maps:
                rows = evaluate(cat, name, transform, label)
                for r in rows:
                    r["model"] = model
                runs += rows
                clean = {r["method"]: r for r in rows if r["condition"] == "clean"}
                degraded = [r["recall@1"] for r in rows
                            if r["method"] == "segment" and r["condition"] != "clean"]
                print(f"{model:28s} {name:30s} {label:20s} seg R@1 "
                      f"{clean['segment']['recall@1']:.3f} (degr. {min(degraded):.3f}) "
                      f"P@5 {clean['segment']['style_p@5']:.3f} | file R@1 "
                      f"{clean['file']['recall@1']:.3f} P@5 {clean['file']['style_p@5']:.3f}",
                      flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "script": "scripts/experiment_similarity_features.py", "set": "heldout",
            "seed": args.seed, "level_db": args.level_db, "date": time.strftime("%Y-%m-%d"),
            "machine": platform.processor() or platform.machine(), "results": runs},
            indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
