"""``zoo serve`` under load: latency of ``POST /similar`` and throughput at 1, 4 and 16
concurrent clients, then a soak at 16 clients with the server's memory sampled.

The catalogue is the one of `bench_segment_search.py` part (b), made by its functions: the real
segment vectors of ``--real-files`` tracks of ``--music`` (indexed with ``zoo index``'s default
model), each copied with noise into ``--files`` files of ``--segments-per-file`` segments
(10,000 x 80 = 800,000 segments: IVF-PQ by the default rule). The queries are real 10 s
excerpts of those tracks, sent as 16 kHz 16-bit WAV files (multipart), as a client would.

The server is a real ``zoo serve`` subprocess on 127.0.0.1 (one worker, tagger loaded too); the
clients are asyncio tasks in this process, each sending its next query as soon as the last
was answered (closed loop). Every answer is checked against the same query's answer when the
server was idle (same top result), so "no errors" also means "no wrong answers".

Targets (the issue's): p50 <= 400 ms for one client; no errors over the whole soak (16
clients, 2 minutes); server RSS grows <= 10% from the start of the soak to its end.

Usage (``--json`` alone writes docs/results/bench_serve.json):
    apt-get download singularity-music && dpkg -x singularity-music_*.deb /tmp/sm
    python scripts/bench_serve.py --music /tmp/sm/usr/share/games/singularity/music --json
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import bench_segment_search as segment_bench  # noqa: E402  (the catalogue of its part (b))
import results_json  # noqa: E402

PACKAGES = ("tensorflow", "keras", "numpy", "faiss-cpu", "fastapi", "uvicorn", "httpx")

TARGET_P50_MS = 400.0
TARGET_RSS_GROWTH = 0.10
LEVELS = (1, 4, 16)
SAMPLE_RATE = 16000


def log(msg: str) -> None:
    segment_bench.log(msg)


# -- the server's memory and the machine's CPU --------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def memory_mib(pid: int) -> dict[str, float]:
    """Resident memory of one process, MiB: ``rss`` = ``anon`` (heap, the models) + ``file``
    (mapped files: the index's memory-mapped vectors, libraries) + shared memory; zeros once
    the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {"rss": 0.0, "anon": 0.0, "file": 0.0}
    kib = {k: int(v) for k, v in re.findall(r"^(VmRSS|RssAnon|RssFile):\s+(\d+)", text, re.M)}
    return {"rss": kib.get("VmRSS", 0) / 1024, "anon": kib.get("RssAnon", 0) / 1024,
            "file": kib.get("RssFile", 0) / 1024}


def rss_mib(pid: int) -> float:
    """Resident memory of one process, MiB (0 once it is gone)."""
    return memory_mib(pid)["rss"]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used, seconds (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy_seconds() -> float:
    """CPU time every process on the machine has used since boot, seconds (all cores)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    return (user + nice + system + irq + softirq + steal) / _TICK


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (the server's decoder processes)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


class Sampler(threading.Thread):
    """Samples the server's memory (and its decoders') every ``every`` seconds until stopped,
    and splits the machine's CPU time over the run between the server, its decoders, this
    process (the clients) and everything else (other jobs: how contended the machine was)."""

    def __init__(self, pid: int, every: float = 2.0):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, dict[str, float], float]] = []
        self._done = threading.Event()
        self._cpu_start = self._cpu()
        self._t0 = time.monotonic()

    def _cpu(self) -> dict[str, float]:
        return {"machine": machine_busy_seconds(), "server": cpu_seconds(self.pid),
                "decoders": sum(cpu_seconds(c) for c in children(self.pid)),
                "clients": cpu_seconds(os.getpid())}

    def run(self) -> None:
        while not self._done.is_set():
            decoders = sum(rss_mib(c) for c in children(self.pid))
            self.samples.append((time.monotonic() - self._t0, memory_mib(self.pid),
                                 decoders))
            self._done.wait(self.every)

    def stop(self) -> dict:
        self._done.set()
        self.join()
        wall = time.monotonic() - self._t0
        cpu = {k: v - self._cpu_start[k] for k, v in self._cpu().items()}
        cpu["others"] = max(0.0, cpu["machine"] - cpu["server"] - cpu["decoders"]
                            - cpu["clients"])
        first, last = self.samples[0][1], self.samples[-1][1]
        rss = [m["rss"] for _, m, _ in self.samples]
        return {
            "samples": len(self.samples), "start_mib": round(first["rss"], 1),
            "end_mib": round(last["rss"], 1), "max_mib": round(max(rss), 1),
            "growth": round(last["rss"] / first["rss"] - 1, 4),
            "anon_start_mib": round(first["anon"], 1), "anon_end_mib": round(last["anon"], 1),
            "file_start_mib": round(first["file"], 1), "file_end_mib": round(last["file"], 1),
            "decoders_start_mib": round(self.samples[0][2], 1),
            "decoders_end_mib": round(self.samples[-1][2], 1),
            "series_mib": [[round(t, 1), round(m["rss"], 1)] for t, m, _ in self.samples],
            "cpu_s": {k: round(v, 1) for k, v in cpu.items()},
            "others_cpu_share": round(cpu["others"] / (wall * os.cpu_count()), 3),
        }


# -- load ----------------------------------------------------------------------------------


def wav_bytes(clip: np.ndarray) -> bytes:
    import soundfile as sf

    out = io.BytesIO()
    sf.write(out, clip, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return out.getvalue()


def timing(header: str) -> dict[str, float]:
    """``Server-Timing: decode;dur=12.3, model;dur=110.2`` -> {"decode": 12.3, "model": 110.2}
    (milliseconds; the server also sends ``queue``: the wait for the model thread)."""
    return {k: float(v) for k, v in re.findall(r"(\w+);dur=([\d.]+)", header or "")}


async def load(url: str, queries: list[bytes], expected: list[str] | None, clients: int,
               seconds: float, top: int = 10) -> dict:
    """``clients`` closed-loop clients for ``seconds``: latency, throughput, errors.

    Args:
        url: the server.
        queries: WAV files to send, cycled.
        expected: the top result each query must have (None: not checked).
        clients: concurrent clients.
        seconds: how long the clients keep sending.
        top: results asked for.
    """
    import httpx

    latencies: list[float] = []
    server_side: list[dict[str, float]] = []
    errors: list[str] = []
    wrong = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(k: int, http: httpx.AsyncClient) -> None:
        nonlocal wrong
        i = k
        while time.perf_counter() < deadline:
            q = i % len(queries)
            i += clients
            t = time.perf_counter()
            try:
                response = await http.post(f"{url}/similar", params={"top": top},
                                           files={"file": (f"q{q}.wav", queries[q])})
            except httpx.HTTPError as err:
                errors.append(f"{type(err).__name__}: {err}")
                continue
            elapsed = time.perf_counter() - t
            if response.status_code != 200:
                errors.append(f"{response.status_code}: {response.text[:200]}")
                continue
            latencies.append(elapsed)
            server_side.append(timing(response.headers.get("server-timing")))
            if expected is not None and response.json()["results"][0]["path"] != expected[q]:
                wrong += 1

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        await asyncio.gather(*(client(k, http) for k in range(clients)))
    wall = time.perf_counter() - started
    result = {"clients": clients, "seconds": round(wall, 1), "requests": len(latencies),
              "errors": len(errors), "wrong_top1": wrong,
              "throughput_rps": round(len(latencies) / wall, 2)}
    if latencies:
        result.update(segment_bench.stats(latencies))
        for part in ("decode", "queue", "model"):
            values = [s[part] for s in server_side if part in s]
            if values:
                result[f"server_{part}_p50_ms"] = round(float(np.percentile(values, 50)), 1)
    if errors:
        result["first_errors"] = errors[:5]
    result["load_avg_end"] = results_json.load_average()  # how busy the machine was
    return result


# -- the server ----------------------------------------------------------------------------


def start_server(index: Path, log_path: Path) -> tuple[str, subprocess.Popen]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(log_path, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "zoo.cli", "serve", "--index",
                                    str(index), "--port", str(port), "--log-level", "warning"],
                                   stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"zoo serve exited:\n{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return url, process
        except httpx.HTTPError:
            pass
        time.sleep(1)
    process.kill()
    raise RuntimeError("zoo serve did not start in 10 minutes")


def reference_answers(url: str, queries: list[bytes]) -> list[str]:
    """Each query's top result on the idle server."""
    import httpx

    return [httpx.post(f"{url}/similar", files={"file": (f"q{i}.wav", q)},
                       timeout=120).json()["results"][0]["path"] for i, q in enumerate(queries)]


def run(args: argparse.Namespace, info: dict) -> dict:
    """The whole benchmark; ``info`` is `results_json.run_info` of this run."""
    from zoo.search import DEFAULT_MODEL

    rng = np.random.default_rng(args.seed)
    results: dict = {
        **info,
        "model": DEFAULT_MODEL,
        "targets": {"p50_ms_one_client": TARGET_P50_MS, "soak_errors": 0,
                    "soak_rss_growth": TARGET_RSS_GROWTH},
    }
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        work = Path(tmp)
        real_report, real = segment_bench.real_build(args.music, args.real_files, DEFAULT_MODEL,
                                                     work, 4.0)
        log(f"real index: {real_report}")
        index, write_s = segment_bench.write_synthetic(work, "serve.idx", real, args.files,
                                                       args.segments_per_file, rng, "auto")
        results["catalogue"] = {"real_tracks": real_report["files"], "files": len(index),
                                "segments": index.table.n_segments,
                                "segment_index": index.segment_params.type,
                                "nprobe": index.segment_params.nprobe,
                                "write_s": round(write_s, 1)}
        log(f"catalogue: {results['catalogue']}")
        clips = segment_bench.query_clips(real, args.queries, rng)
        queries = [wav_bytes(c) for c in clips]
        results["query"] = {"seconds": round(len(clips[0]) / SAMPLE_RATE, 2),
                            "format": "WAV, 16 kHz, 16-bit mono, multipart",
                            "bytes": len(queries[0]), "distinct": len(queries)}
        del index, real

        url, process = start_server(work / "serve.idx", work / "server.log")
        try:
            results["server_memory_idle_mib"] = {k: round(v, 1) for k, v in
                                                  memory_mib(process.pid).items()}
            expected = reference_answers(url, queries)
            results["levels"] = []
            for clients in LEVELS:
                level = asyncio.run(load(url, queries, expected, clients, args.level_seconds))
                log(f"{clients} clients: {level}")
                results["levels"].append(level)
            sampler = Sampler(process.pid)
            sampler.start()
            soak = asyncio.run(load(url, queries, expected, 16, args.soak_seconds))
            soak["resources"] = sampler.stop()
            used = soak["resources"]
            log(f"soak: { {k: v for k, v in soak.items() if k != 'resources'} } rss "
                f"{used['start_mib']} -> {used['end_mib']} MiB, cpu {used['cpu_s']}")
            results["soak"] = soak
        finally:
            process.terminate()
            process.wait(timeout=60)
    one = results["levels"][0]
    results["met"] = {"p50_ms_one_client": one["p50_ms"] <= TARGET_P50_MS,
                      "soak_errors": soak["errors"] == 0 and soak["wrong_top1"] == 0,
                      "soak_rss_growth": soak["resources"]["growth"] <= TARGET_RSS_GROWTH}
    results_json.finish(results)
    share = soak["resources"]["others_cpu_share"]
    results["notes"] = [results_json.load_note(results),
                        f"other processes used {share:.0%} of the machine's CPU time during "
                        "the soak" + (" (contended)" if share > 0.1 else ""),
                        *(args.note or [])]
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--music", type=Path, required=True, help="folder of real music files")
    p.add_argument("--real-files", type=int, default=16)
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--segments-per-file", type=int, default=80)
    p.add_argument("--queries", type=int, default=20, help="distinct 10 s query clips")
    p.add_argument("--level-seconds", type=float, default=30.0,
                   help="how long each of 1, 4, 16 clients runs")
    p.add_argument("--soak-seconds", type=float, default=120.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=None)
    p.add_argument("--note", action="append", help="a note for the JSON (repeatable)")
    p.add_argument("--json", nargs="?", type=Path, const=results_json.default_path(__file__),
                   help="write the results (default path: docs/results/bench_serve.json)")
    args = p.parse_args(argv)
    results = run(args, results_json.run_info(__file__, argv, PACKAGES))
    if args.json:
        print(f"wrote {results_json.write(args.json, results)}")
    for level in [*results["levels"], results["soak"]]:
        print(f"{level['clients']:>2} clients, {level['seconds']:g} s: p50 "
              f"{level.get('p50_ms')} ms, p95 {level.get('p95_ms')} ms, "
              f"{level['throughput_rps']} req/s, "
              f"{level['errors']} errors, {level['wrong_top1']} wrong")
    print(f"met: {results['met']}")
    return 0 if all(results["met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
