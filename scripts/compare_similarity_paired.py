"""Is one search model really better than another? Paired same-track comparison, query by query.

The protocol is `scripts/eval_similarity.py`'s (the chosen set of ``tracks.csv``, 30 s catalogue
entries, a disjoint 10 s query from later in each track, clean and degraded, segment search
with a 3 s query hop). Both models answer the same queries, so the comparison is paired: for
each condition, how many queries only ``--a`` finds first (rank 1), how many only ``--b``, the
exact two-sided McNemar (sign) test on those discordant queries, and a bootstrap 95% interval
of the recall@1 difference (queries resampled, 10,000 draws, seeded); the same for the mean
reciprocal rank. For the queries a model does not find first, how often the file it ranks
first comes from the query's own package (the same soundtrack: a near miss) or from another.

Usage:
    python scripts/compare_similarity_paired.py --data /work/datasets/music_tracks \\
        --set heldout --a musicnn_msd_whitened_chroma_rhythm --b musicnn_msd_whitened \\
        --json docs/results/similarity_paired.json
"""

from __future__ import annotations

import argparse
import json
import math
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

DRAWS = 10_000


def ranks(model: str, audio: list[tuple], hop: float
          ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per condition: the rank of each query's own track (1 = first) and the file ranked first,
    with segment search."""
    from zoo.search import TrackEmbedder

    embedder = TrackEmbedder(model)
    cat = [embedder.embed_segments(entry, source_sr=SR) for entry, _, _ in audio]
    table = SegmentTable.from_counts([len(c) for c in cat], np.concatenate([c.starts
                                                                            for c in cat]))
    segments = np.concatenate([c.vectors for c in cat])
    truth = np.arange(len(audio))
    out = {}
    for condition in evaluation.CONDITIONS:
        scores = np.stack([exact_scores(embedder.embed_segments(q[condition], source_sr=SR,
                                                                hop_seconds=hop).vectors,
                                        segments, table) for _, q, _ in audio])
        out[condition] = (evaluation.ranks_of(scores, truth), np.argmax(scores, axis=1))
    return out


def sign_test(only_a: int, only_b: int) -> float:
    """Exact two-sided p-value of the McNemar (binomial sign) test on the discordant pairs."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
    return min(1.0, 2.0 * tail)


def same_package_misses(rank: np.ndarray, top: np.ndarray, packages: np.ndarray) -> float:
    """Of the queries not found first, the fraction whose first file shares their package."""
    missed = rank > 1
    if not missed.any():
        return 0.0
    return float(np.mean(packages[top[missed]] == packages[np.flatnonzero(missed)]))


def compare(rank_a: np.ndarray, rank_b: np.ndarray, seed: int) -> dict:
    """Paired statistics of two models' ranks on the same queries."""
    first_a, first_b = rank_a == 1, rank_b == 1
    rr_a, rr_b = 1.0 / rank_a, 1.0 / rank_b
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(rank_a), size=(DRAWS, len(rank_a)))
    d_r1 = (first_a[draws].mean(1) - first_b[draws].mean(1))
    d_rr = (rr_a[draws].mean(1) - rr_b[draws].mean(1))
    only_a, only_b = int(np.sum(first_a & ~first_b)), int(np.sum(first_b & ~first_a))
    return {"queries": int(len(rank_a)), "recall@1_a": float(first_a.mean()),
            "recall@1_b": float(first_b.mean()),
            "recall@1_difference": float(first_a.mean() - first_b.mean()),
            "recall@1_difference_ci95": [float(np.percentile(d_r1, 2.5)),
                                         float(np.percentile(d_r1, 97.5))],
            "only_a_first": only_a, "only_b_first": only_b,
            "sign_test_p": sign_test(only_a, only_b),
            "mAP_difference": float(rr_a.mean() - rr_b.mean()),
            "mAP_difference_ci95": [float(np.percentile(d_rr, 2.5)),
                                    float(np.percentile(d_rr, 97.5))]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="music_tracks folder")
    parser.add_argument("--set", default="heldout", choices=("heldout", "train", "all"))
    parser.add_argument("--a", required=True, help="the model under test")
    parser.add_argument("--b", required=True, help="the model it is compared with")
    parser.add_argument("--query-hop", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0, help="excerpt positions and bootstrap")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not (args.data / "tracks.csv").is_file():
        parser.error(f"{args.data} has no tracks.csv: build it with "
                     "scripts/datasets/build_music_tracks.py")
    tracks = read_tracks(args.data, args.set)
    if len(tracks) < 2:
        parser.error(f"set {args.set!r} of {args.data / 'tracks.csv'} has fewer than 2 tracks")
    audio = [excerpts(t, args.seed) for t in tracks]
    print(f"{len(tracks)} tracks from {len({t.package for t in tracks})} packages", flush=True)
    packages = np.array([t.package for t in tracks])
    runs = {"a": ranks(args.a, audio, args.query_hop), "b": ranks(args.b, audio, args.query_hop)}
    rows = []
    for condition in evaluation.CONDITIONS:
        (rank_a, _), (rank_b, _) = runs["a"][condition], runs["b"][condition]
        row = {"condition": condition, **compare(rank_a, rank_b, args.seed)}
        for side, run in runs.items():
            row[f"misses_same_package_{side}"] = same_package_misses(*run[condition], packages)
        rows.append(row)
        lo, hi = row["recall@1_difference_ci95"]
        print(f"{condition:10s} R@1 {row['recall@1_a']:.3f} vs {row['recall@1_b']:.3f}: "
              f"{row['recall@1_difference']:+.3f} [{lo:+.3f}, {hi:+.3f}]; only a first "
              f"{row['only_a_first']}, only b first {row['only_b_first']}, sign test p "
              f"{row['sign_test_p']:.2g}; misses within the package "
              f"{row['misses_same_package_a']:.2f} / {row['misses_same_package_b']:.2f}",
              flush=True)
    if args.json:
        result = {"script": "scripts/compare_similarity_paired.py", "set": args.set,
                  "tracks": len(tracks), "packages": sorted({t.package for t in tracks}),
                  "a": args.a, "b": args.b, "method": "segment", "query_hop": args.query_hop,
                  "seed": args.seed, "bootstrap_draws": DRAWS,
                  "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
                  "results": rows}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
