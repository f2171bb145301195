"""Catalogue search on music from sources no model was trained on: same track and style.

The catalogue is every track of the chosen set of ``tracks.csv`` (built by
``scripts/datasets/build_music_tracks.py``; set ``heldout``: Debian packages that no zoo model
was trained or tuned on), entered as its first 30 s. Each track is queried with a disjoint 10 s
excerpt from later in it (`zoo.search.evaluation`), clean and degraded (-6 dB gain, white noise
at 30 dB SNR, MP3 at 32 kbit/s). For every model, both retrieval methods of ``zoo similar``:

* ``file``: one vector per file (the normalised mean of its patch embeddings), cosine;
* ``segment``: a vector per 3 s segment; a file's score is the mean over the query's segments of
  the best cosine with the file's segments (`zoo.search.segments`), query segments every
  ``--query-hops`` seconds.

The catalogue is written with `zoo.search.write_index` and the top 10 of every segment query
is taken from the index (`CatalogueIndex.rank_segments`); the metrics rank every file by its
exact score (the full ranking gives MR1), and the script checks that both agree.

Reported per model, method, query hop and condition: same-track recall@1 / recall@10 / mAP /
MR1, and style precision@5 / @10 among other tracks (style = the package's label in
tracks.csv; several packages may share one), with their ceilings (a perfect ranking's value,
< 1 where a style has fewer than k other tracks); and the same precision with the package
(soundtrack) itself as the label (``package_p@k``), which needs no judgement of style.

Usage:
    python scripts/eval_similarity.py --data /work/datasets/music_tracks --set heldout \\
        --models musicnn_msd musicnn_mtt siamese_musicnn_msd \\
        --json docs/results/similarity_heldout.json
    # one more model, keeping the other models' runs:
    python scripts/eval_similarity.py --data /work/datasets/music_tracks --set heldout \\
        --models musicnn_msd_whitened --json docs/results/similarity_heldout.json --merge
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zoo.search import evaluation, segments  # noqa: E402

SR = 16000


@dataclass(frozen=True)
class Track:
    path: Path
    track: str
    package: str
    style: str
    duration: float


def read_tracks(data: Path, which: str, max_tracks: int | None = None) -> list[Track]:
    """Rows of ``tracks.csv`` in set ``which`` (``all``: every row) long enough for a query."""
    with open(data / "tracks.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if which == "all" or r["set"] == which]
    need = evaluation.ENTRY_SECONDS + evaluation.QUERY_GAP_SECONDS + evaluation.QUERY_SECONDS
    tracks = [Track(data / r["path"], r["track"], r["package"], r["style"],
                    float(r["duration_s"])) for r in rows if float(r["duration_s"]) >= need]
    tracks.sort(key=lambda t: t.track)
    return tracks[:max_tracks] if max_tracks else tracks


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


def excerpts(track: Track, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
    """The 30 s catalogue entry, the query under every condition, and the query's start."""
    import zoo.audio

    x = zoo.audio.load(track.path, sr=SR)
    rng = np.random.default_rng(_seed(seed, track.track))
    start = evaluation.query_start(len(x) / SR, rng)
    entry = x[: int(evaluation.ENTRY_SECONDS * SR)]
    q0 = int(round(start * SR))
    query = x[q0:q0 + int(evaluation.QUERY_SECONDS * SR)]
    queries = {c: evaluation.degrade_query(query, SR, c, np.random.default_rng(_seed(seed, c,
                                                                                   track.track)))
               for c in evaluation.CONDITIONS}
    return entry, queries, start


def evaluate_model(model: str, tracks: list[Track], audio: list[tuple], hops: list[float],
                   work: Path) -> dict:
    """Every metric of one model (both methods, every hop and condition)."""
    from zoo.search import SegmentTable, TrackEmbedder, write_index
    from zoo.search.store import FileEntry

    embedder = TrackEmbedder(model)
    started = time.perf_counter()
    cat = [embedder.embed_segments(entry, source_sr=SR) for entry, _, _ in audio]
    catalogue_s = time.perf_counter() - started
    table = SegmentTable.from_counts([len(c) for c in cat], np.concatenate([c.starts
                                                                            for c in cat]))
    files = [FileEntry(t.track, 0, 0) for t in tracks]
    index = write_index(work / "index", np.stack([c.mean for c in cat]), files, embedder.info,
                        work, segment_vectors=np.concatenate([c.vectors for c in cat]),
                        table=table)
    truth = np.arange(len(tracks))
    styles = [t.style for t in tracks]
    packages = [t.package for t in tracks]
    results, disagreements, query_s = [], 0, 0.0
    for hop in hops:
        for condition in evaluation.CONDITIONS:
            seg_scores, file_scores = [], []
            for _, queries, _ in audio:
                t0 = time.perf_counter()
                q = embedder.embed_segments(queries[condition], source_sr=SR, hop_seconds=hop)
                query_s += time.perf_counter() - t0
                exact = segments.exact_scores(q.vectors, index.segments, index.table)
                top = [s.file for s in index.rank_segments(q.vectors, top=10)]
                disagreements += top != list(np.argsort(-exact, kind="stable")[:10])
                seg_scores.append(exact)
                file_scores.append(np.asarray(index.vectors) @ q.mean)
            for method, scores in (("segment", seg_scores), ("file", file_scores)):
                scores = np.stack(scores)
                row = {"model": model, "method": method, "query_hop": hop,
                       "condition": condition}
                row.update(evaluation.same_track_metrics(scores, truth))
                row.update(evaluation.style_precision(scores, truth, styles))
                by_package = evaluation.style_precision(scores, truth, packages)
                row.update({k.replace("style_", "package_"): v for k, v in by_package.items()})
                results.append(row)
    return {"model": model, "weights_sha256": embedder.info.weights_sha256,
            "embedding": embedder.info.embedding, "dim": index.dim,
            "segments": int(table.n_segments), "catalogue_embed_s": round(catalogue_s, 1),
            "query_embed_s": round(query_s, 1), "top10_index_vs_exact_disagreements":
            int(disagreements), "results": results}


def table_markdown(runs: list[dict], hop: float) -> str:
    """One line per model and method: clean R@1 / R@10 / mAP / MR1, degraded R@1, style P@5."""
    lines = ["| model | method | R@1 | R@10 | mAP | MR1 | R@1 gain-6dB / noise30dB / mp3-32k | "
             "style P@5 | style P@10 | package P@5 |", "|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        for method in ("file", "segment"):
            rows = {r["condition"]: r for r in run["results"]
                    if r["method"] == method and r["query_hop"] == hop}
            c = rows["clean"]
            degraded = " / ".join(f"{rows[k]['recall@1']:.3f}" for k in evaluation.CONDITIONS[1:])
            lines.append(f"| {run['model']} | {method} | {c['recall@1']:.3f} | "
                         f"{c['recall@10']:.3f} | {c['mAP']:.3f} | {c['MR1']:.2f} | {degraded} | "
                         f"{c['style_p@5']:.3f} | {c['style_p@10']:.3f} | "
                         f"{c['package_p@5']:.3f} |")
    return "\n".join(lines)


def merged(old: dict, new: dict) -> dict:
    """``new``'s runs added to ``old``'s (a model in both: ``new``'s run), in ``old``'s order.

    Raises:
        SystemExit: the two were measured on other tracks, seed or protocol.
    """
    same = ("set", "tracks", "packages", "seed", "protocol")
    differ = [k for k in same if old.get(k) != new[k]]
    if differ:
        raise SystemExit(f"--merge: the existing results differ in {', '.join(differ)}; "
                         "run every model again without --merge")
    fresh = {r["model"]: r for r in new["runs"]}
    runs = [fresh.pop(r["model"], r) for r in old["runs"]] + list(fresh.values())
    return {**new, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="build_music_tracks.py output")
    parser.add_argument("--set", default="heldout", choices=("heldout", "train", "all"))
    parser.add_argument("--models", nargs="+", default=["musicnn_msd", "siamese_musicnn_msd"],
                        help="presets (names or directories)")
    parser.add_argument("--query-hops", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-tracks", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other models' runs already in --json (same set, seed, "
                             "tracks and protocol); a model run again replaces its own")
    args = parser.parse_args(argv)
    if args.merge and not args.json:
        parser.error("--merge needs --json")

    tracks = read_tracks(args.data, args.set, args.max_tracks)
    if len(tracks) < 11:
        parser.error(f"{len(tracks)} usable tracks in set {args.set!r} of {args.data}; need 11+")
    started = time.perf_counter()
    audio = [excerpts(t, args.seed) for t in tracks]
    print(f"{len(tracks)} tracks from {len({t.package for t in tracks})} packages, "
          f"{len({t.style for t in tracks})} styles; excerpts in "
          f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
    command = "python scripts/eval_similarity.py " + " ".join(argv or sys.argv[1:])
    runs = []
    for model in args.models:
        with tempfile.TemporaryDirectory() as work:
            run = evaluate_model(model, tracks, audio, args.query_hops, Path(work))
        run.update(date=time.strftime("%Y-%m-%d"), machine=platform.platform(), command=command)
        runs.append(run)
        print(f"{model}: catalogue {run['catalogue_embed_s']} s, queries "
              f"{run['query_embed_s']} s, index-vs-exact top-10 disagreements "
              f"{run['top10_index_vs_exact_disagreements']}", file=sys.stderr)
    packages: dict[str, dict] = {}
    for t in tracks:
        p = packages.setdefault(t.package, {"style": t.style, "tracks": 0})
        p["tracks"] += 1
    doc = {
        "what": "same-track and style retrieval, 30 s catalogue entries, disjoint 10 s queries",
        "command": command,
        "date": time.strftime("%Y-%m-%d"), "machine": platform.platform(),
        "set": args.set, "tracks": len(tracks), "packages": packages, "seed": args.seed,
        "protocol": {"entry_s": evaluation.ENTRY_SECONDS, "query_s": evaluation.QUERY_SECONDS,
                     "gap_s": evaluation.QUERY_GAP_SECONDS,
                     "conditions": list(evaluation.CONDITIONS)},
        "runs": runs,
    }
    if args.merge and args.json.exists():
        doc = merged(json.loads(args.json.read_text(encoding="utf-8")), doc)
        runs = doc["runs"]
    for hop in args.query_hops:
        print(f"\nquery hop {hop} s\n{table_markdown(runs, hop)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
