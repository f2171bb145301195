"""Distil `musicnn_msd` into a narrow sampleCNN on real music: the `samplecnn_msd_distilled` preset.

There are no public sampleCNN weights to convert, so the student learns the teacher's tag
probabilities from the raw waveform (knowledge distillation; no human tags are used):

- Data: the ``music_styles`` clips (30 s excerpts of Debian game-music packages, tracks.csv with the
  split already made by track), decoded and resampled to 16 kHz, the teacher's rate, so that both
  models hear the same samples.
- Teacher targets: ``musicnn_msd`` on 3-s windows (48,128 samples), one every ``TEACHER_HOP`` =
  8,192 samples (0.512 s): all of them for the train clips, those the fixed excerpts cover for
  the valid and test clips; tag probabilities and the 200-d ``penultimate`` embedding are cached
  per clip (``--out/cache``; an interrupted run resumes).
- Student excerpts: 59,049 samples (3.69 s) starting ``s`` samples before a teacher window, with
  ``0 <= s <= 2,729``, so that exactly two consecutive teacher windows lie inside the excerpt
  (95 % of it); the target is the mean of their probabilities. Training draws a random clip,
  window and ``s`` for every example (a fresh sample each epoch, reproducible from ``--seed``).
- Loss: binary cross-entropy against those soft targets, nothing else. Adam, learning rate
  halved when the validation loss stalls, early stopping on the validation loss (fixed excerpts
  of the *valid* tracks) with the best weights restored. Interrupted training resumes from its
  last finished epoch (``--out/backup``; the early-stopping memory of earlier epochs is lost).
- Report (``--out/metrics.json``), on fixed non-overlapping excerpts of the *test* tracks:
  macro ROC-AUC of the student's scores against the teacher's binarised tags (its top-3 per
  excerpt; also ``p >= 0.5``), Pearson correlation of student and teacher probabilities (all
  values, and the mean over tags of the per-tag correlation), top-5 overlap, each next to a
  constant baseline (the teacher's mean training-set probabilities); and the style accuracy of
  a logistic-regression probe on the student's ``embedding`` vs the teacher's ``penultimate``
  (trained on the train tracks' excerpts, tested on the test tracks').

Usage (the published preset; numbers and timings in docs/results.md):
    nice -n 10 python scripts/distill_samplecnn.py --data /work/datasets/music_styles \
        --out /work/runs/samplecnn_distill --width 0.25 --epochs 40 --steps 80 --batch-size 16 \
        --patience 6 --max-minutes 35 --seed 0 [--targets-only | --publish]

``--json [PATH]`` also writes the report, with the machine, versions and command line, to PATH
(default docs/results/distill_samplecnn.json), from which scripts/make_docs_tables.py writes the
tables of docs/results.md. ``--targets-only`` fills the teacher cache and stops. A run finds
``--out/student.weights.h5`` and skips training (``--retrain`` forces it). ``--publish`` writes
``weights/samplecnn_msd_distilled.{weights.h5,json}`` (sha256 filled in, the test numbers in its
metrics and notes); ``python scripts/make_model_cards.py`` then writes its card.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import results_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRESET = "samplecnn_msd_distilled"
TEACHER = "musicnn_msd"
SAMPLE_RATE = 16000
TEACHER_HOP = 8192


@dataclass(frozen=True)
class Geometry:
    """How student excerpts sit on the grid of teacher windows (all in samples)."""

    student: int = 59049
    teacher: int = 48128
    hop: int = TEACHER_HOP

    @property
    def per_excerpt(self) -> int:
        """Teacher windows inside one student excerpt."""
        return 1 + (self.student - self.teacher) // self.hop

    @property
    def jitter(self) -> int:
        """Largest shift of an excerpt's start before its first teacher window."""
        return self.student - (self.per_excerpt - 1) * self.hop - self.teacher

    def n_windows(self, n_samples: int) -> int:
        """Teacher windows of a clip of ``n_samples``."""
        return 0 if n_samples < self.teacher else 1 + (n_samples - self.teacher) // self.hop

    def last_window(self, n_samples: int) -> int:
        """Last teacher window that can start an excerpt (-1 if the clip is too short)."""
        return self.n_windows(n_samples) - self.per_excerpt if n_samples >= self.student else -1

    def start(self, k: int, shift: int, n_samples: int) -> int:
        """Excerpt start for window ``k`` and a requested shift, clamped into the clip."""
        low = max(0, k * self.hop + self.student - n_samples)
        return k * self.hop - min(max(shift, low), min(self.jitter, k * self.hop))


# ---------------------------------------------------------------------------------- data


@dataclass
class Clips:
    """The clips of one dataset: 16 kHz signals, labels, tracks and splits."""

    paths: list[str]
    labels: list[str]
    tracks: list[str]
    splits: list[str]
    signals: list[np.ndarray]
    packages: list[str]  # "package (licence)" per clip, from sources.csv when there is one

    def index(self, split: str) -> list[int]:
        return [i for i, s in enumerate(self.splits) if s == split]


def read_clips(data: Path, sample_rate: int = SAMPLE_RATE, limit: int | None = None) -> Clips:
    """tracks.csv (path,label,track,split) and the decoded, resampled audio of every clip."""
    from zoo import audio

    with open(data / "tracks.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if limit:  # `limit` clips of each split, spread over it (so over the styles)
        by_split = [[r for r in rows if r["split"] == s] for s in ("train", "valid", "test")]
        rows = [r for part in by_split for r in part[:: max(1, len(part) // limit)][:limit]]
    sources: dict[str, str] = {}
    if (data / "sources.csv").is_file():
        with open(data / "sources.csv", newline="", encoding="utf-8") as f:
            sources = {r["clip"]: f"{r['package']} ({r['licence']})" for r in csv.DictReader(f)}
    started = time.perf_counter()
    signals = [audio.load(str(data / r["path"]), sr=sample_rate) for r in rows]
    log(f"audio: {len(rows)} clips, {sum(map(len, signals)) / sample_rate / 3600:.2f} h at "
        f"{sample_rate} Hz, decoded in {time.perf_counter() - started:.0f} s")
    return Clips([r["path"] for r in rows], [r["label"] for r in rows],
                 [r["track"] for r in rows], [r["split"] for r in rows], signals,
                 [sources.get(r["path"], "unknown") for r in rows])


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------- teacher


def teacher_model():
    """``musicnn_msd`` with two outputs: tag probabilities and the ``penultimate`` embedding."""
    import keras

    import zoo
    from zoo.models.pipeline import wrap_waveform

    loaded = zoo.load(TEACHER)
    backbone = loaded.zoo_backbone
    view = keras.Model(backbone.input, [backbone.output,
                                        backbone.get_layer("penultimate").output])
    model = wrap_waveform(loaded.zoo_preset, view, name="teacher")
    model.zoo_preset = loaded.zoo_preset
    return model


def windows_of(signal: np.ndarray, geometry: Geometry) -> np.ndarray:
    n = geometry.n_windows(len(signal))
    view = np.lib.stride_tricks.sliding_window_view(signal, geometry.teacher)
    return np.ascontiguousarray(view[: (n - 1) * geometry.hop + 1: geometry.hop])


def teacher_targets(clips: Clips, geometry: Geometry, cache_dir: Path, batch_size: int = 32,
                    needed: dict[int, np.ndarray] | None = None
                    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per clip: the teacher's probabilities ``(windows, 50)`` and ``penultimate`` ``(windows,
    200)`` on its window grid. One cache file per clip, so an interrupted run resumes.

    ``needed`` maps a clip index to the windows to compute (default: all); rows not computed
    are NaN (the fixed valid/test excerpts need a few windows of their clips only).
    """
    from zoo.hub import file_sha256
    from zoo.presets import get_preset, shipped_dir

    config = get_preset(TEACHER)
    key = hashlib.sha256(json.dumps({
        "teacher": file_sha256(shipped_dir() / config.weights.file),
        "geometry": [geometry.teacher, geometry.hop], "sr": SAMPLE_RATE,
    }).encode()).hexdigest()[:16]
    folder = cache_dir / f"teacher-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    model, fn = None, None
    probs, embs = [], []
    started, done = time.perf_counter(), 0
    for i, (path, signal) in enumerate(zip(clips.paths, clips.signals, strict=True)):
        name = hashlib.sha256(path.encode()).hexdigest()[:16]
        file = folder / f"{name}.npz"
        n = geometry.n_windows(len(signal))
        want = np.arange(n) if needed is None or i not in needed else np.asarray(needed[i])
        p = np.full((n, 50), np.nan, np.float32)
        e = np.full((n, 200), np.nan, np.float32)
        if file.is_file():
            with np.load(file) as cached:
                p, e = cached["probs"], cached["emb"]
        missing = want[~np.isfinite(p[want, 0])]
        if not missing.size:
            probs.append(p)
            embs.append(e)
            continue
        if model is None:
            import tensorflow as tf

            model = teacher_model()
            fn = tf.function(lambda x, m=model: m(x, training=False), reduce_retracing=True)
        windows = windows_of(signal, geometry)[missing]
        outs = [fn(windows[j: j + batch_size]) for j in range(0, len(windows), batch_size)]
        p, e = p.copy(), e.copy()
        p[missing] = np.concatenate([np.asarray(o[0]) for o in outs])
        e[missing] = np.concatenate([np.asarray(o[1]) for o in outs])
        tmp = folder / f".{name}.tmp.npz"
        np.savez(tmp, probs=p, emb=e)
        os.replace(tmp, file)
        probs.append(p)
        embs.append(e)
        done += 1
        if done % 25 == 0:
            rate = done / (time.perf_counter() - started)
            log(f"teacher: {i + 1}/{len(clips.paths)} clips ({rate:.2f} clips/s)")
    if done:
        log(f"teacher: {done} clips computed in {time.perf_counter() - started:.0f} s, "
            f"{len(clips.paths) - done} cached ({folder})")
    return probs, embs


# ------------------------------------------------------------------------------- student


def student_config(width: float) -> dict:
    """Architecture arguments of the 3^9 sampleCNN with every filter count scaled by ``width``."""
    from zoo.models.samplecnn import EMBEDDING_UNITS, PAPER_FILTERS, STEM_FILTERS

    def scale(n: int) -> int:
        return max(1, round(n * width))

    return {"depth": len(PAPER_FILTERS), "filters": [scale(f) for f in PAPER_FILTERS],
            "stem_filters": scale(STEM_FILTERS), "embedding_units": scale(EMBEDDING_UNITS),
            "dropout": 0.5, "bn_momentum": 0.9}


def fixed_excerpts(signals: list[np.ndarray], targets: list[np.ndarray] | None,
                   geometry: Geometry, step: int | None = None, per_clip: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Deterministic excerpts: every ``step`` windows, or ``per_clip`` evenly spaced ones.

    Returns:
        ``(x (n, student), targets (n, tags) or None, clip index (n,), first window (n,))``.
    """
    xs, ys, clip, first = [], [], [], []
    for c, signal in enumerate(signals):
        for k in excerpt_windows(len(signal), geometry, step, per_clip):
            start = geometry.start(int(k), 0, len(signal))
            xs.append(signal[start: start + geometry.student])
            if targets is not None:
                ys.append(targets[c][k: k + geometry.per_excerpt].mean(axis=0))
            clip.append(c)
            first.append(int(k))
    y = np.stack(ys).astype(np.float32) if targets is not None else None
    return np.stack(xs).astype(np.float32), y, np.asarray(clip), np.asarray(first)


def excerpt_windows(n_samples: int, geometry: Geometry, step: int | None = None,
                    per_clip: int | None = None) -> np.ndarray:
    """First windows of the fixed excerpts of a clip (see `fixed_excerpts`)."""
    last = geometry.last_window(n_samples)
    if last < 0:
        return np.zeros(0, int)
    if per_clip:
        return np.unique(np.linspace(0, last, per_clip).round().astype(int))
    return np.arange(0, last + 1, step or 1)


def needed_windows(n_samples: int, geometry: Geometry, step: int | None = None,
                   per_clip: int | None = None) -> np.ndarray:
    """Every teacher window that the fixed excerpts of a clip cover."""
    ks = excerpt_windows(n_samples, geometry, step, per_clip)
    return np.unique((ks[:, None] + np.arange(geometry.per_excerpt)).ravel())


def excerpt_targets(targets: list[np.ndarray], clip: np.ndarray, first: np.ndarray,
                    geometry: Geometry) -> np.ndarray:
    """Mean teacher output (probabilities or embeddings) over each excerpt's windows."""
    return np.stack([targets[c][k: k + geometry.per_excerpt].mean(axis=0)
                     for c, k in zip(clip, first, strict=True)]).astype(np.float32)


def make_batches(signals, targets, geometry: Geometry, batch_size: int, steps: int, seed: int):
    """A Keras dataset of random excerpts and their soft targets; batch ``i`` of epoch ``e`` is
    a function of ``(seed, e, i)`` only (set ``.epoch``; `train_student` does)."""
    import keras

    usable = [c for c, s in enumerate(signals) if geometry.last_window(len(s)) >= 0]
    if not usable:
        raise ValueError(f"no clip holds one excerpt of {geometry.student} samples")

    class ExcerptBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = 0

        def __len__(self) -> int:
            return steps

        def __getitem__(self, index: int):
            rng = np.random.default_rng([seed, self.epoch, index])
            x = np.empty((batch_size, geometry.student), np.float32)
            y = np.empty((batch_size, targets[usable[0]].shape[1]), np.float32)
            for j, c in enumerate(rng.choice(usable, size=batch_size)):
                n = len(signals[c])
                k = int(rng.integers(geometry.last_window(n) + 1))
                start = geometry.start(k, int(rng.integers(geometry.jitter + 1)), n)
                x[j] = signals[c][start: start + geometry.student]
                y[j] = targets[c][k: k + geometry.per_excerpt].mean(axis=0)
            return x, y

    return ExcerptBatches()


def train_student(model, train: tuple[list, list], valid: tuple[np.ndarray, np.ndarray], *,
                  geometry: Geometry, epochs: int, steps_per_epoch: int, batch_size: int = 16,
                  learning_rate: float = 1e-3, patience: int = 6, seed: int = 0,
                  workdir: Path | None = None, max_seconds: float | None = None,
                  verbose: int = 2) -> dict[str, list[float]]:
    """Fit ``model`` (waveform -> sigmoid tags) to the teacher's soft targets.

    Args:
        model: the student, uncompiled.
        train: ``(signals, per-clip teacher probabilities on the window grid)``.
        valid: ``(x, y)`` fixed validation excerpts and their targets.
        geometry: excerpt / window layout.
        epochs, steps_per_epoch, batch_size, learning_rate: the schedule (the learning rate
            halves after 2 epochs without a better validation loss).
        patience: early stopping on the validation loss (best weights restored).
        seed: batches are drawn from ``(seed, epoch, step)``.
        workdir: where to keep the resumable backup and ``history.csv`` (None: nothing kept).
        max_seconds: stop after the epoch that would make the next one end past this budget
            (the best epoch's weights are still restored).
        verbose: Keras fit verbosity (2: one line per epoch).

    Returns:
        The Keras history (``loss``, ``val_loss``, ``learning_rate`` per epoch).
    """
    import keras

    batches = make_batches(*train, geometry, batch_size, steps_per_epoch, seed)

    class SyncEpoch(keras.callbacks.Callback):
        """Seeds the epoch's batches (also right after a resume) and keeps the time budget."""

        def on_train_begin(self, logs=None):
            self.started = time.perf_counter()

        def on_epoch_begin(self, epoch, logs=None):
            batches.epoch = epoch
            self.epoch_started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            now = time.perf_counter()
            if max_seconds and now - self.started + (now - self.epoch_started) > max_seconds:
                log(f"train: time budget of {max_seconds:.0f} s reached after epoch {epoch + 1}")
                self.model.stop_training = True

    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.BinaryCrossentropy())
    callbacks = [
        SyncEpoch(),
        keras.callbacks.ReduceLROnPlateau("val_loss", factor=0.5, patience=2, verbose=0),
        keras.callbacks.EarlyStopping("val_loss", patience=patience, restore_best_weights=True),
    ]
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        callbacks += [keras.callbacks.CSVLogger(str(workdir / "history.csv"), append=True),
                      keras.callbacks.BackupAndRestore(str(workdir / "backup"))]
    history = model.fit(batches, validation_data=valid, epochs=epochs, callbacks=callbacks,
                        verbose=verbose, validation_batch_size=32)
    return {k: [float(v) for v in vs] for k, vs in history.history.items()}


def predict(model, x: np.ndarray, batch_size: int = 32):
    return model.predict(x, batch_size=batch_size, verbose=0)


# ---------------------------------------------------------------------------- evaluation


def agreement(student: np.ndarray, teacher: np.ndarray, top_k: int = 3,
              baseline: np.ndarray | None = None) -> dict:
    """How closely student probabilities follow the teacher's, excerpt by excerpt.

    ROC-AUC: per tag, the student's scores against the teacher's binarised tags (its ``top_k``
    tags of each excerpt are the positives; also ``p >= 0.5``), averaged over the tags that
    have both positives and negatives. Pearson: over all values, and per tag (mean over tags
    whose teacher values vary). Top-5 overlap: mean fraction of the teacher's top-5 tags that
    are in the student's top 5. ``baseline`` (one probability per tag, e.g. the teacher's
    training mean) is scored the same way where that means something.
    """
    from sklearn.metrics import roc_auc_score

    n, n_tags = teacher.shape
    top = np.argsort(-teacher, axis=1)[:, :top_k]
    positives = {f"top{top_k}": np.zeros_like(teacher, bool), "p>=0.5": teacher >= 0.5}
    positives[f"top{top_k}"][np.arange(n)[:, None], top] = True
    out: dict = {"excerpts": int(n)}
    for name, y in positives.items():
        tags = [j for j in range(n_tags) if 0 < y[:, j].sum() < n]
        aucs = [roc_auc_score(y[:, j], student[:, j]) for j in tags]
        out[f"roc_auc_{name}"] = float(np.mean(aucs)) if aucs else None
        out[f"roc_auc_{name}_tags"] = len(tags)
    out["pearson_all"] = float(np.corrcoef(student.ravel(), teacher.ravel())[0, 1])
    varying = [j for j in range(n_tags) if teacher[:, j].std() > 0 and student[:, j].std() > 0]
    per_tag = [np.corrcoef(student[:, j], teacher[:, j])[0, 1] for j in varying]
    out["pearson_per_tag_mean"] = float(np.mean(per_tag))
    out["pearson_per_tag_median"] = float(np.median(per_tag))
    out["top5_overlap"] = top_overlap(student, teacher, 5)
    out["mean_abs_error"] = float(np.abs(student - teacher).mean())
    # The training loss on these excerpts, and its floor (the teacher's own entropy).
    out["bce"] = bce(teacher, student)
    out["bce_floor"] = bce(teacher, teacher)
    if baseline is not None:
        constant = np.broadcast_to(baseline, teacher.shape)
        out["baseline_constant"] = {
            "pearson_all": float(np.corrcoef(constant.ravel(), teacher.ravel())[0, 1]),
            "top5_overlap": top_overlap(constant, teacher, 5),
            "mean_abs_error": float(np.abs(constant - teacher).mean()),
            "bce": bce(teacher, constant),
            "roc_auc": 0.5,
        }
    return out


def bce(target: np.ndarray, pred: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of ``pred`` against soft ``target`` (Keras' clipping)."""
    p = np.clip(pred.astype(np.float64), eps, 1 - eps)
    return float(-np.mean(target * np.log(p) + (1 - target) * np.log(1 - p)))


def top_overlap(a: np.ndarray, b: np.ndarray, k: int) -> float:
    top_a = np.argsort(-a, axis=1, kind="stable")[:, :k]
    top_b = np.argsort(-b, axis=1, kind="stable")[:, :k]
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(top_a, top_b, strict=True)]))


def probe(train_x, train_y, test_x, test_y, test_clip, seed: int = 0) -> dict:
    """Style accuracy of a logistic regression on excerpt embeddings (standardised), per
    excerpt and per clip (mean of the clip's excerpt probabilities)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(set(train_y)) < 2:
        return {"skipped": "fewer than 2 styles in the training excerpts"}
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.1,
                                                             random_state=seed))
    clf.fit(train_x, train_y)
    proba = clf.predict_proba(test_x)
    classes = clf.classes_
    excerpt_acc = float(np.mean(classes[proba.argmax(1)] == test_y))
    clips = np.unique(test_clip)
    clip_pred = [classes[proba[test_clip == c].mean(0).argmax()] for c in clips]
    clip_true = [test_y[test_clip == c][0] for c in clips]
    return {"excerpt_accuracy": excerpt_acc, "excerpts": len(test_y),
            "clip_accuracy": float(np.mean(np.asarray(clip_pred) == np.asarray(clip_true))),
            "clips": len(clips)}


# ------------------------------------------------------------------------------- publish


def publish(student, architecture_config: dict, metrics: dict, run: dict,
            weights_dir: Path = ROOT / "weights") -> Path:
    """Write ``weights/samplecnn_msd_distilled.{weights.h5,json}`` from the trained student."""
    from zoo.hub import file_sha256
    from zoo.models.pipeline import build_backbone
    from zoo.presets import Preprocessing, PresetConfig, WeightsRef, get_preset

    teacher = get_preset(TEACHER)
    weights_dir.mkdir(parents=True, exist_ok=True)
    file = f"{PRESET}.weights.h5"
    config = PresetConfig(
        name=PRESET,
        description=(f"sampleCNN (raw waveform; the 3^9 model, filters x {run['width']:g}) "
                     f"distilled from {TEACHER} on {run['train_hours']:.1f} h of free game "
                     "music: 50 MSD tags"),
        architecture="samplecnn",
        architecture_config=architecture_config,
        preprocessing=Preprocessing.waveform(SAMPLE_RATE, student.input_shape[-1]),
        tags=teacher.tags,
        weights=WeightsRef(file=file),
        license="ISC",
        source=run["source"],
        metrics=metrics,
    )
    backbone = build_backbone(config)
    backbone.set_weights(student.get_weights())
    tmp = weights_dir / f".tmp-{file}"
    backbone.save_weights(str(tmp))
    os.replace(tmp, weights_dir / file)
    sha = file_sha256(weights_dir / file)
    config = PresetConfig(**{**config.__dict__, "weights": WeightsRef(file=file, sha256=sha)})
    (weights_dir / f"{PRESET}.json").write_text(config.to_json(), encoding="utf-8")
    return weights_dir / f"{PRESET}.json"


# ---------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/datasets/music_styles"))
    parser.add_argument("--out", type=Path, default=Path("/work/runs/samplecnn_distill"))
    parser.add_argument("--width", type=float, default=0.25,
                        help="filters of the paper's 3^9 model times this")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--steps", type=int, default=90, help="batches per epoch")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=6)
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="training time budget (stops after the epoch that reaches it)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--valid-per-clip", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=None,
                        help="teacher cache folder (default: --out/cache)")
    parser.add_argument("--weights-dir", type=Path, default=ROOT / "weights",
                        help="where --publish writes the preset")
    parser.add_argument("--limit", type=int, default=None,
                        help="first N clips of each split (smoke runs)")
    parser.add_argument("--targets-only", action="store_true",
                        help="fill the teacher cache and stop")
    parser.add_argument("--retrain", action="store_true",
                        help="train even if --out/student.weights.h5 exists")
    parser.add_argument("--publish", action="store_true",
                        help=f"write weights/{PRESET}.{{weights.h5,json}}")
    parser.add_argument("--json", nargs="?", type=Path, const=results_json.default_path(__file__),
                        help="also write the report to this JSON file (default "
                             "docs/results/distill_samplecnn.json)")
    args = parser.parse_args(argv)
    info = results_json.run_info(__file__, argv, ("tensorflow", "keras", "numpy",
                                                  "scikit-learn"))
    wall = time.perf_counter()
    geometry = Geometry()
    clips = read_clips(args.data, limit=args.limit)
    step = math.ceil(geometry.student / geometry.hop)  # non-overlapping test excerpts
    # Train clips: every window (random excerpts); valid and test clips: the fixed excerpts'.
    needed = {i: needed_windows(len(clips.signals[i]), geometry, per_clip=args.valid_per_clip)
              for i in clips.index("valid")}
    needed.update({i: needed_windows(len(clips.signals[i]), geometry, step=step)
                   for i in clips.index("test")})
    probs, embs = teacher_targets(clips, geometry, args.cache or args.out / "cache",
                                  needed=needed)
    if args.targets_only:
        return 0

    import keras

    from zoo.models.samplecnn import build_samplecnn

    split = {s: clips.index(s) for s in ("train", "valid", "test")}
    train = ([clips.signals[i] for i in split["train"]], [probs[i] for i in split["train"]])
    xv, yv, _, _ = fixed_excerpts([clips.signals[i] for i in split["valid"]],
                                  [probs[i] for i in split["valid"]], geometry,
                                  per_clip=args.valid_per_clip)
    keras.utils.set_random_seed(args.seed)
    arch = student_config(args.width)
    student = build_samplecnn(n_tags=probs[0].shape[1], n_samples=geometry.student, **arch)
    log(f"student: width {args.width}, {student.count_params():,} parameters, {arch}")
    weights = args.out / "student.weights.h5"
    history_file = args.out / "history.json"
    if weights.is_file() and not args.retrain:
        student.load_weights(str(weights))
        log(f"student: trained weights from {weights}")
        history = json.loads(history_file.read_text()) if history_file.is_file() else {}
    else:
        log(f"train: {len(train[0])} clips; valid: {len(xv)} excerpts; {args.epochs} epochs x "
            f"{args.steps} steps x {args.batch_size}")
        started = time.perf_counter()
        history = train_student(student, train, (xv, yv), geometry=geometry, epochs=args.epochs,
                                steps_per_epoch=args.steps, batch_size=args.batch_size,
                                learning_rate=args.lr, patience=args.patience, seed=args.seed,
                                workdir=args.out,
                                max_seconds=args.max_minutes and args.max_minutes * 60)
        history["train_seconds_this_run"] = time.perf_counter() - started
        student.save_weights(str(weights))
        history_file.write_text(json.dumps(history, indent=1))
        log(f"train: {len(history['loss'])} epochs in {history['train_seconds_this_run']:.0f} s")

    # Test: non-overlapping excerpts of the held-out tracks.
    test = split["test"]
    xt, yt, ct, kt = fixed_excerpts([clips.signals[i] for i in test], [probs[i] for i in test],
                                    geometry, step=step)
    student_probs = predict(student, xt)
    baseline = np.concatenate([p for p in train[1]]).mean(axis=0)
    metrics = {"agreement": agreement(student_probs, yt, top_k=3, baseline=baseline)}
    log(f"test agreement: {json.dumps(metrics['agreement'])}")

    # Style probe: student embedding vs teacher penultimate, same excerpts.
    embedder = keras.Model(student.input, student.get_layer("embedding").output)
    tr = split["train"]
    xs, _, cs, ks = fixed_excerpts([clips.signals[i] for i in tr], None, geometry, step=step)
    labels = np.asarray(clips.labels)
    s_train, s_test = predict(embedder, xs), predict(embedder, xt)
    t_train = excerpt_targets([embs[i] for i in tr], cs, ks, geometry)
    t_test = excerpt_targets([embs[i] for i in test], ct, kt, geometry)
    y_train, y_test = labels[np.asarray(tr)[cs]], labels[np.asarray(test)[ct]]
    metrics["probe"] = {
        "student_embedding": {**probe(s_train, y_train, s_test, y_test, ct, args.seed),
                              "dim": int(s_test.shape[1])},
        "teacher_penultimate": {**probe(t_train, y_train, t_test, y_test, ct, args.seed),
                                "dim": int(t_test.shape[1])},
        "train_excerpts": len(y_train),
    }
    log(f"probe: {json.dumps(metrics['probe'])}")
    run = {
        "width": args.width, "architecture_config": arch, "parameters": student.count_params(),
        "epochs_run": len(history.get("loss", [])), "steps_per_epoch": args.steps,
        "batch_size": args.batch_size, "learning_rate": args.lr, "seed": args.seed,
        "best_val_loss": min(history["val_loss"]) if history.get("val_loss") else None,
        "best_epoch": (int(np.argmin(history["val_loss"])) + 1 if history.get("val_loss")
                       else None),
        "train_seconds": history.get("train_seconds_this_run"),
        "clips": {s: len(v) for s, v in split.items()},
        "train_tracks": len({clips.tracks[i] for i in split["train"]}),
        "train_packages": sorted({clips.packages[i] for i in split["train"]}),
        "train_hours": sum(len(s) for s in train[0]) / SAMPLE_RATE / 3600,
        "wall_seconds": time.perf_counter() - wall,
    }
    (args.out / "metrics.json").write_text(json.dumps({"run": run, **metrics}, indent=1))
    log(f"metrics: {args.out / 'metrics.json'}")
    if args.json:
        doc = {**results_json.finish(info), "run": run, **metrics}
        log(f"results: {results_json.write(args.json, doc)}")
    if args.publish:
        a, p = metrics["agreement"], metrics["probe"]
        run["source"] = source_notes(run, a, p)
        summary = {
            "roc_auc_vs_teacher_top3": round(a["roc_auc_top3"], 4),
            "pearson_vs_teacher": round(a["pearson_all"], 4),
            "pearson_per_tag_mean": round(a["pearson_per_tag_mean"], 4),
            "top5_overlap": round(a["top5_overlap"], 4),
            "evaluated_on": (f"agreement with the teacher musicnn_msd on {a['excerpts']} "
                             f"excerpts of {len(test)} held-out music_styles clips (test split, "
                             "split by track); not a human-annotated tagging benchmark"),
        }
        log(f"published {publish(student, arch, summary, run, args.weights_dir)}")
    return 0


def source_notes(run: dict, a: dict, p: dict) -> dict:
    """Provenance of the published preset (rendered into its model card)."""
    s, t = p["student_embedding"], p["teacher_penultimate"]
    constant = a["baseline_constant"]["bce"]
    gap = (constant - a["bce"]) / (constant - a["bce_floor"])
    return {
        "paper": ("Lee, Park, Kim & Nam, 'Sample-level Deep Convolutional Neural Networks for "
                  "Music Auto-tagging Using Raw Waveforms', SMC 2017 (architecture only)"),
        "teacher": f"{TEACHER} (zoo preset; ISC, Music Technology Group, UPF)",
        "dataset": ("music_styles (scripts/datasets/build_music_styles.py): 30-s clips of "
                    "music from Debian game packages, train split only: "
                    f"{run['clips']['train']} clips of {run['train_tracks']} tracks, "
                    f"{run['train_hours']:.2f} h; packages: {'; '.join(run['train_packages'])}; "
                    "no human tags were used"),
        "teacher_preset": TEACHER,
        "training": (f"distilled from the zoo preset `{TEACHER}` (its tag probabilities as soft "
                     "targets) by `scripts/distill_samplecnn.py`"),
        "trained_by": "scripts/distill_samplecnn.py",
        "license_file": "LICENSE.musicnn",
        "copyright": ("Music Technology Group, Universitat Pompeu Fabra (2019) for the "
                      "teacher musicnn_msd; distilled weights: the zoo project"),
        "license_notes": ("ISC, as the teacher whose outputs the weights were fitted to (its "
                          "notice travels with them). The training audio is under GPL-2+, "
                          "GPL-2, CC-BY-SA-3.0 and the Drascula freeware licence (per clip in "
                          "the dataset's sources.csv); whether such licences reach weights "
                          "trained on the audio is unsettled: check them before "
                          "redistributing."),
        "notes": [
            "Weights trained here, not the paper's: there are no public sampleCNN weights. The "
            "student learnt musicnn_msd's tag probabilities (binary cross-entropy against the "
            "teacher's soft targets, no human labels), so it imitates the teacher, errors "
            f"included, and knows only what {run['train_hours']:.1f} h of game music showed it.",
            f"Width: the paper's filter counts x {run['width']} "
            f"({run['parameters']:,} parameters instead of 1,875,762) so that training fits a "
            f"shared 2-core CPU; {run['epochs_run']} epochs x {run['steps_per_epoch']} batches "
            f"of {run['batch_size']} random excerpts, seed {run['seed']}, "
            f"{(run['train_seconds'] or 0) / 60:.0f} min of training (best validation loss "
            f"{run['best_val_loss']:.4f} at epoch {run['best_epoch']}).",
            "16 kHz, the teacher's rate: both models hear the same samples, so each 59,049-sample "
            "(3.69 s) excerpt's target is the mean of the teacher's two 3-s windows inside it.",
            f"Agreement with the teacher on {a['excerpts']} excerpts of held-out tracks: "
            f"macro ROC-AUC {a['roc_auc_top3']:.3f} against the teacher's top-3 tags "
            f"({a['roc_auc_p>=0.5']:.3f} against its p >= 0.5 tags, "
            f"{a['roc_auc_p>=0.5_tags']} tags), Pearson r {a['pearson_all']:.3f} over all "
            f"values (a constant predictor gets {a['baseline_constant']['pearson_all']:.3f}), "
            f"mean per-tag r {a['pearson_per_tag_mean']:.3f}, top-5 overlap "
            f"{a['top5_overlap']:.3f} (constant: {a['baseline_constant']['top5_overlap']:.3f}). "
            f"Binary cross-entropy {a['bce']:.4f}: {gap:.0%} of the way from a constant "
            f"predictor's {a['baseline_constant']['bce']:.4f} to the floor {a['bce_floor']:.4f} "
            "(the teacher's own entropy).",
            f"Style probe (logistic regression, 7 styles, test tracks): student embedding "
            f"{s['excerpt_accuracy']:.3f} per excerpt / {s['clip_accuracy']:.3f} per clip, "
            f"teacher penultimate {t['excerpt_accuracy']:.3f} / {t['clip_accuracy']:.3f}.",
            "Not measured: tagging quality against human tags (no tagged dataset can be had "
            "here). Expect it below the teacher's; on music unlike the training styles "
            "(vocals, pop, hip-hop: absent from the game music) the student was never shown "
            "what the teacher does.",
        ],
    }


if __name__ == "__main__":
    sys.exit(main())
