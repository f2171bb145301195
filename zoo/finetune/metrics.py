"""Single-label classification metrics in numpy: accuracy, macro-F1, per class, confusion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """``cm[i, j]`` = clips of true class ``i`` predicted as ``j``.

    Example:
        >>> confusion_matrix([0, 1, 1], [0, 0, 1], 2).tolist()
        [[1, 0], [1, 1]]
    """
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return cm


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # 0/0 counts as 0 (a class never predicted has precision 0), as scikit-learn's default does.
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int],
                           classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 (mean over the classes that have test clips), per-class precision,
    recall, F1 and support, and the confusion matrix.

    Args:
        y_true: true class ids.
        y_pred: predicted class ids.
        classes: class names (index = id).

    Returns:
        A JSON-ready dict: ``accuracy``, ``macro_f1``, ``n``, ``per_class``
        (``{name: {precision, recall, f1, support}}``), ``confusion_matrix`` (rows = true),
        ``classes``.

    Raises:
        ValueError: empty or mismatched inputs.

    Example:
        >>> classification_metrics([0, 0, 1], [0, 1, 1], ["a", "b"])["accuracy"]
        0.6666666666666666
    """
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"need equal, non-empty label arrays, got {y_true.shape} and "
                         f"{y_pred.shape}")
    cm = confusion_matrix(y_true, y_pred, len(classes))
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    precision = _ratio(tp, cm.sum(axis=0).astype(np.float64))
    recall = _ratio(tp, support.astype(np.float64))
    f1 = _ratio(2 * precision * recall, precision + recall)
    present = support > 0  # a fold may lack a class (US8K): it has no recall to average
    return {
        "accuracy": float(tp.sum() / y_true.size),
        "macro_f1": float(f1[present].mean()),
        "n": int(y_true.size),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]),
                             "f1": float(f1[i]), "support": int(support[i])}
                      for i, name in enumerate(classes)},
        "confusion_matrix": cm.tolist(),
        "classes": list(classes),
    }


def summarize_folds(per_fold: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Mean and standard deviation of accuracy and macro-F1 over folds."""
    acc = np.array([m["accuracy"] for m in per_fold.values()])
    f1 = np.array([m["macro_f1"] for m in per_fold.values()])
    return {"accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std()),
            "macro_f1_mean": float(f1.mean()), "macro_f1_std": float(f1.std())}
