"""Retrieval metrics for excerpt embeddings: same-track recall@k and style precision@k.

Every excerpt is a query against a gallery of the *other* excerpts, ranked by cosine similarity.
Excerpts of the query's own track that overlap it in time (start times less than ``window``
seconds apart) are left out of its gallery: they share audio, so finding them says nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero)."""
    x = np.asarray(x, np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def group_means(x: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the unit rows of each group, re-normalised (e.g. a clip's or a track's vector).

    Returns:
        ``(means, group ids)``, ids sorted.
    """
    ids, inverse = np.unique(np.asarray(groups), return_inverse=True)
    sums = np.zeros((len(ids), x.shape[1]), np.float64)
    np.add.at(sums, inverse, unit_rows(x))
    return unit_rows(sums), ids


def retrieval_metrics(embeddings: np.ndarray, tracks: Sequence, styles: Sequence | None = None,
                      times: Sequence[float] | None = None, window: float = 0.0,
                      ks: Sequence[int] = (1, 10), style_k: int = 10) -> dict[str, float]:
    """Same-track recall@k and style precision@k of excerpt embeddings (cosine similarity).

    Args:
        embeddings: ``(n, dim)``; need not be normalised.
        tracks: ``(n,)`` track of each excerpt.
        styles: ``(n,)`` style label of each excerpt (None: no style metrics).
        times: ``(n,)`` start (s) of each excerpt in its track (None: all 0, so with
            ``window > 0`` every same-track excerpt counts as overlapping).
        window: same-track excerpts starting less than this far from the query are left out of
            its gallery (the patch length for patches, the clip length for clips).
        ks: cut-offs of the same-track recall.
        style_k: cut-off of the style precision.

    Returns:
        ``recall@k``: fraction of queries with a same-track excerpt among their top k (queries
        whose track has no other non-overlapping excerpt are skipped; ``queries`` counts the
        others); ``style_p@K``: mean fraction of the top K with the query's style among the
        excerpts of *other* tracks; ``style_p@K_all``: the same over the recall gallery (same
        track included); ``n``: excerpts.
    """
    z = unit_rows(embeddings)
    tracks = np.asarray(tracks)
    n = len(z)
    times = np.zeros(n) if times is None else np.asarray(times, np.float64)
    sim = z @ z.T
    same_track = tracks[:, None] == tracks[None, :]
    overlapping = same_track & (np.abs(times[:, None] - times[None, :]) < window)
    excluded = overlapping | np.eye(n, dtype=bool)
    ranked = np.where(excluded, -np.inf, sim)
    # Stable ties: a lower index wins, whatever the platform's sort.
    order = np.argsort(-ranked, axis=1, kind="stable")
    has_positive = (same_track & ~excluded).any(axis=1)
    out: dict[str, float] = {"n": float(n), "queries": float(has_positive.sum())}
    hits = np.take_along_axis(same_track & ~excluded, order, axis=1)
    for k in ks:
        found = hits[:, :k].any(axis=1)
        out[f"recall@{k}"] = float(found[has_positive].mean()) if has_positive.any() else 0.0
    if styles is not None:
        styles = np.asarray(styles)
        same_style = styles[:, None] == styles[None, :]
        # Other tracks only.
        other = np.where(same_track, -np.inf, sim)
        order_other = np.argsort(-other, axis=1, kind="stable")[:, :style_k]
        valid = np.take_along_axis(~same_track, order_other, axis=1)
        good = np.take_along_axis(same_style, order_other, axis=1) & valid
        out[f"style_p@{style_k}"] = float(np.mean(good.sum(1) / np.maximum(valid.sum(1), 1)))
        top = order[:, :style_k]
        valid_all = np.take_along_axis(~excluded, top, axis=1)
        good_all = np.take_along_axis(same_style, top, axis=1) & valid_all
        out[f"style_p@{style_k}_all"] = float(
            np.mean(good_all.sum(1) / np.maximum(valid_all.sum(1), 1)))
    return out
