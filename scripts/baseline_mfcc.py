"""MFCC statistics + logistic regression: the simple baseline beside `zoo finetune` results.

Uses exactly the splits of ``zoo finetune TASK DATA_DIR`` (same readers, test split or test
folds, validation clips) and the same metrics; writes ``OUT/metrics.json`` (the keys of
finetune's, plus ``features`` and ``model_selection``), ``OUT/confusion.png`` and a feature
cache ``OUT/cache/mfcc-<key>.npy`` (a rerun skips the extraction), and prints a one-line
summary. Needs scikit-learn (``pip install 'zoo-audio[finetune]'``).

Usage:
    python scripts/baseline_mfcc.py TASK DATA_DIR [--out DIR] [--classes 12|35] [--seed N]
        [--max-folds N] [--sr HZ] [--c-grid C ...] [--cache-dir DIR] [--quiet]

Example:
    python scripts/baseline_mfcc.py esc50 /data/ESC-50 --out runs/esc50_mfcc
"""

from __future__ import annotations

import argparse
import os
import sys

TASKS = ("genre", "esc50", "urbansound8k", "speech_commands")


def main(argv: list[str] | None = None) -> int:
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
    args = p.parse_args(argv)

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
    return 0


if __name__ == "__main__":
    # OpenBLAS's thread pool makes the tiny logistic regressions 10-100 times slower on a busy
    # machine (0.2 s vs 4-30 s a fit here; a runtime limit does not undo it): one thread unless
    # the caller chose otherwise. Must be set before numpy loads.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    sys.exit(main())
