"""A simple baseline beside the transfer results: MFCC statistics + logistic regression.

Each clip becomes one fixed-length vector: its MFCCs (zoo's own `MelSpectrogram`, librosa's dB
scaling, an orthonormal DCT-II: the numbers of ``librosa.feature.mfcc``) and their deltas,
summarised over time by mean, standard deviation, minimum and maximum. A multinomial logistic
regression on standardised features (scikit-learn, balanced class weights) classifies them.

The splits are exactly those of ``zoo finetune``: the same readers (`read_task`), the same test
split or test folds, and the same training / validation clips as the transfer head (for fold
tasks the same stratified 10 % of the other folds that the head uses for early stopping). The
regularisation strength ``C`` is chosen from a small grid on that validation part (accuracy,
ties broken by log-loss) and the classifier is trained on the training part only, so it sees
the same clips as the transfer head. Metrics are `classification_metrics`, as for the transfer
runs (per fold and mean ± std over folds for ESC-50 and UrbanSound8K).

Example:
    >>> metrics = run_baseline("esc50", "/data/ESC-50", "runs/esc50_mfcc")
    >>> metrics["accuracy_mean"], metrics["accuracy_std"]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import AudioError
from zoo.finetune import datasets as ds
from zoo.finetune.metrics import classification_metrics, summarize_folds

FEATURES_VERSION = 1
STATS = ("mean", "std", "min", "max")
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
SKLEARN_HINT = ("the MFCC baseline needs scikit-learn: pip install 'zoo-audio[finetune]' "
                "(or pip install scikit-learn)")


@dataclass(frozen=True)
class MfccSettings:
    """How a clip becomes an MFCC-statistics vector.

    The mel spectrogram and MFCCs follow ``librosa.feature.mfcc`` with the same arguments
    (centred frames with zero padding, periodic Hann window, Slaney mel filters, power
    spectrogram, ``10 log10(max(S, 1e-10))`` clipped to ``top_db`` below the clip's peak,
    orthonormal DCT-II).

    Attributes:
        sample_rate: clips are decoded and resampled to this rate (Hz).
        n_fft: FFT size.
        hop_length: hop between frames (samples).
        win_length: window length (None: ``n_fft``).
        n_mels: mel bands.
        fmin: lowest mel frequency (Hz).
        fmax: highest mel frequency (Hz; None: ``sample_rate / 2``).
        n_mfcc: MFCCs kept (including c0).
        top_db: dynamic range kept below the clip's peak (None: no clipping).
        delta_width: frames of the delta regression window (odd, >= 3).
        stats: summaries over time, a subset of `STATS`, in this order in the vector.
    """

    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    win_length: int | None = None
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float | None = None
    n_mfcc: int = 20
    top_db: float | None = 80.0
    delta_width: int = 9
    stats: tuple[str, ...] = STATS

    def __post_init__(self):
        unknown = [s for s in self.stats if s not in STATS]
        if unknown or not self.stats:
            raise ValueError(f"stats must be a non-empty subset of {STATS}, got {self.stats}")
        if self.delta_width < 3 or self.delta_width % 2 == 0:
            raise ValueError(f"delta_width must be odd and >= 3, got {self.delta_width}")
        if not 0 < self.n_mfcc <= self.n_mels:
            raise ValueError(f"need 0 < n_mfcc <= n_mels, got {self.n_mfcc} and {self.n_mels}")

    @property
    def dim(self) -> int:
        """Length of the feature vector: ``len(stats) x (MFCCs + deltas)``."""
        return len(self.stats) * 2 * self.n_mfcc

    def feature_names(self) -> list[str]:
        """Names of the vector's entries, e.g. ``mean_mfcc0``, ``std_delta3``."""
        return [f"{stat}_{kind}{i}" for stat in self.stats for kind in ("mfcc", "delta")
                for i in range(self.n_mfcc)]


# Music and environmental sounds: librosa's defaults (22.05 kHz, 2048 / 512) with 64 bands;
# speech: the 16-kHz, 25-ms / 10-ms, 40-band analysis of the from-scratch mel-CNN.
TASK_SETTINGS: dict[str, MfccSettings] = {
    "genre": MfccSettings(),
    "esc50": MfccSettings(),
    "urbansound8k": MfccSettings(),
    "speech_commands": MfccSettings(sample_rate=16000, n_fft=512, hop_length=160,
                                    win_length=400, n_mels=40, fmin=20.0, fmax=8000.0),
}


def deltas(x: np.ndarray, width: int = 9) -> np.ndarray:
    """First-order regression deltas over time (axis 0) with edge frames repeated.

    ``d[t] = sum_{n=1..N} n (x[t+n] - x[t-n]) / (2 sum n^2)``, ``N = width // 2``: inside the
    clip this equals ``librosa.feature.delta(x.T, width=width).T`` (a first-order
    Savitzky-Golay derivative); near the ends librosa fits a polynomial instead.

    Example:
        >>> deltas(np.arange(10.0)[:, None], 5)[2:-2, 0].tolist()
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    """
    x = np.asarray(x, np.float64)
    half = width // 2
    padded = np.pad(x, [(half, half)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    out = np.zeros_like(x)
    frames = x.shape[0]
    for n in range(1, half + 1):
        out += n * (padded[half + n:half + n + frames] - padded[half - n:half - n + frames])
    return out / (2 * sum(n * n for n in range(1, half + 1)))


def summarize(mfcc: np.ndarray, settings: MfccSettings) -> np.ndarray:
    """The statistics vector of a ``(frames, n_mfcc)`` MFCC matrix (see `MfccSettings.dim`)."""
    parts = (mfcc, deltas(mfcc, settings.delta_width))
    funcs = {"mean": np.mean, "std": np.std, "min": np.min, "max": np.max}
    return np.concatenate([funcs[stat](p, axis=0) for stat in settings.stats for p in parts]
                          ).astype(np.float32)


def dct_ortho(n: int, k: int) -> np.ndarray:
    """``(k, n)`` float32: the first ``k`` rows of the orthonormal DCT-II of length ``n``
    (scipy's ``dct(type=2, norm="ortho")``)."""
    rows = np.arange(k)[:, None]
    basis = np.cos(np.pi * rows * (2 * np.arange(n)[None, :] + 1) / (2 * n)) * np.sqrt(2.0 / n)
    basis[0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


class MfccExtractor:
    """Waveform -> MFCC matrix and statistics vector, with zoo's in-graph layers.

    Example:
        >>> extractor = MfccExtractor(MfccSettings(sample_rate=16000))
        >>> extractor.mfcc(np.zeros(16000, "float32")).shape
        (32, 20)
    """

    def __init__(self, settings: MfccSettings):
        import keras

        from zoo.inference.compiled import inference_function
        from zoo.layers import MelSpectrogram, PowerToDb

        self.settings = s = settings
        waveform = keras.Input((None,), name="waveform")
        mel = MelSpectrogram(sr=s.sample_rate, n_fft=s.n_fft, hop_length=s.hop_length,
                             win_length=s.win_length, center=True, pad_mode="constant",
                             power=2.0, n_mels=s.n_mels, fmin=s.fmin, fmax=s.fmax)(waveform)
        db = PowerToDb(ref=1.0, amin=1e-10, top_db=s.top_db)(mel)
        # The first n_mfcc rows of the orthonormal DCT-II over the mel bands (librosa's mfcc),
        # as one matmul: the same numbers on every Keras backend.
        self._dct = dct_ortho(s.n_mels, s.n_mfcc).T
        self._compute = inference_function(keras.Model(waveform, db), None)

    def mfcc(self, signal: np.ndarray) -> np.ndarray:
        """``(frames, n_mfcc)`` MFCCs of a mono signal at ``settings.sample_rate``.

        Raises:
            AudioError: empty signal.
        """
        signal = np.asarray(signal, np.float32).reshape(-1)
        if signal.size == 0:
            raise AudioError("<clip>", "no audio samples")
        from zoo.inference.compiled import to_numpy

        db = to_numpy(self._compute(signal[None]))[0]
        return (db @ self._dct).astype(np.float32)

    def features(self, signal: np.ndarray) -> np.ndarray:
        """The clip's statistics vector, ``(settings.dim,)`` float32."""
        return summarize(self.mfcc(signal), self.settings)


def extract_features(clips: Sequence[ds.Clip], settings: MfccSettings, progress: bool = True
                     ) -> tuple[np.ndarray, dict[str, str]]:
    """Statistics vectors of clips decoded with `zoo.audio` at ``settings.sample_rate``.

    Clips that cannot be decoded are reported on stderr and skipped: their row is NaN and they
    are listed in the returned ``failed``. Shows a tqdm bar (files done, rate, ETA) on stderr.

    Returns:
        ``(features (clips, dim) float32, failed {clip key: reason})``.
    """
    from tqdm import tqdm

    extractor = MfccExtractor(settings)
    out = np.full((len(clips), settings.dim), np.nan, np.float32)
    failed: dict[str, str] = {}
    for i, clip in enumerate(tqdm(clips, unit="file", desc="MFCC features", file=sys.stderr,
                                  disable=not progress, mininterval=1.0)):
        try:
            out[i] = extractor.features(ds.decode_clip(clip, settings.sample_rate))
        except (AudioError, OSError, ValueError) as err:
            failed[clip.key] = str(err)
            ds.report_problem(clip.path, str(err))
    return out, failed


def features_key(clips: Sequence[ds.Clip], settings: MfccSettings) -> str:
    """sha256 of what the features depend on: the settings and the clips."""
    doc = {"version": FEATURES_VERSION, "settings": dataclasses.asdict(settings),
           "clips": [c.key for c in clips]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def cached_features(clips: Sequence[ds.Clip], settings: MfccSettings,
                    cache_dir: str | os.PathLike, progress: bool = True
                    ) -> tuple[np.ndarray, dict[str, str]]:
    """`extract_features`, kept in ``cache_dir/mfcc-<key>.npy`` (+ ``.json``: the full key and
    the failed clips) and reused by a rerun with the same clips and settings."""
    key = features_key(clips, settings)
    path = Path(cache_dir) / f"mfcc-{key[:16]}.npy"
    meta_path = path.with_suffix(".json")
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("key") == key:
            values = np.load(path, allow_pickle=False)
            if values.shape == (len(clips), settings.dim):
                for clip_key, reason in meta["failed"].items():
                    ds.report_problem(clip_key, f"{reason} (cached)")
                return values, meta["failed"]
    values, failed = extract_features(clips, settings, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npy")
    np.save(tmp, values)
    os.replace(tmp, path)
    meta_path.write_text(json.dumps({"key": key, "failed": failed,
                                     "settings": dataclasses.asdict(settings)}, indent=1),
                         encoding="utf-8")
    return values, failed


def _sklearn():
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as err:
        raise ImportError(SKLEARN_HINT) from err
    return LogisticRegression, StandardScaler, make_pipeline


def make_classifier(c: float, seed: int = 0, max_iter: int = 5000):
    """``StandardScaler`` -> multinomial ``LogisticRegression`` (L2, lbfgs, balanced class
    weights) as a scikit-learn pipeline.

    Raises:
        ImportError: scikit-learn is not installed (it comes with the ``finetune`` extra).
    """
    logistic_regression, standard_scaler, make_pipeline = _sklearn()
    return make_pipeline(standard_scaler(),
                         logistic_regression(C=c, class_weight="balanced", max_iter=max_iter,
                                             random_state=seed))


def _log_loss(model, x: np.ndarray, y: np.ndarray) -> float:
    proba = model.predict_proba(x)
    column = {int(c): i for i, c in enumerate(model.classes_)}
    p = np.array([proba[i, column[int(t)]] if int(t) in column else 0.0
                  for i, t in enumerate(y)])
    return float(-np.mean(np.log(np.clip(p, 1e-15, 1.0))))


def fit_baseline(x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray,
                 y_valid: np.ndarray, grid: Sequence[float] = C_GRID, seed: int = 0
                 ) -> tuple[Any, dict[str, Any]]:
    """Choose ``C`` on the validation clips and return the classifier trained with it.

    Each ``C`` of ``grid`` is trained on the training clips and scored on the validation clips
    by accuracy (ties: lower log-loss, then smaller ``C``). Without validation clips the ``C``
    of the grid closest to 1 is used.

    Returns:
        ``(fitted pipeline, selection report)``.

    Raises:
        ImportError: no scikit-learn. ValueError: fewer than two classes in the training clips.
    """
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    if len(np.unique(y_train)) < 2:
        raise ValueError("the baseline needs training clips of at least two classes")
    grid = sorted(float(c) for c in grid)
    scores: dict[str, dict[str, float]] = {}
    best, best_rank, best_model = None, None, None
    not_converged = 0

    def fit(c: float):
        nonlocal not_converged
        model = make_classifier(c, seed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(x_train, y_train)
        not_converged += any(issubclass(w.category, ConvergenceWarning) for w in caught)
        return model

    # The problem is tiny: BLAS / OpenMP thread pools only add waiting on a busy machine.
    with threadpool_limits(1):
        for c in grid:
            model = fit(c)
            if len(y_valid) == 0:
                continue
            acc = float(np.mean(model.predict(x_valid) == y_valid))
            loss = _log_loss(model, x_valid, y_valid)
            scores[repr(c)] = {"valid_accuracy": acc, "valid_log_loss": loss}
            rank = (-acc, loss)
            if best_rank is None or rank < best_rank:  # ties: the smaller C (sorted grid)
                best, best_rank, best_model = c, rank, model
        if best_model is None:  # no validation clips
            best = min(grid, key=lambda c: abs(math.log10(c)))
            best_model = fit(best)
    report = {"C": best, "grid": scores, "selected_on": "validation accuracy (ties: log-loss)"
              if len(y_valid) else "no validation clips: C closest to 1",
              "n_train": int(len(y_train)), "n_valid": int(len(y_valid))}
    if not_converged:
        report["not_converged"] = not_converged
    return best_model, report


@dataclass
class BaselineOptions:
    """Settings of a `run_baseline` run (the flags of ``scripts/baseline_mfcc.py``).

    Attributes:
        seed: the ``zoo finetune`` seed whose splits are used (GTZAN without lists: the split
            seed is ``1234 + seed``; fold tasks: the validation hold-out) and the classifier's.
        speech_task: ``"12"`` or ``"35"`` classes.
        max_folds: evaluate only the first N folds (None: all).
        grid: the ``C`` values tried.
        settings: the features (None: `TASK_SETTINGS` of the task).
        sample_rate: overrides the settings' sample rate.
        cache_dir: feature cache (None: ``OUT/cache``).
        progress: show the progress bar.
    """

    seed: int = 0
    speech_task: str = "12"
    max_folds: int | None = None
    grid: Sequence[float] = C_GRID
    settings: MfccSettings | None = None
    sample_rate: int | None = None
    cache_dir: str | None = None
    progress: bool = True


def _log(message: str) -> None:
    print(f"zoo baseline: {message}", file=sys.stderr, flush=True)


def _evaluate(model, x: np.ndarray, y: np.ndarray, ok: np.ndarray, clips: Sequence[ds.Clip],
              classes: Sequence[str], failed: dict[str, str]) -> dict[str, Any]:
    metrics = classification_metrics(y[ok], model.predict(x[ok]), classes)
    metrics["skipped"] = sorted(c.key for c in clips if c.key in failed)
    return metrics


def run_baseline(task: str, data_dir: str, out: str | os.PathLike,
                 options: BaselineOptions | None = None) -> dict[str, Any]:
    """Train and evaluate the MFCC-statistics baseline of a task on ``zoo finetune``'s splits.

    Args:
        task: ``genre``, ``esc50``, ``urbansound8k`` or ``speech_commands``.
        data_dir: the dataset's root (as for ``zoo finetune``).
        out: output folder: ``metrics.json``, ``confusion.png``, ``cache/`` (features).
        options: `BaselineOptions`.

    Returns:
        The metrics document written to ``metrics.json`` (the keys of ``zoo finetune``'s, plus
        ``features`` and ``model_selection``).

    Raises:
        ValueError: unknown task. FileNotFoundError: not the expected layout.
        ImportError: no scikit-learn.
    """
    from zoo.finetune.report import plot_confusion, write_metrics
    from zoo.finetune.runner import FinetuneOptions, fold_splits, read_task

    options = options or BaselineOptions()
    _sklearn()  # fail before the feature extraction, not after it
    started = time.perf_counter()
    out_dir = Path(out).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    data = read_task(task, data_dir, FinetuneOptions(seed=options.seed,
                                                     speech_task=options.speech_task))
    settings = options.settings or TASK_SETTINGS[task]
    if options.sample_rate:
        settings = dataclasses.replace(settings, sample_rate=int(options.sample_rate))
    _log(f"{task}: {len(data.clips)} clips, {len(data.classes)} classes"
         + (f", folds {list(data.folds)}" if data.folds else "")
         + f"; {settings.dim} MFCC statistics at {settings.sample_rate} Hz")
    x, failed = cached_features(data.clips, settings, options.cache_dir or out_dir / "cache",
                                options.progress)
    feature_seconds = time.perf_counter() - started
    row = {c.key: i for i, c in enumerate(data.clips)}
    y_all = data.label_ids(data.clips)
    ok_all = ~np.isnan(x).any(axis=1)

    def rows(clips: Sequence[ds.Clip]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx = np.array([row[c.key] for c in clips], np.int64)
        return x[idx], y_all[idx], ok_all[idx]

    def fit(train: Sequence[ds.Clip], valid: Sequence[ds.Clip]):
        xt, yt, okt = rows(train)
        xv, yv, okv = rows(valid)
        return fit_baseline(xt[okt], yt[okt], xv[okv], yv[okv], options.grid, options.seed)

    metrics: dict[str, Any] = {"stage": "baseline"}
    if data.folds:
        per_fold: dict[str, dict[str, Any]] = {}
        selection: dict[str, dict[str, Any]] = {}
        # The transfer head's training, early-stopping and test clips of each fold.
        for fold, train, valid, test in fold_splits(data, options.seed, options.max_folds):
            model, selection[str(fold)] = fit(train, valid)
            per_fold[str(fold)] = _evaluate(model, *rows(test), test, data.classes, failed)
            _log(f"fold {fold}: accuracy {per_fold[str(fold)]['accuracy']:.3f} "
                 f"(C = {selection[str(fold)]['C']:g})")
        summary = summarize_folds(per_fold)
        metrics.update(summary, folds=per_fold, accuracy=summary["accuracy_mean"],
                       macro_f1=summary["macro_f1_mean"],
                       evaluated_on=f"{len(per_fold)}-fold cross-validation, MFCC baseline",
                       confusion_matrix=np.sum([m["confusion_matrix"] for m in per_fold.values()],
                                               axis=0).tolist(),
                       model_selection={"per_fold": selection})
    else:
        train, valid, test = data.split("train"), data.split("valid"), data.split("test")
        if not test:
            raise ValueError(f"{data_dir}: no clips in the test split")
        model, selection = fit(train, valid)
        metrics.update(_evaluate(model, *rows(test), test, data.classes, failed),
                       evaluated_on=f"{data.name} test split ({len(test)} clips), MFCC baseline",
                       model_selection=selection)
    metrics.update(
        task=task, data_dir=str(data_dir), backbone="mfcc_stats_logreg",
        classes=list(data.classes), n_clips=len(data.clips),
        reader_problems=[{"file": p, "error": e} for p, e in data.problems],
        feature_failures=[{"file": k, "error": e} for k, e in sorted(failed.items())],
        features={**dataclasses.asdict(settings), "dim": settings.dim,
                  "classifier": "StandardScaler + LogisticRegression (multinomial, L2, "
                                "lbfgs, balanced class weights)"},
        feature_seconds=round(feature_seconds, 1),
        wall_seconds=round(time.perf_counter() - started, 1),
        options={k: (list(v) if isinstance(v, tuple) else v)
                 for k, v in dataclasses.asdict(options).items() if k != "settings"})
    write_metrics(out_dir / "metrics.json", metrics)
    plot_confusion(metrics["confusion_matrix"], data.classes, out_dir / "confusion.png",
                   title=f"{task} MFCC baseline: accuracy {metrics['accuracy']:.3f}")
    return metrics


def summary_line(metrics: dict[str, Any]) -> str:
    """One line: accuracy and macro-F1 (mean ± std for fold tasks) and what was evaluated."""
    if "accuracy_mean" in metrics:
        return (f"{metrics['task']} MFCC baseline: accuracy {metrics['accuracy_mean']:.3f} ± "
                f"{metrics['accuracy_std']:.3f}, macro-F1 {metrics['macro_f1_mean']:.3f} ± "
                f"{metrics['macro_f1_std']:.3f} ({metrics['evaluated_on']})")
    return (f"{metrics['task']} MFCC baseline: accuracy {metrics['accuracy']:.3f}, macro-F1 "
            f"{metrics['macro_f1']:.3f} ({metrics['evaluated_on']})")
