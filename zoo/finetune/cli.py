"""``zoo finetune TASK DATA_DIR --backbone PRESET --out DIR``: the command-line front of
`zoo.finetune.finetune`."""

from __future__ import annotations

import argparse
import sys

TASKS = ("genre", "esc50", "urbansound8k", "speech_commands")
FRONTEND_CHOICES = ("log-eps", "log10", "log-learn", "db", "pcen")
# zoo.finetune.distribute.STRATEGIES (not imported: it would load TensorFlow for --help).
DISTRIBUTE_CHOICES = ("none", "mirrored", "multi-worker")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_finetune_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``finetune`` on the ``zoo`` command's subparsers.

    Returns:
        The subparser.
    """
    p = subparsers.add_parser(
        "finetune", help="train a classifier on a labelled dataset and save it as a preset",
        description="Fine-tune a pretrained preset (stage 1: head on cached embeddings; "
                    "optional stage 2: whole model) or train a mel-CNN from scratch "
                    "(--backbone melcnn, speech_commands). Writes a preset that zoo.load and "
                    "zoo export accept, metrics.json, confusion.png, learning_curves.png and "
                    "TensorBoard logs.")
    p.add_argument("task", choices=TASKS)
    p.add_argument("data_dir", help="the dataset's root as distributed (GTZAN: the folder "
                                    "holding genres/)")
    p.add_argument("--backbone", default="musicnn_msd",
                   help="preset name or directory to fine-tune, or 'melcnn' to train from "
                        "scratch (default musicnn_msd)")
    p.add_argument("--out", required=True, help="output folder (the preset and reports)")
    p.add_argument("--name", help="preset name (default TASK_BACKBONE)")
    p.add_argument("--epochs", type=int, default=100, help="stage-1 / from-scratch epochs at "
                                                           "most (early stopping)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3, help="stage-1 / from-scratch learning rate")
    p.add_argument("--head-units", type=int, nargs="*", default=[256],
                   help="hidden layers of the head (none: linear head)")
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--patience", type=int, default=10, help="early-stopping patience (epochs)")
    p.add_argument("--fine-tune-epochs", type=int, default=0,
                   help="stage 2: unfreeze the backbone for up to N epochs (default 0: off)")
    p.add_argument("--fine-tune-lr", type=float, default=1e-5)
    p.add_argument("--hop", type=float, default=None,
                   help="hop between patches in seconds (default: the patch length)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classes", choices=("12", "35"), default="12",
                   help="speech_commands task: 10 words + unknown + silence, or all 35 words "
                        "+ silence")
    p.add_argument("--silence-ratio", type=float, default=1.0,
                   help="speech_commands: silence clips (background-noise crops) per word's "
                        "count; 0 leaves the silence class out of the 35-word task")
    p.add_argument("--frontend", choices=FRONTEND_CHOICES, default="log-eps",
                   help="log front-end of the from-scratch mel-CNN")
    p.add_argument("--no-noise", action="store_true",
                   help="speech: no background-noise mixing")
    p.add_argument("--max-folds", type=int, default=None,
                   help="evaluate only the first N folds (quick runs)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--distribute", choices=DISTRIBUTE_CHOICES, default="none",
                   help="train on several devices with tf.distribute: 'mirrored' (every GPU "
                        "of this machine, or the logical CPUs of --cpu-devices), "
                        "'multi-worker' (several machines, cluster from the TF_CONFIG "
                        "environment variable; one worker without it). --batch-size stays the "
                        "global batch, split across the replicas (default none: one device)")
    p.add_argument("--cpu-devices", type=_positive_int, default=None, metavar="N",
                   help="with --distribute mirrored: split the CPU into N logical devices and "
                        "mirror over them (machines without GPUs; tests)")
    p.set_defaults(func=cmd_finetune)
    return p


def cmd_finetune(args: argparse.Namespace) -> int:
    """Run ``zoo finetune``; exit status 0 on success, 2 on bad input."""
    from zoo.errors import ZooError
    from zoo.finetune.runner import FinetuneOptions, finetune

    if args.cpu_devices is not None and args.distribute != "mirrored":
        print("zoo finetune: --cpu-devices needs --distribute mirrored (a multi-worker "
              "strategy uses one CPU per worker)", file=sys.stderr)
        return 2
    options = FinetuneOptions(
        backbone=args.backbone, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.lr, head_units=tuple(args.head_units), dropout=args.dropout,
        patience=args.patience, fine_tune_epochs=args.fine_tune_epochs,
        fine_tune_learning_rate=args.fine_tune_lr, hop_seconds=args.hop, seed=args.seed,
        speech_task=args.classes, speech_silence_ratio=args.silence_ratio,
        frontend=args.frontend, max_folds=args.max_folds,
        noise=not args.no_noise, progress=not args.quiet, name=args.name,
        distribute=args.distribute, cpu_devices=args.cpu_devices)
    try:
        metrics = finetune(args.task, args.data_dir, args.out, options)
    except (ZooError, FileNotFoundError, ValueError) as err:
        print(f"zoo finetune: {err}", file=sys.stderr)
        return 2
    score = metrics.get("accuracy_mean", metrics.get("accuracy"))
    print(f"{args.out}: accuracy {score:.4f}, macro-F1 "
          f"{metrics.get('macro_f1_mean', metrics.get('macro_f1')):.4f} "
          f"({metrics['evaluated_on']})")
    return 0
