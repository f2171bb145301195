"""A projection head fitted without labels: PCA whitening of unit-normalised features.

Time-pooled CNN features of music share a few dominant directions (overall level, broad
spectral tilt) that a plain cosine between them is mostly made of. Whitening centres the
features, rotates them onto their principal axes and scales every kept axis to unit variance,
so the directions that tell recordings apart weigh as much as the shared ones; the result is
unit-normalised again for cosine search. It is one affine map, so it is exactly a ``siamese``
head with ``projection_units=[dims]`` and ``normalize_feature=True`` (`set_whitening_head`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zoo.models.siamese.model import FEATURE_NORMALIZE, projection_dense_name


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Whitening:
    """``y = unit(unit(x) @ kernel + bias)``, fitted by `fit_whitening`.

    Attributes:
        mean: ``(dim,)`` mean of the unit-normalised fitting rows.
        kernel: ``(dim, dims)`` principal axes, largest variance first, each divided by the
            square root of its variance.
        variances: ``(dim,)`` every variance (eigenvalue), largest first.
    """

    mean: np.ndarray
    kernel: np.ndarray
    variances: np.ndarray

    @property
    def dims(self) -> int:
        return int(self.kernel.shape[1])

    @property
    def bias(self) -> np.ndarray:
        return -self.mean @ self.kernel

    @property
    def variance_kept(self) -> float:
        """Fraction of the total variance in the kept axes."""
        return float(self.variances[: self.dims].sum() / self.variances.sum())

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return _unit(_unit(np.asarray(x, np.float64)) @ self.kernel + self.bias)


def fit_whitening(features: np.ndarray, dims: int, floor: float = 1e-6) -> Whitening:
    """PCA whitening of ``features`` rows (raw; each is unit-normalised first) to ``dims`` axes.

    Args:
        features: ``(n, dim)`` vectors, e.g. one per 3 s patch of many recordings.
        dims: axes kept, ``1 <= dims <= dim``; at most ``n - 1`` carry information.
        floor: added to every variance, relative to the largest, so that near-empty axes are
            not scaled up without bound.

    Raises:
        ValueError: not a 2-D array of finite values, fewer than 2 rows, or ``dims`` out of range.

    Example:
        >>> w = fit_whitening(np.random.default_rng(0).normal(size=(500, 32)), 8)
        >>> w(np.ones((2, 32))).shape
        (2, 8)
    """
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) < 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"need a (n >= 2, dim) array of finite values, got shape {x.shape}")
    if not 1 <= dims <= x.shape[1]:
        raise ValueError(f"dims must be in 1..{x.shape[1]}, got {dims}")
    z = _unit(x)
    mean = z.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(z - mean, rowvar=False))
    order = np.argsort(values)[::-1]
    values, vectors = np.maximum(values[order], 0.0), vectors[:, order]
    kernel = vectors[:, :dims] / np.sqrt(values[:dims] + floor * values[0])
    return Whitening(mean, kernel, values)


def set_whitening_head(model, whitening: Whitening) -> None:
    """Load ``whitening`` into a ``siamese`` model built with ``projection_units=[dims]`` and
    ``normalize_feature=True``.

    Raises:
        ValueError: the model's head is not that shape.
    """
    names = {layer.name for layer in model.layers}
    dense = model.get_layer(projection_dense_name(0)) if projection_dense_name(0) in names else None
    if (FEATURE_NORMALIZE not in names or dense is None or projection_dense_name(1) in names
            or tuple(dense.kernel.shape) != whitening.kernel.shape):
        raise ValueError(f"{model.name}: not a one-layer head of shape {whitening.kernel.shape} "
                         "on a normalised feature (projection_units=[dims], "
                         "normalize_feature=True)")
    dense.set_weights([whitening.kernel.astype(np.float32), whitening.bias.astype(np.float32)])
