"""Single-process `zoo index` against the Beam DirectRunner (1 and 2 workers), one folder.

Each configuration runs as its own ``zoo index`` process over the same ``--files`` audio files
(copied into one folder), from an empty ``--out``, start-up included (what a user waits for):

    single        zoo index DIR --out A --model M
    beam_1        zoo index DIR --out B --model M --runner DirectRunner
    beam_2        ... -- --direct_num_workers=2 --direct_running_mode=multi_processing

Reported per configuration: wall seconds, files/s, real-time factor (seconds of audio per
second), the ratio to the single-process throughput, and peak RSS of the driver and of each
worker process (sampled from /proc every 0.2 s: Linux only). Parity: the file and segment
vectors of the Beam indexes against the single-process one (max abs difference).

Usage:
    python scripts/bench_pipeline.py --data /work/datasets/bench_tracks/audio/train \\
        --files 200 --json docs/results/bench_pipeline.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import soundfile as sf

ZOO = [sys.executable, "-m", "zoo.cli"]
WORKER_MARK = "sdk_worker_main"  # Beam's worker processes run apache_beam...sdk_worker_main


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [int(c) for c in task.read_text().split()]
        except OSError:
            pass
    return out


def _tree(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += _children(p)
    return seen


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def run_measured(cmd: list[str]) -> dict:
    """Run ``cmd``; wall time and the peak RSS of the driver and of each worker process."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks: dict[int, float] = {}
    kinds: dict[int, str] = {}
    while proc.poll() is None:
        for pid in _tree(proc.pid):
            rss = _rss_mb(pid)
            if rss is not None:
                peaks[pid] = max(peaks.get(pid, 0.0), rss)
                if pid not in kinds:
                    kinds[pid] = ("driver" if pid == proc.pid else
                                  "worker" if WORKER_MARK in _cmdline(pid) else "other")
        time.sleep(0.2)
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    workers = sorted(round(v, 1) for p, v in peaks.items()
                     if kinds.get(p) == "worker" and v > 50)  # not the tiny launcher shells
    if not workers:  # in-memory DirectRunner: the driver process is the worker
        workers = [round(peaks.get(proc.pid, 0.0), 1)]
    return {"command": " ".join(cmd[2:]), "returncode": proc.returncode,
            "wall_seconds": round(wall, 2),
            "driver_peak_rss_mb": round(peaks.get(proc.pid, 0.0), 1),
            "worker_peak_rss_mb": workers, "stderr_tail": err[-600:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="folder of audio files (recursive)")
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--model", default="musicnn_msd")
    parser.add_argument("--json", required=True, help="output JSON")
    parser.add_argument("--workdir", help="scratch folder (default: a temporary one)")
    args = parser.parse_args()

    from zoo.search.build import AUDIO_EXTENSIONS

    files = sorted(p for p in Path(args.data).rglob("*")
                   if p.suffix.lower() in AUDIO_EXTENSIONS)[: args.files]
    if len(files) < args.files:
        print(f"only {len(files)} audio files under {args.data}", file=sys.stderr)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_pipeline_"))
    folder = work / "audio"
    shutil.rmtree(work, ignore_errors=True)
    folder.mkdir(parents=True)
    for i, src in enumerate(files):
        shutil.copy(src, folder / f"{i:04d}_{src.name}")
    audio_seconds = sum(sf.info(p).duration for p in folder.iterdir())

    base = [*ZOO, "index", str(folder), "--model", args.model, "-q"]
    configs = {
        "single": [*base, "--out", str(work / "single.idx")],
        "beam_1": [*base, "--out", str(work / "beam1.idx"), "--runner", "DirectRunner"],
        "beam_2": [*base, "--out", str(work / "beam2.idx"), "--runner", "DirectRunner", "--",
                   "--direct_num_workers=2", "--direct_running_mode=multi_processing"],
    }
    results = {}
    for name, cmd in configs.items():
        print(f"== {name}: {' '.join(cmd[2:])}", file=sys.stderr, flush=True)
        r = run_measured(cmd)
        if r["returncode"] != 0:
            print(r["stderr_tail"], file=sys.stderr)
            raise SystemExit(f"{name} failed ({r['returncode']})")
        r["files_per_second"] = round(len(files) / r["wall_seconds"], 3)
        r["real_time_factor"] = round(audio_seconds / r["wall_seconds"], 1)
        results[name] = r
        print(f"   {r['wall_seconds']} s, {r['files_per_second']} files/s, "
              f"{r['real_time_factor']}x real time, driver {r['driver_peak_rss_mb']} MB, "
              f"workers {r['worker_peak_rss_mb']} MB", file=sys.stderr, flush=True)
    for name in ("beam_1", "beam_2"):
        results[name]["throughput_vs_single"] = round(
            results["single"]["wall_seconds"] / results[name]["wall_seconds"], 3)

    from zoo.search import load_index

    single = load_index(work / "single.idx")
    parity = {}
    for name, folder_name in (("beam_1", "beam1.idx"), ("beam_2", "beam2.idx")):
        other = load_index(work / folder_name)
        same_files = [f.path for f in other.files] == [f.path for f in single.files]
        parity[name] = {
            "same_files": same_files,
            "file_vectors_max_abs_diff": float(np.abs(np.asarray(other.vectors)
                                                      - single.vectors).max()),
            "segment_vectors_max_abs_diff": float(np.abs(np.asarray(other.segments)
                                                         - single.segments).max()),
        }
    doc = {
        "script": "scripts/bench_pipeline.py",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "model": args.model,
        "files": len(files),
        "audio_seconds": round(audio_seconds, 1),
        "data": os.fspath(args.data),
        "results": results,
        "parity": parity,
        "target": {"throughput_vs_single": ">= 0.85 (best Beam configuration)",
                   "worker_peak_rss_mb": "<= 1536"},
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps({k: {m: v for m, v in r.items() if m != "stderr_tail"}
                      for k, r in results.items()}, indent=1))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
