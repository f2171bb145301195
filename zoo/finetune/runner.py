"""`finetune`: one call from a dataset folder to a saved preset with metrics and plots.

Transfer (any pretrained preset as backbone): stage 1 caches the frozen backbone's per-patch
embeddings and trains a dense head on them; the optional stage 2 unfreezes the whole model at a
lower learning rate on waveform patches with SpecAugment. From scratch (``backbone="melcnn"``,
meant for Speech Commands; fold tasks train one model per fold): a small mel-CNN with the
chosen log front-end, trained end to end with SpecAugment and background-noise mixing.
Predictions per clip are the mean of its patches' probabilities (`zoo.Taggram.mean`).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from zoo.finetune import datasets as ds
from zoo.finetune.distribute import (
    STRATEGIES,
    DistributeError,
    configure_cpu_devices,
    describe,
    make_strategy,
    strategy_scope,
)
from zoo.finetune.embeddings import PatchOutputs, cached_embeddings, run_patches
from zoo.finetune.metrics import classification_metrics, summarize_folds
from zoo.finetune.report import plot_confusion, plot_learning_curves, write_metrics
from zoo.finetune.train import (
    WARMUP_EPOCHS,
    default_spec_augment,
    freeze_batch_norm,
    train_end_to_end,
    train_head,
    training_model,
)
from zoo.inference.compiled import inference_function, to_numpy
from zoo.models.classifier import copy_weights_by_name
from zoo.models.pipeline import (
    build_backbone,
    compression_weights,
    inference_view,
    wrap_waveform,
)
from zoo.models.registry import get_architecture
from zoo.models.zoo_model import ZooModel
from zoo.presets import Application, Preprocessing, PresetConfig, WeightsRef

TASKS = ("genre", "esc50", "urbansound8k", "speech_commands")
SCRATCH_BACKBONE = "melcnn"
# CLI spelling -> compression name of `zoo.models.pipeline.COMPRESSIONS`.
FRONTENDS = {"log-eps": "log_eps", "log10": "log10_scaled", "log-learn": "log_learn",
             "db": "power_to_db", "pcen": "pcen"}


@dataclass
class FinetuneOptions:
    """Settings of a `finetune` run (the CLI flags of ``zoo finetune``).

    Attributes:
        backbone: a preset name or directory to fine-tune, or ``"melcnn"`` to train the small
            CNN from scratch (Speech Commands; on fold tasks one model per fold).
        epochs: stage-1 (head) epochs at most; also from-scratch epochs.
        batch_size: patches per step.
        learning_rate: stage 1 / from scratch.
        head_units: hidden layers of the head.
        dropout: head dropout.
        patience: early-stopping patience (epochs).
        fine_tune_epochs: stage-2 epochs (0: no stage 2).
        fine_tune_learning_rate: stage 2.
        hop_seconds: hop between patches; None: the patch length (no overlap).
        seed: every random choice.
        speech_task: ``"12"`` or ``"35"`` classes.
        frontend: from-scratch log front-end, one of `FRONTENDS`.
        max_folds: evaluate only the first N folds (quick runs; None: all).
        noise: mix background noise into speech training patches.
        progress: show progress bars.
        name: preset name (default ``<task>_<backbone>``).
        distribute: ``"none"`` (one device), ``"mirrored"`` (this machine's GPUs, or its
            logical CPU devices) or ``"multi-worker"`` (cluster from ``TF_CONFIG``): the
            ``tf.distribute`` strategy of every training stage (`zoo.finetune.distribute`);
            ``batch_size`` stays the global batch.
        cpu_devices: with ``"mirrored"``: split the CPU into this many logical devices and
            mirror over them (machines without GPUs; must be set before TensorFlow
            initialises its devices in the process). None: the machine's devices.
    """

    backbone: str = "musicnn_msd"
    epochs: int = 100
    batch_size: int = 64
    learning_rate: float = 1e-3
    head_units: Sequence[int] = (256,)
    dropout: float = 0.3
    patience: int = 10
    fine_tune_epochs: int = 0
    fine_tune_learning_rate: float = 1e-5
    hop_seconds: float | None = None
    seed: int = 0
    speech_task: str = "12"
    speech_silence_ratio: float = 1.0
    frontend: str = "log-eps"
    max_folds: int | None = None
    noise: bool = True
    progress: bool = True
    name: str | None = None
    distribute: str = "none"
    cpu_devices: int | None = None


def read_task(task: str, data_dir: str, options: FinetuneOptions) -> ds.ClipDataset:
    """Read the dataset of a task.

    Raises:
        ValueError: unknown task.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    if task == "speech_commands":
        return ds.read_speech_commands(data_dir, task=options.speech_task,
                                       silence_ratio=options.speech_silence_ratio)
    if task == "genre":
        return ds.read_gtzan(data_dir, seed=options.seed + 1234)
    return ds.READERS[task](data_dir)


def _log(message: str) -> None:
    print(f"zoo finetune: {message}", file=sys.stderr, flush=True)


def _holdout(clips: Sequence[ds.Clip], fraction: float, seed: int
             ) -> tuple[list[ds.Clip], list[ds.Clip]]:
    """Stratified ``(train, valid)`` of clips, for early stopping in fold tasks."""
    by_label: dict[str, list[ds.Clip]] = {}
    for clip in sorted(clips, key=lambda c: c.key):
        by_label.setdefault(clip.label, []).append(clip)
    rng = np.random.default_rng(seed)
    train, valid = [], []
    for label in sorted(by_label):
        members = [by_label[label][i] for i in rng.permutation(len(by_label[label]))]
        # At least one validation clip per class that has two, so early stopping sees them all.
        n_valid = max(1, round(fraction * len(members))) if len(members) > 1 else 0
        valid += members[:n_valid]
        train += members[n_valid:]
    return train, valid


def fold_splits(data: ds.ClipDataset, seed: int, max_folds: int | None = None
                ) -> Iterator[tuple[int, list[ds.Clip], list[ds.Clip], list[ds.Clip]]]:
    """``(fold, train, valid, test)`` of a fold task: each fold tests a model trained on the
    other folds, 10 % of whose clips (stratified, seeded by ``seed + fold``) are held out for
    early stopping. Every fold-task trainer and baseline uses these, so their numbers compare.
    """
    for fold in data.folds[:max_folds]:
        train, valid = _holdout(data.fold(fold, exclude=True), 0.1, seed + fold)
        yield fold, train, valid, list(data.fold(fold))


def _predictor(model: keras.Model):
    fn = inference_function(model, model.input_shape[-1])
    return lambda batch: to_numpy(fn(batch))


def _head_probabilities(head: keras.Model, x: np.ndarray) -> np.ndarray:
    # A direct call: predict() would trace a new function for every fold's head.
    return to_numpy(head(x, training=False))


def _evaluate(outputs: PatchOutputs, clips: Sequence[ds.Clip], data: ds.ClipDataset
              ) -> dict[str, Any]:
    """Clip-level metrics from per-patch probabilities (mean over each clip's patches)."""
    probs, ids = outputs.clip_mean(len(clips))
    truth = data.label_ids([clips[i] for i in ids])
    predicted = probs.argmax(axis=1)
    metrics = classification_metrics(truth, predicted, data.classes)
    if ds.SILENCE in data.classes:  # a speech model's "no word" answer
        metrics.update(silence_metrics(truth, predicted, data.classes))
    metrics["skipped"] = sorted(outputs.failed)
    return metrics


def silence_metrics(truth: np.ndarray, predicted: np.ndarray, classes: Sequence[str]
                    ) -> dict[str, float | int]:
    """How a model with a ``silence`` class answers words and noise: accuracy on the word clips
    (silence predicted for a word counts as wrong), the share of noise-only clips answered
    with a word (false words), and the share of word clips answered with silence."""
    silence = list(classes).index(ds.SILENCE)
    noise, words = truth == silence, truth != silence
    return {"word_accuracy": round(float(np.mean(predicted[words] == truth[words])), 4)
            if words.any() else float("nan"),
            "false_word_rate": round(float(np.mean(predicted[noise] != silence)), 4)
            if noise.any() else float("nan"),
            "missed_word_rate": round(float(np.mean(predicted[words] == silence)), 4)
            if words.any() else float("nan"),
            "noise_clips": int(noise.sum()), "word_clips": int(words.sum())}


class _EmbeddingTable:
    """Cached per-patch embeddings of all clips, sliced by clip subsets."""

    def __init__(self, outputs: PatchOutputs, clips: Sequence[ds.Clip], data: ds.ClipDataset):
        # One vector per patch, flattened as the classifier's head sees it (vgg: pool5 maps).
        values = outputs.values.reshape(len(outputs.values), -1)
        self.outputs = PatchOutputs(values, outputs.clip_index, outputs.failed)
        self.position = {c.key: i for i, c in enumerate(clips)}
        self.labels = data.label_ids(clips)

    def rows(self, subset: Sequence[ds.Clip]) -> tuple[np.ndarray, np.ndarray, PatchOutputs]:
        """``(x, y, outputs re-indexed to subset)`` for the patches of ``subset``."""
        wanted = np.array([self.position[c.key] for c in subset], np.int64)
        local = np.full(len(self.labels), -1, np.int64)
        local[wanted] = np.arange(len(wanted))
        mask = local[self.outputs.clip_index] >= 0
        x = self.outputs.values[mask]
        y = self.labels[self.outputs.clip_index[mask]]
        failed = {k: v for k, v in self.outputs.failed.items() if k in {c.key for c in subset}}
        return x, y, PatchOutputs(x, local[self.outputs.clip_index[mask]], failed)


def task_application(task: str) -> Application:
    """How a fine-tuned preset is applied: one class per clip, patches side by side; a keyword
    model answers with its best window, and a clip shorter than a patch is centred in silence
    as its training words are."""
    if task == "speech_commands":
        return Application(short_clips="centre", aggregate="best_window",
                           task="classification")
    return Application(task="classification")


def _classifier_config(base: PresetConfig, data: ds.ClipDataset, task: str,
                       options: FinetuneOptions) -> PresetConfig:
    name = options.name or f"{task}_{Path(options.backbone).name}"
    return PresetConfig(
        name=name,
        description=f"{base.name} fine-tuned on {task} ({len(data.classes)} classes)",
        architecture="classifier",
        architecture_config={
            "backbone": {"architecture": base.architecture,
                         "config": dict(base.architecture_config)},
            "head_units": [int(u) for u in options.head_units],
            "dropout": float(options.dropout),
            "activation": "softmax",
        },
        preprocessing=base.preprocessing,
        tags=data.classes,
        weights=WeightsRef(file=None),
        license=base.license,
        source={**base.source, "base_preset": base.name, "task": task},
        application=task_application(task),
    )


def _scratch_config(data: ds.ClipDataset, task: str, options: FinetuneOptions) -> PresetConfig:
    if options.frontend not in FRONTENDS:
        raise ValueError(f"unknown frontend {options.frontend!r}; known: {', '.join(FRONTENDS)}")
    compression = FRONTENDS[options.frontend]
    hop = 160
    # PCEN's smoother time constant is in seconds: it needs the frame rate.
    comp_config = {"sr": 16000, "hop_length": hop} if compression == "pcen" else {}
    prep = Preprocessing(sample_rate=16000, n_fft=512, hop_length=hop, win_length=400,
                         n_mels=40, fmin=20.0, fmax=8000.0, compression=compression,
                         compression_config=comp_config, pad_mode="constant",
                         # 101 frames x 160 = exactly 1 s: a 1-s clip is one patch, no tiling.
                         patch_frames=101)
    return PresetConfig(
        name=options.name or f"{task}_melcnn_{compression}",
        description=f"mel-CNN ({compression}) trained from scratch on {task} "
                    f"({len(data.classes)} classes)",
        architecture="melcnn",
        architecture_config={"n_mels": prep.n_mels, "n_frames": prep.patch_frames},
        preprocessing=prep, tags=data.classes, weights=WeightsRef(file=None),
        source={"task": task}, application=task_application(task))


def _save(config: PresetConfig, backbone: keras.Model, out: Path, metrics: dict[str, Any],
          trained_compression: keras.layers.Layer | None = None) -> Path:
    from zoo.hub.saving import save_preset

    if trained_compression is not None:
        values = compression_weights(trained_compression)
        if values:
            config = dataclasses.replace(config, preprocessing=dataclasses.replace(
                config.preprocessing, compression_weights=values))
    return save_preset(ZooModel(config, backbone=backbone), out, metrics=metrics)


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    # The silence rates go on the card: how often noise alone is answered with a word.
    keys = ("accuracy", "macro_f1", "accuracy_mean", "accuracy_std", "macro_f1_mean",
            "macro_f1_std", "word_accuracy", "false_word_rate", "missed_word_rate",
            "evaluated_on")
    return {k: metrics[k] for k in keys if k in metrics}


def _write_reports(out: Path, metrics: dict[str, Any], histories: dict[str, dict],
                   data: ds.ClipDataset) -> None:
    write_metrics(out / "metrics.json", metrics)
    cm = metrics.get("confusion_matrix")
    if cm is not None:
        plot_confusion(cm, data.classes, out / "confusion.png",
                       title=f"{metrics['task']}: accuracy {metrics['accuracy']:.3f}")
    plot_learning_curves(histories, out / "learning_curves.png")


def finetune(task: str, data_dir: str, out: str, options: FinetuneOptions | None = None
             ) -> dict[str, Any]:
    """Train a classifier for a task on a dataset folder and save it as a preset.

    Args:
        task: ``genre`` (GTZAN layout), ``esc50``, ``urbansound8k`` or ``speech_commands``.
        data_dir: the dataset's root as distributed (for GTZAN the folder holding ``genres/``).
        out: output folder: the preset (``config.json``, ``model.weights.h5``, ``README.md``),
            ``metrics.json``, ``confusion.png``, ``learning_curves.png``, ``logs/``
            (TensorBoard), ``cache/`` (stage-1 embeddings).
        options: `FinetuneOptions` (defaults: musicnn_msd backbone, stage 1 only).

    Returns:
        The metrics document written to ``metrics.json``.

    Raises:
        ValueError: unknown task or front-end. FileNotFoundError: not the expected layout.
        PresetError / WeightsError: the backbone preset cannot be loaded.

    Example:
        >>> finetune("esc50", "/data/ESC-50", "runs/esc50",
        ...          FinetuneOptions(backbone="musicnn_msd"))["accuracy_mean"]
    """
    options = options or FinetuneOptions()
    strategy = _strategy(options)  # first: logical devices must precede any TensorFlow work
    out_dir = Path(out).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    data = read_task(task, data_dir, options)
    _log(f"{task}: {len(data.clips)} clips, {len(data.classes)} classes"
         + (f", folds {list(data.folds)}" if data.folds else ""))
    if options.backbone == SCRATCH_BACKBONE:
        metrics, histories = _run_scratch(task, data, out_dir, options, strategy)
    else:
        metrics, histories = _run_transfer(task, data, out_dir, options, strategy)
    if strategy is not None:
        metrics["distribute"] = describe(options.distribute, strategy)
    metrics.update(task=task, data_dir=str(data_dir), backbone=options.backbone,
                   classes=list(data.classes), n_clips=len(data.clips),
                   reader_problems=[{"file": p, "error": e} for p, e in data.problems],
                   wall_seconds=round(time.perf_counter() - started, 1),
                   options=_options_record(options))
    _write_reports(out_dir, metrics, histories, data)
    _log(f"done in {metrics['wall_seconds']:.0f} s: {json.dumps(_summary(metrics))}")
    return metrics


def _strategy(options: FinetuneOptions) -> tf.distribute.Strategy | None:
    """The strategy of ``options.distribute`` (None: one device), after the logical CPU
    devices of ``options.cpu_devices``.

    Raises:
        DistributeError: an unknown strategy, ``cpu_devices`` without ``"mirrored"`` or after
            TensorFlow initialised its devices, or a batch the replicas cannot share.
    """
    if options.distribute not in STRATEGIES:
        raise DistributeError(f"unknown distribute {options.distribute!r}; known: "
                              f"{', '.join(STRATEGIES)}")
    devices = None
    if options.cpu_devices is not None:
        if options.distribute != "mirrored":
            raise DistributeError("--cpu-devices applies to --distribute mirrored only (a "
                                  "multi-worker strategy uses one CPU per worker)")
        devices = configure_cpu_devices(options.cpu_devices)
    strategy = make_strategy(options.distribute, devices=devices)
    if strategy is None:
        return None
    replicas = strategy.num_replicas_in_sync
    if options.batch_size % replicas:
        raise DistributeError(f"--batch-size {options.batch_size} is the global batch: it must "
                              f"be a multiple of the {replicas} replicas")
    _log(f"distribute: {options.distribute}, {replicas} replica(s), global batch "
         f"{options.batch_size} ({options.batch_size // replicas} per replica)")
    return strategy


def _options_record(options: FinetuneOptions) -> dict[str, Any]:
    """``options`` for metrics.json; the distribution settings only where set, so one-device
    runs write the same document as before they existed."""
    record = {k: (list(v) if isinstance(v, tuple) else v)
              for k, v in dataclasses.asdict(options).items()}
    if options.distribute == "none" and options.cpu_devices is None:
        del record["distribute"], record["cpu_devices"]
    return record


def _run_transfer(task: str, data: ds.ClipDataset, out: Path, options: FinetuneOptions,
                  strategy: tf.distribute.Strategy | None = None
                  ) -> tuple[dict[str, Any], dict[str, dict]]:
    from zoo.models.loading import load

    pretrained = load(options.backbone)
    base: PresetConfig = pretrained.zoo_preset
    prep = base.preprocessing
    hop = options.hop_seconds or prep.patch_seconds
    # Frozen backbone: its inference graph (musicnn: ~1.5x faster, same embeddings).
    taps, embedding_name = get_architecture(base.architecture).taps(base.architecture_config)
    embedder = wrap_waveform(
        base, inference_view(pretrained.zoo_backbone, base, taps[embedding_name]), "embed")
    model_id = f"{base.name}:{base.weights.sha256}"
    table = _EmbeddingTable(
        cached_embeddings(_predictor(embedder), model_id, data.clips, prep, hop, out / "cache",
                          batch_size=options.batch_size, progress=options.progress,
                          short_clips=task_application(task).short_clips),
        data.clips, data)

    def fit(train, valid, run):
        xt, yt, _ = table.rows(train)
        xv, yv, _ = table.rows(valid)
        return train_head(xt, yt, xv, yv, len(data.classes), options.head_units,
                          options.dropout, options.epochs, options.learning_rate,
                          options.patience, options.batch_size, out / "logs" / run, options.seed,
                          strategy=strategy)

    histories: dict[str, dict] = {}
    metrics: dict[str, Any] = {"stage": 1}
    if data.folds:
        per_fold = {}
        for fold, train, valid, test in fold_splits(data, options.seed, options.max_folds):
            head, histories[f"fold{fold}"] = fit(train, valid, f"fold{fold}")
            _, _, outs = table.rows(test)
            per_fold[str(fold)] = _evaluate(
                PatchOutputs(_head_probabilities(head, outs.values), outs.clip_index, outs.failed),
                test, data)
            _log(f"fold {fold}: accuracy {per_fold[str(fold)]['accuracy']:.3f}")
        metrics.update(summarize_folds(per_fold), folds=per_fold,
                       evaluated_on=f"{len(per_fold)}-fold cross-validation, stage 1")
        # The confusion matrix of the whole cross-validation (every clip tested once).
        metrics["confusion_matrix"] = np.sum(
            [m["confusion_matrix"] for m in per_fold.values()], axis=0).tolist()
        metrics["accuracy"] = metrics["accuracy_mean"]
        # The saved model: all folds, 10% held out for early stopping.
        train, valid = _holdout(data.clips, 0.1, options.seed)
        test = []
        head, histories["final"] = fit(train, valid, "final")
    else:
        train, valid, test = data.split("train"), data.split("valid"), data.split("test")
        head, histories["stage1"] = fit(train, valid, "stage1")
        _, _, outs = table.rows(test)
        metrics.update(_evaluate(PatchOutputs(_head_probabilities(head, outs.values),
                                              outs.clip_index, outs.failed), test, data))
        metrics["evaluated_on"] = f"{data.name} test split ({len(test)} clips), stage 1"
        metrics["stage1"] = _summary(metrics)

    config = _classifier_config(base, data, task, options)
    with strategy_scope(strategy):  # stage 2 trains these variables
        classifier = build_backbone(config)
    copied = copy_weights_by_name(pretrained.zoo_backbone, classifier)
    copied += copy_weights_by_name(head, classifier)
    if not copied:
        raise RuntimeError("no weights transferred into the classifier (layer names differ)")
    if options.fine_tune_epochs > 0:
        histories["stage2"] = _stage2(config, classifier, data, train, valid, out, options, hop,
                                      strategy)
        metrics["stage"] = 2
        if test:
            outs = run_patches(_predictor(wrap_waveform(config, classifier, "eval")), test, prep,
                               hop, options.batch_size, "test", options.progress,
                               config.application.short_clips)
            metrics.update(_evaluate(outs, test, data))
            metrics["evaluated_on"] = f"{data.name} test split ({len(test)} clips), stage 2"
    _save(config, classifier, out, _summary(metrics))
    return metrics, histories


def _stage2(config: PresetConfig, classifier: keras.Model, data: ds.ClipDataset,
            train: list[ds.Clip], valid: list[ds.Clip], out: Path, options: FinetuneOptions,
            hop: float, strategy: tf.distribute.Strategy | None = None
            ) -> dict[str, list[float]]:
    """Unfreeze the backbone (batch-norm statistics stay fixed) at a lower learning rate."""
    _log(f"stage 2: fine-tuning the whole model for up to {options.fine_tune_epochs} epochs")
    prep = config.preprocessing
    freeze_batch_norm(classifier)
    with strategy_scope(strategy):
        model, _ = training_model(config, classifier, default_spec_augment(config))
    short = config.application.short_clips  # training pads short clips as tagging will
    train_ds = ds.patch_dataset(train, data.label_ids(train), prep, hop, options.batch_size,
                                seed=options.seed, short_clips=short)
    valid_ds = ds.patch_dataset(valid, data.label_ids(valid), prep, hop, options.batch_size,
                                shuffle=False, short_clips=short)
    history = train_end_to_end(model, train_ds, valid_ds, len(data.classes),
                               data.label_ids(train), options.fine_tune_epochs,
                               options.fine_tune_learning_rate, options.patience,
                               out / "logs" / "stage2", label="stage 2", strategy=strategy)
    for layer in classifier.layers:  # saved models are used for inference: trainable again
        layer.trainable = True
    return history


def _run_scratch(task: str, data: ds.ClipDataset, out: Path, options: FinetuneOptions,
                 strategy: tf.distribute.Strategy | None = None
                 ) -> tuple[dict[str, Any], dict[str, dict]]:
    """Train the mel-CNN from scratch: on the train split, or per fold (fold tasks)."""
    config = _scratch_config(data, task, options)
    prep = config.preprocessing
    hop = options.hop_seconds or prep.patch_seconds
    noise = ds.load_noise(data.noise_files, prep.sample_rate) if options.noise else []
    short = config.application.short_clips  # training pads short clips as tagging will

    def fit(train: list[ds.Clip], valid: list[ds.Clip], test: list[ds.Clip], run: str):
        keras.utils.set_random_seed(options.seed)  # every fold starts from the same weights
        with strategy_scope(strategy):
            backbone = build_backbone(config)
            model, compression = training_model(config, backbone, default_spec_augment(config))
        train_ds = ds.patch_dataset(train, data.label_ids(train), prep, hop, options.batch_size,
                                    seed=options.seed, noise=noise, short_clips=short)
        valid_ds = ds.patch_dataset(valid, data.label_ids(valid), prep, hop, options.batch_size,
                                    shuffle=False, short_clips=short)
        _log(f"{run}: training {config.name} from scratch "
             f"({backbone.count_params():,} parameters)")
        history = train_end_to_end(model, train_ds, valid_ds, len(data.classes),
                                   data.label_ids(train), options.epochs,
                                   options.learning_rate, options.patience,
                                   out / "logs" / run, label=run,
                                   warmup_epochs=WARMUP_EPOCHS, strategy=strategy)
        predict = _predictor(keras.Model(model.input, model.output))
        outs = run_patches(predict, test, prep, hop, options.batch_size, "test",
                           options.progress, short)
        return backbone, compression, history, _evaluate(outs, test, data)

    histories: dict[str, dict] = {}
    metrics: dict[str, Any] = {"stage": "scratch"}
    if data.folds:
        per_fold: dict[str, dict[str, Any]] = {}
        trained: dict[str, dict[str, float]] = {}
        for fold, train, valid, test in fold_splits(data, options.seed, options.max_folds):
            backbone, compression, histories[f"fold{fold}"], per_fold[str(fold)] = fit(
                train, valid, test, f"fold{fold}")
            trained[str(fold)] = compression_weights(compression)
            _log(f"fold {fold}: accuracy {per_fold[str(fold)]['accuracy']:.3f}")
        metrics.update(summarize_folds(per_fold), folds=per_fold,
                       evaluated_on=f"{len(per_fold)}-fold cross-validation, from scratch",
                       accuracy=summarize_folds(per_fold)["accuracy_mean"],
                       macro_f1=summarize_folds(per_fold)["macro_f1_mean"],
                       # Training a further model on all folds would double the cost of a
                       # from-scratch run: the saved preset is the last fold's model.
                       saved_model=f"fold {fold} model (trained without fold {fold})")
        metrics["confusion_matrix"] = np.sum(
            [m["confusion_matrix"] for m in per_fold.values()], axis=0).tolist()
        if any(trained.values()):
            metrics["trained_frontend_per_fold"] = trained
    else:
        test = data.split("test")
        backbone, compression, histories["scratch"], evaluation = fit(
            data.split("train"), data.split("valid"), test, "scratch")
        metrics.update(evaluation)
        metrics["evaluated_on"] = f"{data.name} test split ({len(test)} clips)"
    metrics["frontend"] = prep.compression
    values = compression_weights(compression)
    if values:
        metrics["trained_frontend"] = values
    _save(config, backbone, out, _summary(metrics), trained_compression=compression)
    return metrics, histories
