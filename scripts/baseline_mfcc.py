"""MFCC statistics + logistic regression: the simple baseline beside `zoo finetune` results.

Uses exactly the splits of ``zoo finetune TASK DATA_DIR`` (same readers, test split or test
folds, validation clips) and the same metrics; writes ``OUT/metrics.json`` (the keys of
finetune's, plus ``features`` and ``model_selection``), ``OUT/confusion.png`` and a feature
cache ``OUT/cache/mfcc-<key>.npy`` (a rerun skips the extraction), and prints a one-line
summary. Needs scikit-learn (``pip install 'zoo-audio[finetune]'``).

``--json [PATH]`` also records the run under the task's name in PATH (default
docs/results/baseline_mfcc.json; the other tasks' runs are kept): metrics, wall time and peak
memory of the whole command, machine, versions and command line, from which
scripts/make_docs_tables.py writes the tables of docs/results.md and docs/benchmarks.md.

Usage:
    python scripts/baseline_mfcc.py TASK DATA_DIR [--out DIR] [--classes 12|35] [--seed N]
        [--max-folds N] [--sr HZ] [--c-grid C ...] [--cache-dir DIR] [--quiet] [--json [PATH]]

Example:
    python scripts/baseline_mfcc.py esc50 /data/ESC-50 --out runs/esc50_mfcc
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import results_json  # noqa: E402

TASKS = ("genre", "esc50", "urbansound8k", "speech_commands")


def record(path: Path, args: argparse.Namespace, metrics: dict, info: dict,
           started: float) -> Path:
    """Put this run into the JSON at ``path`` under its task's name (plus its non-defaults)."""
    key = args.task + (f" ({args.classes})" if args.task == "speech_commands"
                       and args.classes != "12" else "")
    key += "".join(f", {name} {value}" for name, value in
                   (("sr", args.sr), ("seed", args.seed or None), ("max-folds", args.max_folds))
                   if value is not None)
    results_json.finish(info)
    entry = {
        "command": info["command"], "task": args.task,
        **({"classes": args.classes} if args.task == "speech_commands" else {}),
        "evaluation": results_json.evaluation(metrics), **results_json.scores(metrics),
        "evaluated_on": metrics.get("evaluated_on"),
        "model_selection": metrics.get("model_selection"),
        "command_wall_seconds": round(time.perf_counter() - started, 1),
        "feature_seconds": metrics.get("feature_seconds"),
        "peak_rss_gb": results_json.peak_rss_gb(),
        "description": "MFCC statistics + logistic regression",
        "machine_load": results_json.load_note(info), "run": info,
    }
    return results_json.upsert(path, key, entry)


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("task", choices=TASKS)
    p.add_argument("data_dir", help="the dataset's root, as for zoo finetune")
    p.add_argument("--out", help="output folder (default runs/<task>_mfcc_baseline)")
    p.add_argument("--classes", choices=("12", "35"), default="12",
                   help="speech_commands task (as zoo finetune --classes)")
    p.add_argument("--seed", type=int, default=0,
                   help="the zoo finetune --seed whose splits are used (default 0)")
    p.add_argument("--max-folds", type=int, default=None, help="only the first N folds")
    p.add_argument("--sr", type=int, default=None,
                   help="sample rate of the features (default: 16000 for speech_commands, "
                        "22050 otherwise)")
    p.add_argument("--c-grid", type=float, nargs="+", default=None,
                   help="logistic-regression C values tried on the validation clips")
    p.add_argument("--cache-dir", default=None, help="feature cache (default OUT/cache)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", nargs="?", type=Path, const=results_json.default_path(__file__),
                   help="also record the run in this JSON file (default "
                        "docs/results/baseline_mfcc.json)")
    args = p.parse_args(argv)
    info = results_json.run_info(__file__, argv, ("numpy", "scikit-learn", "tensorflow"))

    from zoo.errors import ZooError
    from zoo.finetune.baseline import C_GRID, BaselineOptions, run_baseline, summary_line

    options = BaselineOptions(seed=args.seed, speech_task=args.classes,
                              max_folds=args.max_folds, grid=tuple(args.c_grid or C_GRID),
                              sample_rate=args.sr, cache_dir=args.cache_dir,
                              progress=not args.quiet)
    out = args.out or f"runs/{args.task}_mfcc_baseline"
    try:
        metrics = run_baseline(args.task, args.data_dir, out, options)
    except (ZooError, FileNotFoundError, ValueError, ImportError) as err:
        print(f"baseline_mfcc: {err}", file=sys.stderr)
        return 2
    print(f"{out}: {summary_line(metrics)}")
    if args.json:
        print(f"wrote {record(args.json, args, metrics, info, started)}")
    return 0


if __name__ == "__main__":
    # OpenBLAS's thread pool makes the tiny logistic regressions 10-100 times slower on a busy
    # machine (0.2 s vs 4-30 s a fit here; a runtime limit does not undo it): one thread unless
    # the caller chose otherwise. Must be set before numpy loads.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    sys.exit(main())
