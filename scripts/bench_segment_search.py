"""Segment-level catalogue search: build time and size per 1,000 files, query latency, IVF-PQ.

Three parts, one JSON:

(a) **real build**: `zoo.search.build_index` over the first ``--real-files`` tracks of
    ``--music`` (full tracks, e.g. ``build_music_tracks.py`` output): wall time and index bytes
    per file, scaled to 1,000 files and to an average track of ``--track-minutes``.
(b) **query latency with the model loaded**, the issue's case: a catalogue of ``--files``
    files x ``--segments-per-file`` segments (default 10,000 x 80: four-minute tracks),
    written with `zoo.search.write_index` and searched exactly (the default below
    `zoo.search.ann.SEGMENT_FLAT_MAX`). The vectors are the real segment vectors of part (a)
    plus noise (so neighbourhoods look like real ones), one file per perturbed real file. Each
    query is a real 10 s excerpt, embedded (query hop 1 s) and searched
    (`CatalogueIndex.explain`, as ``zoo similar --explain``); reported: p50 / p95 of embed,
    search and total over ``--queries`` queries.
(c) **IVF-PQ above the threshold**: ``--pq-segments`` segments the same way, `write_index`
    with ``segment_index_type="ivfpq"``: build time (k-means, PQ training, nprobe calibration),
    bytes in memory per million segments, file-level recall@10 of the re-ranked results vs
    exact scoring on real-excerpt queries, and query latency.

Usage:
    python scripts/bench_segment_search.py --music /work/datasets/music_tracks/audio/heldout \\
        --json docs/results/bench_segment_search.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zoo.search import ann, segments  # noqa: E402


def peak_rss_mib() -> float:
    text = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", text).group(1)) / 1024


def stats(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2), "n": int(len(ms))}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {msg}", file=sys.stderr,
          flush=True)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def real_build(music: Path, n_files: int, model: str, work: Path, minutes: float) -> tuple:
    """Part (a); returns (report dict, the built index)."""
    import zoo.search
    from zoo.search import AUDIO_EXTENSIONS

    files = sorted(p for p in music.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    files = files[:n_files]
    catalogue = work / "catalogue"
    catalogue.mkdir(parents=True)
    for i, f in enumerate(files):
        os.symlink(f.resolve(), catalogue / f"{i:05d}_{f.name}")
    t = time.perf_counter()
    report = zoo.search.build_index(catalogue, work / "real.idx", model=model, progress=False)
    seconds = time.perf_counter() - t
    index = report.index
    audio_s = float(sum(len(index.table.starts[index.table.rows(i)]) for i in range(len(index))))
    audio_s *= index.model.hop_seconds
    per_file_s = seconds / len(index)
    size = dir_bytes(work / "real.idx")
    scale = minutes * 60 / (audio_s / len(index))  # to tracks of ``minutes``
    return {
        "files": len(index), "failed": len(report.failed), "audio_hours": round(audio_s / 3600, 2),
        "segments": index.table.n_segments, "build_s": round(seconds, 1),
        "build_s_per_1000_files": round(per_file_s * 1000, 1),
        "real_time_factor": round(audio_s / seconds, 1),
        "index_mib": round(size / 2 ** 20, 2),
        "index_mib_per_1000_files": round(size / len(index) * 1000 / 2 ** 20, 1),
        f"build_s_per_1000_files_of_{minutes:g}_min": round(per_file_s * scale * 1000, 1),
        f"index_mib_per_1000_files_of_{minutes:g}_min": round(
            size / len(index) * scale * 1000 / 2 ** 20, 1),
    }, index


def synthetic_catalogue(index, n_files: int, per_file: int, rng: np.random.Generator,
                        noise: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Segments of ``n_files`` files: real files' segments (cycled to ``per_file``) + noise of
    norm ``noise`` (0.5: copies of one real file are ~0.8 cosine apart, about as far as
    different tracks of one album)."""
    out = np.empty((n_files * per_file, index.dim), np.float32)
    for f in range(n_files):
        real = np.asarray(index.segments[index.table.rows(f % len(index))])
        rows = real[np.arange(per_file) % len(real)]
        out[f * per_file:(f + 1) * per_file] = rows + noise * rng.standard_normal(
            rows.shape).astype(np.float32) / np.sqrt(index.dim)
    return ann.normalize_rows(out), np.tile(np.arange(per_file, dtype=np.float32) * 3.0,
                                            n_files)


def write_synthetic(work: Path, name: str, real_index, n_files: int, per_file: int,
                    rng: np.random.Generator, segment_index_type: str):
    from zoo.search import SegmentTable, write_index
    from zoo.search.store import FileEntry

    seg, starts = synthetic_catalogue(real_index, n_files, per_file, rng)
    table = SegmentTable.from_counts([per_file] * n_files, starts)
    means = ann.normalize_rows(seg.reshape(n_files, per_file, -1).mean(axis=1))
    files = [FileEntry(f"f{i:07d}.wav", 0, 0) for i in range(n_files)]
    t = time.perf_counter()
    index = write_index(work / name, means, files, real_index.model, work,
                        segment_vectors=seg, table=table, segment_index_type=segment_index_type)
    build = time.perf_counter() - t
    del seg
    return index, build


def query_clips(real_index, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Real 10 s excerpts from the files of part (a) (16 kHz)."""
    import zoo.audio

    clips = []
    for i in rng.choice(len(real_index), size=n, replace=len(real_index) < n):
        x = zoo.audio.load(real_index.file_path(int(i)), sr=16000)
        start = int(rng.integers(0, max(1, len(x) - 160000)))
        clips.append(x[start:start + 160000])
    return clips


def time_queries(index, clips: list[np.ndarray]) -> dict:
    embed, search = [], []
    index.explain(clips[0], top=10, source_sr=16000)  # warm-up: model load, graph tracing
    for clip in clips:
        t0 = time.perf_counter()
        q = index.embed_segments(clip, source_sr=16000)
        t1 = time.perf_counter()
        index.explain_segments(q, top=10)
        t2 = time.perf_counter()
        embed.append(t1 - t0)
        search.append(t2 - t1)
    return {"embed": stats(embed), "search": stats(search),
            "total": stats([a + b for a, b in zip(embed, search, strict=True)])}


def pq_recall(index, clips: list[np.ndarray]) -> float:
    """File recall@10 of the IVF-PQ + re-rank results vs exact scoring of every file."""
    hits = []
    for clip in clips:
        q = index.embed_segments(clip, source_sr=16000).vectors
        exact = segments.exact_scores(q, index.segments, index.table)
        truth = set(np.argsort(-exact, kind="stable")[:10].tolist())
        got = {s.file for s in index.rank_segments(q, top=10)}
        hits.append(len(truth & got) / 10)
    return float(np.mean(hits))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--music", type=Path, required=True, help="folder of real music files")
    p.add_argument("--model", default="musicnn_msd")
    p.add_argument("--real-files", type=int, default=100)
    p.add_argument("--track-minutes", type=float, default=4.0)
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--segments-per-file", type=int, default=80)
    p.add_argument("--queries", type=int, default=50)
    p.add_argument("--pq-segments", type=int, default=3_000_000)
    p.add_argument("--pq-queries", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    import faiss

    rng = np.random.default_rng(args.seed)
    results: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "numpy": np.__version__, "faiss": faiss.__version__,
                    "load_avg_start": [round(x, 2) for x in os.getloadavg()]},
        "command": "python scripts/bench_segment_search.py " + " ".join(argv or sys.argv[1:]),
        "model": args.model,
    }
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        results["real_build"], real = real_build(args.music, args.real_files, args.model, work,
                                                 args.track_minutes)
        log(f"(a) {results['real_build']}")
        clips = query_clips(real, args.queries, rng)

        index, build = write_synthetic(work, "flat.idx", real, args.files,
                                       args.segments_per_file, rng, "auto")
        results["flat"] = {"files": args.files, "segments": index.table.n_segments,
                           "segment_index": index.segment_params.type,
                           "write_s": round(build, 1),
                           "index_mib": round(dir_bytes(work / "flat.idx") / 2 ** 20, 1),
                           "queries": time_queries(index, clips)}
        log(f"(b) {results['flat']}")
        del index
        (work / "flat.idx").rename(work / "flat.old")  # free its page cache sooner
        import shutil

        shutil.rmtree(work / "flat.old")

        per_file = args.segments_per_file
        n_files = max(1, args.pq_segments // per_file)
        index, build = write_synthetic(work, "pq.idx", real, n_files, per_file, rng, "ivfpq")
        pq = index.segment_index
        code_mib = (pq.ntotal * (pq.code_size + 8)) / 2 ** 20  # codes + ids, in memory
        results["ivfpq"] = {
            "files": n_files, "segments": index.table.n_segments,
            "params": index.segment_params.to_dict(), "build_s": round(build, 1),
            "code_bytes_per_segment": int(pq.code_size),
            "in_memory_mib_per_million_segments": round(code_mib / pq.ntotal * 1e6, 1),
            "segments_npy_mib_per_million_segments": round(index.dim * 4 * 1e6 / 2 ** 20, 1),
            "segments_faiss_mib": round((work / "pq.idx" / "segments.faiss").stat().st_size
                                        / 2 ** 20, 1),
            "queries": time_queries(index, clips[: args.pq_queries]),
            "file_recall@10_vs_exact": round(pq_recall(index, clips[: args.pq_queries]), 4),
        }
        log(f"(c) {results['ivfpq']}")
    results["peak_rss_mib"] = round(peak_rss_mib(), 1)
    results["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
