"""HEAR's own evaluation kit (heareval) on zoo's HEAR modules, over tasks in HEAR's format built
from the stand-in datasets of scripts/datasets/.

1. Tasks: each dataset given becomes a HEAR scene task (``task_metadata.json``,
   ``labelvocabulary.csv``, one ``<split>.json`` of labels per split, the audio resampled to
   16 kHz under ``16000/<split>/``), with the dataset's own splits: ESC-50 layout -> 5
   ``presplit_kfold`` folds (grouped by source recording, as ESC-50's); GTZAN layout with
   ``train/valid/test.txt`` -> ``trainvaltest`` (split by track); Speech Commands layout ->
   ``trainvaltest`` from its validation and testing lists (split by speaker).
2. ``python -m heareval.embeddings.runner zoo.hear.<preset>`` for each module (scene
   embeddings: `zoo.hear`), then ``python -m heareval.predictions.runner`` (HEAR's shallow MLP,
   model selection on the validation split by random grid search over ``--grid``, test top-1
   accuracy; for k folds, each fold is the test split once).
3. The test scores per module and task go to docs/results/eval_hear.json (``--json``).

These are not HEAR's datasets: the scores are not comparable to HEAR's leaderboard.

Setup (heareval 2021.1.3 pins numpy 1.19 and numba 0.48, which Python 3.11 cannot have, so it is
installed without its pins; the parts used here run on current numpy):
    pip install 'zoo-audio[hear]' && pip install --no-deps heareval==2021.1.3
    pip install 'pytorch-lightning<2' 'setuptools<81' intervaltree more-itertools \
        python-slugify torchinfo pandas dcase-util sed-eval

Usage:
    python scripts/eval_hear.py --esc50 /work/datasets/env_sounds --work /work/hear --json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))

import results_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("zoo.hear.musicnn_msd", "zoo.hear.musicnn_mtt", "zoo.hear.vgg_msd",
           "zoo.hear.samplecnn_msd_distilled", "zoo.hear.mfcc")
SR = 16000


def write_task(out: Path, name: str, split_mode: str, splits: dict[str, list[tuple[Path, str]]],
               duration: float) -> Path:
    """One HEAR scene task: metadata, label vocabulary, label files and 16 kHz audio."""
    from zoo.audio import load

    task = out / name
    labels = sorted({label for rows in splits.values() for _, label in rows})
    meta = {"task_name": name, "version": "zoo-stand-in", "embedding_type": "scene",
            "prediction_type": "multiclass", "split_mode": split_mode,
            "splits": sorted(splits), "nfolds": len(splits) if "kfold" in split_mode else None,
            "sample_duration": duration, "evaluation": ["top1_acc"], "default_mode": "full"}
    done = task / ".zoo-task.json"
    if done.is_file() and json.loads(done.read_text()) == meta:
        return task
    (task / f"{SR}").mkdir(parents=True, exist_ok=True)
    with open(task / "labelvocabulary.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["idx", "label"])
        writer.writerows(enumerate(labels))
    for split, rows in splits.items():
        folder = task / f"{SR}" / split
        folder.mkdir(parents=True, exist_ok=True)
        entries = {}
        for path, label in rows:
            name_in_task = f"{label}-{path.name}"  # unique: Speech Commands reuses names
            audio = load(path, sr=SR)
            n = int(round(duration * SR))  # HEAR's tasks hold clips of one length
            audio = np.pad(audio[:n], (0, max(0, n - audio.size)))
            sf.write(folder / name_in_task, audio, SR, subtype="PCM_16")
            entries[name_in_task] = [label]
        (task / f"{split}.json").write_text(json.dumps(entries, indent=1))
    (task / "task_metadata.json").write_text(json.dumps(meta, indent=1))
    done.write_text(json.dumps(meta))
    return task


def esc50_task(root: Path, out: Path) -> Path:
    with open(root / "meta" / "esc50.csv") as f:
        rows = list(csv.DictReader(f))
    splits: dict[str, list] = {}
    for row in rows:
        splits.setdefault(f"fold{int(row['fold']) - 1:02d}", []).append(
            (root / "audio" / row["filename"], row["category"]))
    return write_task(out, "zoo-env-sounds", "presplit_kfold", splits, 5.0)


def gtzan_task(root: Path, out: Path) -> Path:
    splits = {}
    for split in ("train", "valid", "test"):
        names = (root / f"{split}.txt").read_text().split()
        # Lines are "genres/<label>/<file>" (GTZAN's own lists: "<label>/<file>").
        paths = [root / n if (root / n).is_file() else root / "genres" / n for n in names]
        splits[split] = [(p, p.parent.name) for p in paths]
    return write_task(out, "zoo-music-styles", "trainvaltest", splits, 30.0)


def speech_task(root: Path, out: Path) -> Path:
    listed = {split: set((root / f"{name}_list.txt").read_text().split())
              for split, name in (("valid", "validation"), ("test", "testing"))}
    splits: dict[str, list] = {"train": [], "valid": [], "test": []}
    for wav in sorted(root.glob("*/*.wav")):
        if wav.parent.name.startswith("_"):
            continue
        key = f"{wav.parent.name}/{wav.name}"
        split = next((s for s, names in listed.items() if key in names), "train")
        splits[split].append((wav, wav.parent.name))
    return write_task(out, "zoo-speech-commands", "trainvaltest", splits, 1.0)


def run(cmd: list[str], log: Path) -> None:
    # heareval reloads the Lightning checkpoints it has just written itself with torch.load,
    # which PyTorch >= 2.6 refuses by default for their pickled modules: allow it for these.
    env = {**os.environ, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}; see {log}")


EMBEDDED = re.compile(r"computed embeddings in ([0-9.]+) sec .* for (\S+) using (\S+)")


def embedding_seconds(log: Path, module: str, task: str) -> float | None:
    """heareval's own timing of the last embedding run of ``module`` on ``task`` (runs that
    found the embeddings done leave none, so a rerun keeps the first figure)."""
    found = None
    for match in EMBEDDED.finditer(log.read_text(errors="replace") if log.is_file() else ""):
        if match.group(2) == task and match.group(3) == module:
            found = round(float(match.group(1)), 1)
    return found


def evaluate(modules: Iterable[str], tasks: list[Path], work: Path, grid: str,
             grid_points: int) -> dict:
    results: dict = {}
    for module in modules:
        for task in tasks:
            run([sys.executable, "-m", "heareval.embeddings.runner", module, "--tasks-dir",
                 str(task.parent), "--task", task.name, "--embeddings-dir",
                 str(work / "embeddings")], work / "hear.log")
        for task in tasks:
            emb = work / "embeddings" / module / task.name
            predicted_before = (emb / "prediction-done.json").is_file()  # heareval skips it
            t = time.perf_counter()
            run([sys.executable, "-m", "heareval.predictions.runner", str(emb), "--grid", grid,
                 "--grid-points", str(grid_points)], work / "hear.log")
            timing = emb / ".zoo-predict-seconds.json"
            if not predicted_before:
                timing.write_text(json.dumps(round(time.perf_counter() - t, 1)))
            scores = json.loads((emb / "test.predicted-scores.json").read_text())
            results.setdefault(module, {})[task.name] = {
                "scores": scores.get("aggregated_scores", scores),
                "embedding_seconds": embedding_seconds(work / "hear.log", module, task.name),
                "predict_seconds": json.loads(timing.read_text()) if timing.is_file() else None}
        print(f"{module}: " + ", ".join(
            f"{task.name} {results[module][task.name]['scores']}" for task in tasks), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--esc50", type=Path, help="ESC-50-layout stand-in (env sounds)")
    parser.add_argument("--gtzan", type=Path, help="GTZAN-layout stand-in with split lists")
    parser.add_argument("--speech", type=Path, help="Speech Commands-layout stand-in")
    parser.add_argument("--work", type=Path, default=Path("hear_work"))
    parser.add_argument("--modules", nargs="+", default=list(MODULES))
    parser.add_argument("--grid", default="default", choices=("default", "fast", "faster"))
    parser.add_argument("--grid-points", type=int, default=8)
    parser.add_argument("--json", nargs="?", type=Path, const=results_json.default_path(__file__),
                        help="write docs/results/eval_hear.json (or this path)")
    args = parser.parse_args(argv)
    info = results_json.run_info(__file__, argv, results_json.DEFAULT_PACKAGES + (
        "torch", "heareval", "pytorch-lightning"))
    args.work.mkdir(parents=True, exist_ok=True)
    tasks_dir = args.work / "tasks"
    tasks = []
    if args.esc50:
        tasks.append(esc50_task(args.esc50, tasks_dir))
    if args.gtzan:
        tasks.append(gtzan_task(args.gtzan, tasks_dir))
    if args.speech:
        tasks.append(speech_task(args.speech, tasks_dir))
    if not tasks:
        parser.error("give at least one of --esc50, --gtzan, --speech")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    results = evaluate(args.modules, tasks, args.work, args.grid, args.grid_points)
    if args.json:
        report = {**results_json.finish(info), "grid": args.grid, "grid_points": args.grid_points,
                  "tasks": {t.name: json.loads((t / "task_metadata.json").read_text())
                            for t in tasks}, "results": results}
        print(f"wrote {results_json.write(args.json, report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
