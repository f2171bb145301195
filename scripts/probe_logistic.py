"""Logistic-regression probe on a finished ``zoo finetune`` run's cached embeddings.

Clip vector = mean and std over the clip's patches of the frozen backbone's embedding; classifier
and C selection as the MFCC baseline (`zoo.finetune.baseline.fit_baseline`), on the same test
split or folds and the same training / validation clips as the run's head. Tells whether the
dense head or the embedding limits a transfer result::

    python scripts/probe_logistic.py esc50 /work/datasets/env_sounds /work/runs/esc50_musicnn
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny fits: thread pools only add waiting

import numpy as np  # noqa: E402


def clip_vectors(values: np.ndarray, clip_index: np.ndarray, n_clips: int) -> np.ndarray:
    """``(n_clips, 2 * dim)``: mean and std of each clip's patch embeddings (zeros if none)."""
    flat = values.reshape(len(values), -1).astype(np.float64)
    counts = np.bincount(clip_index, minlength=n_clips).reshape(-1, 1)
    sums = np.zeros((n_clips, flat.shape[1]))
    squares = np.zeros_like(sums)
    np.add.at(sums, clip_index, flat)
    np.add.at(squares, clip_index, flat**2)
    mean = sums / np.maximum(counts, 1)
    std = np.sqrt(np.maximum(squares / np.maximum(counts, 1) - mean**2, 0.0))
    return np.concatenate([mean, std], axis=1).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task")
    parser.add_argument("data_dir")
    parser.add_argument("run_dir", help="a zoo finetune output folder (with cache/)")
    parser.add_argument("--seed", type=int, default=0, help="the run's --seed")
    args = parser.parse_args(argv)

    from zoo.finetune.baseline import fit_baseline
    from zoo.finetune.runner import FinetuneOptions, fold_splits, read_task

    data = read_task(args.task, args.data_dir, FinetuneOptions(seed=args.seed))
    caches = sorted(Path(args.run_dir, "cache").glob("embeddings-*.npz"))
    if not caches:
        parser.error(f"no cached embeddings in {args.run_dir}/cache")
    with np.load(caches[0], allow_pickle=False) as cache:
        features = clip_vectors(cache["values"], cache["clip_index"], len(data.clips))
    row = {c.key: i for i, c in enumerate(data.clips)}
    labels = data.label_ids(data.clips)

    def rows(clips):
        index = np.array([row[c.key] for c in clips], np.int64)
        return features[index], labels[index]

    if data.folds:
        splits = [(train, valid, test)
                  for _, train, valid, test in fold_splits(data, args.seed)]
    else:
        splits = [(data.split("train"), data.split("valid"), data.split("test"))]
    accuracy = []
    for train, valid, test in splits:
        model, _ = fit_baseline(*rows(train), *rows(valid), seed=args.seed)
        x, y = rows(test)
        accuracy.append(float(np.mean(model.predict(x) == y)))
    print(f"{args.task}: logistic probe on {caches[0].name}: accuracy "
          f"{np.mean(accuracy):.3f} ± {np.std(accuracy):.3f} over {len(accuracy)} split(s): "
          + ", ".join(f"{a:.3f}" for a in accuracy))
    return 0


if __name__ == "__main__":
    sys.exit(main())
