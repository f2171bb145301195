"""Training reports: metrics.json, a confusion-matrix PNG and learning-curve PNGs."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def write_metrics(path: str | os.PathLike, doc: Mapping[str, Any]) -> Path:
    """Write ``doc`` as indented JSON and return the path."""
    path = Path(path)
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def plot_confusion(cm: Sequence[Sequence[int]], classes: Sequence[str],
                   path: str | os.PathLike, title: str = "Confusion matrix") -> None:
    """Row-normalised confusion matrix (rows = true class) with the counts written in."""
    plt = _pyplot()
    cm = np.asarray(cm, np.float64)
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    size = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(n), classes, fontsize=7)
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=120)
    plt.close(fig)


def plot_learning_curves(histories: Mapping[str, Mapping[str, Sequence[float]]],
                         path: str | os.PathLike) -> None:
    """Loss and accuracy per epoch (train and validation) of each training run, side by side.

    Args:
        histories: run name (``"stage1"``, ``"fold1"``, ...) -> Keras ``History.history``.
        path: PNG to write.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, hist in histories.items():
        for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
            for prefix, style in (("", "-"), ("val_", "--")):
                values = hist.get(prefix + key)
                if values:
                    ax.plot(range(1, len(values) + 1), values, style,
                            label=f"{name} {'val' if prefix else 'train'}")
    for ax, key in zip(axes, ("loss", "accuracy"), strict=True):
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=120)
    plt.close(fig)
