"""Metric-learning losses on a batch of embeddings labelled by group (e.g. the track).

Both take ``y_true`` = integer group ids ``(batch,)`` (or ``(batch, 1)``) and ``y_pred`` =
embeddings ``(batch, dim)``; rows of one group are positives of each other, every other row is a
negative. Batches from `zoo.models.siamese.samplers.TrackBatchSampler` (P groups x K rows) have
positives for every row. Both are serializable Keras losses (``keras.losses.get`` / ``.keras``
files find them by their registered names).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

MINING = ("batch_hard", "semi_hard", "batch_all")


def _masks(y_true, batch_size_like):
    labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    same = ops.equal(labels[:, None], labels[None, :])
    eye = ops.cast(ops.eye(ops.shape(batch_size_like)[0]), "bool")
    positive = ops.logical_and(same, ops.logical_not(eye))
    negative = ops.logical_not(same)
    return positive, negative, eye


def pairwise_distances(x, squared: bool = False):
    """Euclidean distances between the rows of ``x`` ``(n, dim)`` -> ``(n, n)``.

    The square root has a finite gradient at 0 (the diagonal, and duplicate rows).
    """
    dot = ops.matmul(x, ops.transpose(x))
    norms = ops.diagonal(dot)
    d2 = ops.maximum(norms[:, None] - 2.0 * dot + norms[None, :], 0.0)
    if squared:
        return d2
    zero = ops.cast(ops.equal(d2, 0.0), d2.dtype)
    return ops.sqrt(d2 + zero * 1e-16) * (1.0 - zero)


@keras.saving.register_keras_serializable(package="zoo")
class TripletLoss(keras.losses.Loss):
    """Triplet margin loss ``max(d(a, p) - d(a, n) + margin, 0)`` with in-batch mining.

    Distances are Euclidean (for unit vectors ``d^2 = 2 - 2 cos``).

    Args:
        margin: the margin.
        mining: ``"batch_hard"`` (per anchor: its farthest positive and nearest negative;
            Hermans et al., 2017), ``"semi_hard"`` (per anchor-positive pair: the nearest
            negative farther than the positive, else the farthest negative; Schroff et al.,
            2015), or ``"batch_all"`` (mean over the anchor's triplets with a positive loss).
        squared: use squared distances.

    Per-row loss: the anchor's loss (``semi_hard`` and ``batch_all``: averaged over its
    positives / active triplets); a row without a positive or a negative in the batch gives 0.
    """

    def __init__(self, margin: float = 0.2, mining: str = "batch_hard", squared: bool = False,
                 name: str = "triplet_loss", reduction: str = "sum_over_batch_size", **kwargs):
        if mining not in MINING:
            raise ValueError(f"mining must be one of {MINING}, got {mining!r}")
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.margin = float(margin)
        self.mining = mining
        self.squared = bool(squared)

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        d = pairwise_distances(y_pred, self.squared)
        positive, negative, _ = _masks(y_true, y_pred)
        pos_f, neg_f = ops.cast(positive, d.dtype), ops.cast(negative, d.dtype)
        has_pos = ops.max(pos_f, axis=1)
        has_neg = ops.max(neg_f, axis=1)
        valid = has_pos * has_neg
        big = ops.max(d) + 1.0
        if self.mining == "batch_hard":
            hardest_pos = ops.max(d * pos_f, axis=1)
            hardest_neg = ops.min(d + (1.0 - neg_f) * big, axis=1)
            return ops.relu(hardest_pos - hardest_neg + self.margin) * valid
        # [anchor, positive, negative] triplet terms.
        d_ap = d[:, :, None]
        d_an = d[:, None, :]
        if self.mining == "batch_all":
            mask = pos_f[:, :, None] * neg_f[:, None, :]
            losses = ops.relu(d_ap - d_an + self.margin) * mask
            active = ops.cast(losses > 1e-16, d.dtype)
            return ops.sum(losses, axis=(1, 2)) / ops.maximum(ops.sum(active, axis=(1, 2)), 1.0)
        # semi_hard: per (a, p), the nearest negative with d(a, n) > d(a, p) ...
        farther = ops.cast(d_an > d_ap, d.dtype) * neg_f[:, None, :]
        semi = ops.min(d_an + (1.0 - farther) * big, axis=2)
        # ... or, if none is farther, the farthest negative.
        hardest = ops.max(d * neg_f, axis=1)[:, None]
        chosen = ops.where(ops.max(farther, axis=2) > 0, semi, hardest)
        per_pair = ops.relu(d - chosen + self.margin) * pos_f
        per_anchor = ops.sum(per_pair, axis=1) / ops.maximum(ops.sum(pos_f, axis=1), 1.0)
        return per_anchor * valid

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "margin": self.margin, "mining": self.mining,
                "squared": self.squared}


@keras.saving.register_keras_serializable(package="zoo")
class NTXentLoss(keras.losses.Loss):
    """NT-Xent (normalised temperature-scaled cross entropy; SimCLR), with several positives.

    For anchor ``i`` with positives ``P(i)`` (same group, not ``i``):
    ``-1/|P(i)| sum_{p in P(i)} log(exp(s_ip / t) / sum_{a != i} exp(s_ia / t))``, with ``s``
    the cosine similarity. With two rows per group this is SimCLR's NT-Xent; with more it is the
    supervised-contrastive form (Khosla et al., 2020) where the "labels" are the groups.

    Args:
        temperature: ``t``.

    The rows are L2-normalised inside the loss (a no-op on `L2Normalize` output). A row without
    positives gives 0.
    """

    def __init__(self, temperature: float = 0.1, name: str = "nt_xent_loss",
                 reduction: str = "sum_over_batch_size", **kwargs):
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        super().__init__(name=name, reduction=reduction, **kwargs)
        self.temperature = float(temperature)

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        z = y_pred / ops.sqrt(ops.maximum(ops.sum(ops.square(y_pred), axis=1, keepdims=True),
                                          1e-12))
        logits = ops.matmul(z, ops.transpose(z)) / self.temperature
        positive, _, eye = _masks(y_true, y_pred)
        pos_f = ops.cast(positive, logits.dtype)
        # Leave each row's self-similarity out of the softmax denominator.
        logits = ops.where(eye, ops.full_like(logits, -1e9), logits)
        log_prob = logits - ops.logsumexp(logits, axis=1, keepdims=True)
        n_pos = ops.sum(pos_f, axis=1)
        return -ops.sum(log_prob * pos_f, axis=1) / ops.maximum(n_pos, 1.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "temperature": self.temperature}
