"""Run by tests/finetune/test_finetune_distribute.py in a fresh process (logical CPU devices must be
configured before TensorFlow initialises its devices): train a tiny head and a tiny end-to-end
model on one device and with ``MirroredStrategy`` over 2 logical CPUs, same global batch and
seed, and print their numbers as one JSON line.

    python tests/distribute_parity.py             # one device vs mirrored on 2 logical CPUs
    TF_CONFIG=... python tests/distribute_parity.py --multi-worker   # one worker of a cluster

Both runs of a pair go through the same input pipeline (`zoo.finetune.train.array_dataset` /
an unshuffled ``tf.data`` of patches) under ``tf.distribute.get_strategy()`` (one device) and
under the mirrored strategy; dropout (head and musicnn) is 0 and SpecAugment off, since
per-replica random masks differ from one device's by design, and batch-norm statistics are
frozen (as in stage 2).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import keras  # importing TensorFlow does not initialise its devices; the first op does
import numpy as np
import tensorflow as tf

from zoo.finetune.distribute import (
    DistributeError,
    configure_cpu_devices,
    describe,
    make_strategy,
)
from zoo.finetune.train import train_head

sys.path.insert(0, str(Path(__file__).resolve().parent))

GLOBAL_BATCH = 8
SEED = 3


def head_data(seed: int = 0) -> tuple[np.ndarray, ...]:
    """96 training and 32 validation 'embeddings' of 3 overlapping classes (whole batches of
    8; an uneven last batch is weighted per replica, not per example)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((3, 16)).astype(np.float32)

    def draw(n):
        y = np.arange(n) % 3
        return (centres[y] + 1.5 * rng.standard_normal((n, 16))).astype(np.float32), y

    x, y = draw(96)
    xv, yv = draw(32)
    y[:6] = 0  # unbalanced: the class weights take part
    return x, y, xv, yv


def weight_diff(a: keras.Model, b: keras.Model) -> float:
    return max(float(np.abs(p - q).max()) for p, q in
               zip(a.get_weights(), b.get_weights(), strict=True))


def run_heads(strategies: dict[str, tf.distribute.Strategy]) -> dict[str, dict]:
    x, y, xv, yv = head_data()
    runs = {}
    for name, strategy in strategies.items():
        started = time.perf_counter()
        head, history = train_head(x, y, xv, yv, 3, head_units=(8,), dropout=0.0, epochs=8,
                                   learning_rate=1e-2, patience=100, batch_size=GLOBAL_BATCH,
                                   seed=SEED, strategy=strategy)
        runs[name] = {"model": head, "replicas": int(strategy.num_replicas_in_sync),
                      "loss": history["loss"][-1], "accuracy": history["accuracy"][-1],
                      "val_loss": history["val_loss"][-1],
                      "val_accuracy": history["val_accuracy"][-1],
                      "seconds": round(time.perf_counter() - started, 2)}
    return runs


def run_end_to_end(strategies: dict[str, tf.distribute.Strategy]) -> dict[str, dict]:
    """A classifier on the tiny random musicnn, trained whole on waveform patches."""
    from finetune_data import make_tiny_preset

    from zoo.finetune.runner import FinetuneOptions, _classifier_config
    from zoo.finetune.train import freeze_batch_norm, train_end_to_end, training_model
    from zoo.models.loading import load
    from zoo.models.pipeline import build_backbone

    with tempfile.TemporaryDirectory() as tmp:
        base = load(make_tiny_preset(Path(tmp) / "tiny")).zoo_preset
    # musicnn's own dropout off too (random masks are per replica).
    base = dataclasses.replace(base, architecture_config={**base.architecture_config,
                                                          "dropout": 0.0})
    config = _classifier_config(base, SimpleNamespace(classes=("a", "b", "c")), "genre",
                                FinetuneOptions(head_units=(8,), dropout=0.0, name="parity"))
    samples = config.preprocessing.patch_samples
    rng = np.random.default_rng(1)
    labels = np.arange(48) % 3
    t = np.arange(samples) / config.preprocessing.sample_rate
    waves = (0.3 * np.sin(2 * np.pi * 300 * (labels[:, None] + 1) * t)
             + 0.05 * rng.standard_normal((48, samples))).astype(np.float32)

    def batches(lo, hi):
        ds = tf.data.Dataset.from_tensor_slices((waves[lo:hi], labels[lo:hi]))
        return ds.batch(GLOBAL_BATCH), -(-(hi - lo) // GLOBAL_BATCH)

    runs = {}
    for name, strategy in strategies.items():
        started = time.perf_counter()
        keras.utils.set_random_seed(SEED)
        with strategy.scope():
            classifier = build_backbone(config)
            freeze_batch_norm(classifier)
            model, _ = training_model(config, classifier, spec_augment=None)
        history = train_end_to_end(model, batches(0, 32), batches(32, 48), 3, labels[:32],
                                   epochs=3, learning_rate=1e-3, patience=100, log_dir=None,
                                   label=f"parity {name}", strategy=strategy)
        runs[name] = {"model": model, "replicas": int(strategy.num_replicas_in_sync),
                      "loss": history["loss"][-1], "accuracy": history["accuracy"][-1],
                      "val_loss": history["val_loss"][-1],
                      "val_accuracy": history["val_accuracy"][-1],
                      "seconds": round(time.perf_counter() - started, 2)}
    return runs


def compare(runs: dict[str, dict], reference: str = "one_device") -> dict[str, dict]:
    ref = runs[reference]
    report = {}
    for name, run in runs.items():
        report[name] = {k: v for k, v in run.items() if k != "model"}
        if name != reference:
            report[name].update(
                loss_rel_diff=abs(run["loss"] - ref["loss"]) / abs(ref["loss"]),
                val_loss_rel_diff=abs(run["val_loss"] - ref["val_loss"]) / abs(ref["val_loss"]),
                accuracy_diff=abs(run["accuracy"] - ref["accuracy"]),
                val_accuracy_diff=abs(run["val_accuracy"] - ref["val_accuracy"]),
                max_weight_diff=weight_diff(run["model"], ref["model"]))
    return report


def main() -> None:
    if "--multi-worker" in sys.argv:
        keras.config.disable_traceback_filtering()
        # One worker of the TF_CONFIG cluster (one CPU each): the head only.
        strategy = make_strategy("multi-worker")
        run = run_heads({"worker": strategy})["worker"]
        run["weights_sum"] = float(sum(np.abs(w).sum() for w in run.pop("model").get_weights()))
        run["describe"] = describe("multi-worker", strategy)
        print("PARITY " + json.dumps(run))
        return
    devices = configure_cpu_devices(2)  # before anything makes a tensor
    strategies = {"one_device": tf.distribute.get_strategy(),
                  "mirrored": make_strategy("mirrored")}
    heads = run_heads(strategies)
    result = {"devices": devices, "global_batch": GLOBAL_BATCH,
              "one_device_head_weights_sum": float(sum(
                  np.abs(w).sum() for w in heads["one_device"]["model"].get_weights())),
              "head": compare(heads),
              "end_to_end": compare(run_end_to_end(strategies))}
    # TensorFlow has initialised its devices: another count must fail clearly, the same is fine.
    try:
        configure_cpu_devices(3)
        result["late_error"] = None
    except DistributeError as err:
        result["late_error"] = str(err)
    result["same_count_again"] = configure_cpu_devices(2) == devices
    print("PARITY " + json.dumps(result))


if __name__ == "__main__":
    main()
