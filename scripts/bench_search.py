"""Catalogue search benchmark: index and query time, recall@10 of the ANN index vs exact search.

Two parts:

(a) real audio, ~1,000 catalogue items (``--items``): the 611 music clips of
    ``--music`` (music_styles: 30 s WAV excerpts of Debian game-music tracks, GTZAN layout),
    then the first clips, by file name, of ``--env`` (env_sounds: ESC-50 layout, Debian
    sound effects and drum samples) up to ``--items``. The files are linked (not copied) into
    ``WORK/catalogue`` and indexed with `zoo.search.build_index` (``--model``). Reported:
    embedding time per item, the faiss build time of the exact (flat) and the IVF index on
    the same vectors, single-query search time (every item as a query, ms), recall@10 of the
    IVF index vs exact search (each query's own entry left out), end-to-end query time of
    ``zoo similar`` work (embed a query file + search) on a sample of files, and, as a check
    of what the model retrieves, how often the nearest other music clip is from the same
    track / same style.

(b) synthetic: ``--synthetic`` (1,000,000) unit vectors of dimension ``--dim`` (200 =
    musicnn's penultimate embedding) from a clustered Gaussian mixture: 100 super-clusters x
    50 sub-clusters with Zipf-distributed sizes, anisotropic noise (a 1/sqrt(rank) spectrum in a
    different random axis order per super-cluster); queries are ``--queries`` fresh draws from
    the same mixture (not in the index). Reported: IVF build time (k-means training, adding,
    nprobe calibration), single-query latency p50/p95 over all queries, recall@10 vs exact
    search (`faiss.IndexFlatIP` on the first ``--gt-queries`` queries), exact search time for
    comparison, index size and the process's peak RSS.

Targets (issue): recall@10 >= 0.95 and query p50 <= 5 ms at 1M.

``--json [PATH]`` writes the results, with the machine, versions and command line, to PATH
(default docs/results/bench_search.json), from which scripts/make_docs_tables.py writes the
tables of docs/benchmarks.md.

Usage:
    python scripts/bench_search.py --model musicnn_msd --work /tmp/bench_search --json
    python scripts/bench_search.py --skip-real --synthetic 100000 --json /tmp/out.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import results_json  # noqa: E402

from zoo.search import ann  # noqa: E402


def peak_rss_mib() -> float:
    text = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", text).group(1)) / 1024


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p95_ms": round(float(np.percentile(ms, 95)), 3),
            "mean_ms": round(float(ms.mean()), 3), "n": int(len(ms))}


def time_single_queries(index, queries: np.ndarray, k: int = 10):
    """Each query alone (batch of 1) through `ann.search`, as `zoo similar` searches it:
    (latencies, found ids)."""
    latencies, found = [], []
    for q in queries:
        q = q[None, :]
        t = time.perf_counter()
        _, ids = ann.search(index, q, k)
        latencies.append(time.perf_counter() - t)
        found.append(ids[0])
    return latencies, np.stack(found)


def self_excluded(ids: np.ndarray, own: np.ndarray, k: int) -> np.ndarray:
    return np.stack([[i for i in row if i != o and i >= 0][:k] for row, o in zip(ids, own,
                                                                                  strict=True)])


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {msg}", file=sys.stderr,
          flush=True)


# -- (a) real audio -----------------------------------------------------------------------------


def make_catalogue(music: Path, env: Path, items: int, work: Path) -> dict:
    """Link the catalogue files into work/catalogue; returns what is in it."""
    cat = work / "catalogue"
    rows = list(csv.DictReader(open(music / "tracks.csv", encoding="utf-8")))
    music_files = sorted(rows, key=lambda r: r["path"])[:items]
    env_files = sorted((env / "audio").glob("*.wav"))[: max(0, items - len(music_files))]
    links = [(music / r["path"], cat / "music" / r["path"]) for r in music_files]
    links += [(p, cat / "env" / p.name) for p in env_files]
    for src, dst in links:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.is_symlink():
            dst.symlink_to(src)
    import soundfile as sf

    seconds = sum(sf.info(str(src)).duration for src, _ in links)
    tracks = {f"music/{r['path']}": (r["track"], r["label"]) for r in music_files}
    return {"root": cat, "music": len(music_files), "env": len(env_files),
            "audio_seconds": seconds, "tracks": tracks}


def bench_real(args) -> dict:
    import zoo.search

    work = Path(args.work)
    info = make_catalogue(Path(args.music), Path(args.env), args.items, work)
    n = info["music"] + info["env"]
    log(f"catalogue: {info['music']} music clips + {info['env']} env clips = {n} files, "
        f"{info['audio_seconds'] / 3600:.2f} h of audio")
    out = work / f"index_{args.model}"
    t = time.perf_counter()
    report = zoo.search.build_index(info["root"], out, model=args.model, overwrite=True,
                                    progress=not args.quiet)
    build_s = time.perf_counter() - t
    index = report.index
    if report.failed:
        log(f"{len(report.failed)} files failed: {report.failed[:3]}")
    vectors = index.vectors
    log(f"indexed {len(index)} files in {build_s:.1f} s")

    t = time.perf_counter()
    flat, _ = ann.build_ann(vectors, "flat")
    flat_build = time.perf_counter() - t
    t = time.perf_counter()
    ivf, params = ann.build_ann(vectors, "ivf")
    ivf_build = time.perf_counter() - t

    own = np.arange(len(vectors))
    flat_lat, exact = time_single_queries(flat, vectors, 11)
    ivf_lat, found = time_single_queries(ivf, vectors, 11)
    exact10, found10 = self_excluded(exact, own, 10), self_excluded(found, own, 10)
    recall = ann.recall_at_k(found10, exact10, 10)

    # end to end: embed a query file with the index's model, then search (as `zoo similar`)
    rng = np.random.default_rng(args.seed)
    sample = rng.choice(len(index), size=min(args.e2e_queries, len(index)), replace=False)
    index.embed(index.file_path(int(sample[0])))  # warm-up: model load and tracing
    e2e, self_first = [], 0
    for i in sample:
        t = time.perf_counter()
        matches = index.query(index.file_path(int(i)), top=10)
        e2e.append(time.perf_counter() - t)
        self_first += matches[0].path == index.file_path(int(i))

    # what the model retrieves: nearest *other* music clip, same track / same style
    tracks = info["tracks"]
    music_ids = [i for i, f in enumerate(index.files) if f.path in tracks]
    same_track = same_style = 0
    style_p10 = []
    for i in music_ids:
        others = [j for j in exact[i] if j != i and index.files[j].path in tracks]
        track, style = tracks[index.files[i].path]
        if others:
            same_track += tracks[index.files[others[0]].path][0] == track
            same_style += tracks[index.files[others[0]].path][1] == style
        style_p10.append(np.mean([tracks[index.files[j].path][1] == style
                                  for j in exact10[i] if index.files[j].path in tracks] or [0]))
    embed_s = build_s  # build_index time is dominated by embedding; flat build is ~ms
    return {
        "model": index.model.preset,
        "embedding": index.model.embedding,
        "dim": index.dim,
        "items": len(index),
        "music_clips": info["music"],
        "env_clips": info["env"],
        "failed": len(report.failed),
        "audio_hours": round(info["audio_seconds"] / 3600, 3),
        "index_build_s": round(build_s, 2),
        "embed_ms_per_item": round(1e3 * embed_s / len(index), 1),
        "realtime_factor": round(info["audio_seconds"] / embed_s, 1),
        "auto_index_type": index.params.type,
        "flat_build_ms": round(flat_build * 1e3, 3),
        "flat_query": percentiles(flat_lat),
        "ivf_build_ms": round(ivf_build * 1e3, 1),
        "ivf_params": params.to_dict(),
        "ivf_query": percentiles(ivf_lat),
        "ivf_recall_at_10": round(recall, 4),
        "end_to_end_query": percentiles(e2e),
        "end_to_end_self_first": f"{self_first}/{len(sample)}",
        "music_nearest_same_track": round(same_track / len(music_ids), 4),
        "music_nearest_same_style": round(same_style / len(music_ids), 4),
        "music_style_precision_at_10": round(float(np.mean(style_p10)), 4),
    }


# -- (b) synthetic ------------------------------------------------------------------------------


def mixture(n: int, dim: int, rng: np.random.Generator, model: dict | None = None):
    """Draws from the clustered mixture (the model is created on the first call)."""
    if model is None:
        n_super, n_sub = 100, 50
        centres = rng.standard_normal((n_super, dim)).astype(np.float32)
        sub = np.repeat(centres, n_sub, 0) + 0.6 * rng.standard_normal((n_super * n_sub, dim))
        weights = rng.zipf(1.5, n_super * n_sub).astype(np.float64)
        spectrum = 1 / np.sqrt(np.arange(1, dim + 1))
        spectrum *= np.sqrt(dim / (spectrum ** 2).sum())
        scales = np.stack([spectrum[rng.permutation(dim)] for _ in range(n_super)])
        model = {"sub": sub.astype(np.float32), "p": weights / weights.sum(), "n_sub": n_sub,
                 "scales": scales.astype(np.float32)}
    labels = rng.choice(len(model["sub"]), size=n, p=model["p"])
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, 100_000):
        e = min(n, s + 100_000)
        noise = rng.standard_normal((e - s, dim)).astype(np.float32)
        scale = model["scales"][labels[s:e] // model["n_sub"]]
        out[s:e] = model["sub"][labels[s:e]] + noise * scale
    return ann.normalize_rows(out), model


def bench_synthetic(args) -> dict:
    import faiss

    rng = np.random.default_rng(args.seed)
    t = time.perf_counter()
    vectors, model = mixture(args.synthetic, args.dim, rng)
    queries, _ = mixture(args.queries, args.dim, rng, model)
    log(f"generated {len(vectors)} x {args.dim} vectors in {time.perf_counter() - t:.1f} s")

    t = time.perf_counter()
    index, params = ann.build_ann(vectors, args.index_type, nlist=args.nlist)
    build = time.perf_counter() - t
    log(f"built {params.type} index in {build:.1f} s: {params}")

    lat, found = time_single_queries(index, queries, 10)
    log(f"queries: p50 {np.percentile(lat, 50) * 1e3:.2f} ms")

    gt = queries[: args.gt_queries]
    flat = faiss.IndexFlatIP(args.dim)
    flat.add(vectors)
    exact_lat, exact = time_single_queries(flat, gt[: args.exact_timed], 10)
    t = time.perf_counter()
    _, exact_rest = flat.search(gt, 10)  # batched: the ground truth for every gt query
    gt_s = time.perf_counter() - t
    recall = ann.recall_at_k(found[: len(gt)], exact_rest, 10)
    curve = {}
    sweep = []
    if params.type == "ivf":
        sweep = sorted({max(1, params.nprobe // 4), max(1, params.nprobe // 2), params.nprobe,
                        min(params.nlist, params.nprobe * 2)})
    for nprobe in sweep:
        index.nprobe = nprobe
        l2, f2 = time_single_queries(index, gt[:300], 10)
        curve[str(nprobe)] = {"recall_at_10": round(ann.recall_at_k(f2, exact_rest[:300], 10), 4),
                              "p50_ms": round(float(np.percentile(l2, 50)) * 1e3, 3)}
    if params.type == "ivf":
        index.nprobe = params.nprobe
    del flat
    index_bytes = len(faiss.serialize_index(index))
    return {
        "vectors": len(vectors), "dim": args.dim, "queries": len(queries),
        "gt_queries": len(gt), "index_type": params.type, "params": params.to_dict(),
        "train_vectors": (min(len(vectors), params.nlist * ann.TRAIN_POINTS_PER_LIST)
                          if params.nlist else None),
        "build_s": round(build, 1),
        "query": percentiles(lat),
        "recall_at_10": round(recall, 4),
        "exact_single_query": percentiles(exact_lat),
        "exact_batched_gt_s": round(gt_s, 1),
        "nprobe_sweep_300_queries": curve,
        "index_mib": round(index_bytes / 2 ** 20, 1),
        "vectors_mib": round(vectors.nbytes / 2 ** 20, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "faiss_threads": faiss.omp_get_max_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="musicnn_msd",
                   help="preset for part (a) (default musicnn_msd; siamese_musicnn_msd once "
                        "it exists)")
    p.add_argument("--music", default="/work/datasets/music_styles")
    p.add_argument("--env", default="/work/datasets/env_sounds")
    p.add_argument("--items", type=int, default=1000, help="catalogue size of part (a)")
    p.add_argument("--work", default="/tmp/bench_search", help="catalogue links and index")
    p.add_argument("--e2e-queries", type=int, default=50)
    p.add_argument("--synthetic", type=int, default=1_000_000, help="vectors in part (b)")
    p.add_argument("--dim", type=int, default=200)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--gt-queries", type=int, default=1000,
                   help="queries with exact ground truth (recall)")
    p.add_argument("--exact-timed", type=int, default=100,
                   help="single exact (flat) queries timed for comparison")
    p.add_argument("--index-type", default="auto", choices=ann.INDEX_TYPES)
    p.add_argument("--nlist", type=int, help="IVF cells of part (b) (default: zoo's choice)")
    p.add_argument("--threads", type=int, help="faiss OpenMP threads (default: all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-real", action="store_true")
    p.add_argument("--skip-synthetic", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", nargs="?", const=results_json.default_path(__file__),
                   help="also write the results to this JSON file "
                        "(default docs/results/bench_search.json)")
    args = p.parse_args(argv)

    import faiss

    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    results = results_json.run_info(__file__, argv,
                                    ("tensorflow", "keras", "numpy", "faiss-cpu"))
    results["settings"] = {k: (str(v) if isinstance(v, Path) else v)
                           for k, v in vars(args).items()}
    if not args.skip_real:
        results["real"] = bench_real(args)
        print(json.dumps({"real": results["real"]}, indent=1), flush=True)
    if not args.skip_synthetic:
        results["synthetic"] = bench_synthetic(args)
        print(json.dumps({"synthetic": results["synthetic"]}, indent=1), flush=True)
    results_json.finish(results)
    if args.json:
        print(f"wrote {results_json.write(args.json, results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
