"""Log-compression experiment: from-scratch mel-CNN, front-ends x seeds, mean +- std.

Trains ``zoo finetune TASK DATA --backbone melcnn --frontend F --seed S`` for every front-end F
and seed S (one run at a time, in this process, seed-major so that an interrupted grid has all
front-ends at the first seeds), skips runs whose ``metrics.json`` already exists (resumable),
then aggregates per front-end the mean +- std over seeds of test accuracy and macro-F1, and for
``log-learn`` the learned ``alpha = exp(a)`` and ``beta = softplus(b)`` of ``log(alpha*x+beta)``.
Writes ``RUNS_DIR/summary.json`` and ``RUNS_DIR/summary.md`` (or ``--markdown OUT``) and prints
the markdown table.

The grid of docs/results.md (speech, then the environmental set with fold 1 as test)::

    python scripts/experiment_log_compression.py --data /work/datasets/speech_commands \\
        --task speech_commands --seeds 0 1 2 --runs-dir /work/runs/logcomp24_speech
    python scripts/experiment_log_compression.py --data /work/datasets/env_sounds --task esc50 \\
        --max-folds 1 --seeds 0 1 2 --runs-dir /work/runs/logcomp24_env

``--aggregate-only`` only rebuilds the table from the runs already on disk. ``--json [PATH]``
also records the summary under the task's name in PATH (default
docs/results/experiment_log_compression.json; the other task's grid is kept), with the machine,
versions, command line, and the wall time and peak memory of this invocation;
scripts/make_docs_tables.py writes the tables of docs/results.md from it.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import results_json  # noqa: E402

DEFAULT_FRONTENDS = ("log-eps", "log10", "log-learn", "db", "pcen")


def run_dir(runs_dir: Path, frontend: str, seed: int) -> Path:
    """Output folder of one run."""
    return runs_dir / f"{frontend}_seed{seed}"


def run_one(task: str, data: str, out: Path, frontend: str, seed: int, epochs: int,
            patience: int, speech_task: str, max_folds: int | None = None) -> dict[str, Any]:
    """Train one from-scratch model with `zoo.finetune.finetune`; return its metrics."""
    from zoo.finetune import FinetuneOptions, finetune

    options = FinetuneOptions(backbone="melcnn", frontend=frontend, seed=seed, epochs=epochs,
                              patience=patience, speech_task=speech_task, progress=False,
                              max_folds=max_folds)
    return finetune(task, data, str(out), options)


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if not math.isnan(v)]  # e.g. runs without a recorded wall time
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _pm(values: list[float], digits: int = 3) -> str:
    mean, std = _mean_std(values)
    if math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def aggregate(runs_dir: Path, frontends: list[str], seeds: list[int]) -> dict[str, Any]:
    """Collect the finished runs' metrics per front-end."""
    rows = {}
    for frontend in frontends:
        acc, f1, alpha, beta, wall, done = [], [], [], [], [], []
        for seed in seeds:
            path = run_dir(runs_dir, frontend, seed) / "metrics.json"
            if not path.exists():
                continue
            metrics = json.loads(path.read_text())
            done.append(seed)
            acc.append(float(metrics["accuracy"]))
            f1.append(float(metrics["macro_f1"]))
            wall.append(float(metrics.get("wall_seconds", math.nan)))
            # Fold tasks: one model (and one learned alpha, beta) per evaluated fold.
            per_fold = metrics.get("trained_frontend_per_fold") or {
                "-": metrics.get("trained_frontend") or {}}
            for trained in per_fold.values():
                if frontend == "log-learn" and "a" in trained and "b" in trained:
                    alpha.append(math.exp(float(trained["a"])))
                    beta.append(_softplus(float(trained["b"])))
        row: dict[str, Any] = {
            "seeds": done, "accuracy": acc, "macro_f1": f1, "wall_seconds": wall,
            "accuracy_mean_std": _mean_std(acc), "macro_f1_mean_std": _mean_std(f1),
            "wall_seconds_mean": _mean_std(wall)[0]}
        if alpha:
            row.update(alpha=alpha, beta=beta, alpha_mean_std=_mean_std(alpha),
                       beta_mean_std=_mean_std(beta))
        rows[frontend] = row
    return rows


def markdown(rows: dict[str, Any]) -> str:
    """The per-front-end table (and the learned LogLearn parameters)."""
    lines = ["| front-end | seeds | test accuracy (mean ± std) | macro-F1 (mean ± std) "
             "| per-seed accuracy | mean run time |",
             "|---|---|---|---|---|---|"]
    for frontend, row in rows.items():
        per_seed = ", ".join(f"{a:.3f}" for a in row["accuracy"]) or "-"
        wall = _mean_std(row["wall_seconds"])[0]
        wall_text = "-" if math.isnan(wall) else f"{wall:.0f} s"
        lines.append(f"| `{frontend}` | {len(row['seeds'])} | {_pm(row['accuracy'])} "
                     f"| {_pm(row['macro_f1'])} | {per_seed} | {wall_text} |")
    learned = rows.get("log-learn", {})
    if learned.get("alpha"):
        lines += ["", f"log-learn learned alpha = {_pm(learned['alpha'], 1)}, "
                  f"beta = {_pm(learned['beta'], 3)} (initial alpha = e^7 ≈ 1096.6, "
                  f"beta = softplus(1) ≈ 1.313); per seed: "
                  + ", ".join(f"({a:.1f}, {b:.3f})"
                              for a, b in zip(learned["alpha"], learned["beta"], strict=True))]
    return "\n".join(lines) + "\n"


def _finite(value: Any) -> Any:
    """``value`` with NaN floats (nested) as None, for strict JSON."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def record(path: Path, summary: dict[str, Any], info: dict[str, Any]) -> Path:
    """Put this grid's summary into the JSON at ``path`` under its task's name."""
    key = summary["task"] + (" (35)" if summary["task"] == "speech_commands"
                             and summary["classes"] == "35" else "")
    results_json.finish(info)
    entry = {**_finite(summary),
             "driver": {"runs": sum(len(r["seeds"]) for r in summary["frontends"].values()),
                        "trained_now": summary["trained_now"],
                        "wall_seconds": summary["this_invocation_seconds"],
                        "peak_rss_gb": results_json.peak_rss_gb()},
             "description": "mel-CNN from scratch, one front-end and seed per run",
             "machine_load": results_json.load_note(info), "run": info}
    entry["command"] = info["command"]
    return results_json.upsert(path, key, entry)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/datasets/speech_commands")
    parser.add_argument("--task", default="speech_commands")
    parser.add_argument("--classes", default="12", choices=["12", "35"],
                        help="speech_commands task size")
    parser.add_argument("--frontends", nargs="+", default=list(DEFAULT_FRONTENDS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--patience", type=int, default=6)
    parser.add_argument("--max-folds", type=int, default=None,
                        help="fold tasks (esc50, urbansound8k): evaluate the first N folds only")
    parser.add_argument("--runs-dir", default="/work/runs/logcomp")
    parser.add_argument("--markdown", default=None,
                        help="markdown output (default RUNS_DIR/summary.md)")
    parser.add_argument("--aggregate-only", action="store_true",
                        help="do not train; only aggregate the runs on disk")
    parser.add_argument("--json", nargs="?", type=Path,
                        const=results_json.default_path(__file__),
                        help="also record the summary in this JSON file (default "
                             "docs/results/experiment_log_compression.json)")
    args = parser.parse_args(argv)
    info = results_json.run_info(__file__, argv)
    trained_now = 0

    runs_dir = Path(args.runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if not args.aggregate_only:
        for seed in args.seeds:
            for frontend in args.frontends:
                out = run_dir(runs_dir, frontend, seed)
                if (out / "metrics.json").exists():
                    print(f"skip {out} (done)", flush=True)
                    continue
                t0 = time.perf_counter()
                print(f"run {frontend} seed {seed} -> {out}", flush=True)
                metrics = run_one(args.task, args.data, out, frontend, seed, args.epochs,
                                  args.patience, args.classes, args.max_folds)
                trained_now += 1
                print(f"done {frontend} seed {seed}: accuracy {metrics['accuracy']:.4f} "
                      f"macro-F1 {metrics['macro_f1']:.4f} "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
    rows = aggregate(runs_dir, args.frontends, args.seeds)
    table = markdown(rows)
    summary = {"task": args.task, "data": args.data, "classes": args.classes,
               "epochs": args.epochs, "patience": args.patience, "seeds": args.seeds,
               "max_folds": args.max_folds,
               "frontends": rows, "command": " ".join(sys.argv), "trained_now": trained_now,
               "this_invocation_seconds": round(time.perf_counter() - started, 1)}
    (runs_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if args.json:
        print(f"wrote {record(args.json, summary, info)}")
    md_path = Path(args.markdown) if args.markdown else runs_dir / "summary.md"
    md_path.write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
