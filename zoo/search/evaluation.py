"""Retrieval metrics of query-by-example search, and the excerpt protocol they are measured on.

Protocol (`scripts/eval_similarity.py`, docs/search.md): each track of a catalogue is entered as
its first `ENTRY_SECONDS`; the query is a disjoint `QUERY_SECONDS` excerpt from later in the
track (`query_start`), played clean or degraded (`degrade_query`). Two questions:

* **same track**: is the query's own track first (recall@1), in the top 10 (recall@10); mean
  average precision (one relevant file per query: the mean reciprocal rank) and MR1, the mean
  rank of the first correct file, as in cover-song benchmarks (Da-TACOS, MIREX);
* **style**: among the top 5 / 10 results that are *other* tracks (the query's own removed),
  the fraction with the query's style label.

Example:
    >>> m = same_track_metrics(scores, query_track=np.array([0, 1]))
    >>> m["recall@1"], m["MR1"]
    (1.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ENTRY_SECONDS = 30.0
QUERY_SECONDS = 10.0
QUERY_GAP_SECONDS = 5.0  # the query starts at least this long after the entry ends
CONDITIONS = ("clean", "gain-6dB", "noise30dB", "mp3-32k")
"""Query conditions: as recorded; 6 dB quieter; white noise at 30 dB SNR; MP3 at 32 kbit/s."""


def query_start(duration: float, rng: np.random.Generator) -> float:
    """Seeded start (s) of the query excerpt: uniform in ``[entry + gap, duration - query]``.

    Raises:
        ValueError: the track is too short for a disjoint query.
    """
    low = ENTRY_SECONDS + QUERY_GAP_SECONDS
    high = duration - QUERY_SECONDS
    if high < low:
        raise ValueError(f"a {duration:.1f} s track is too short for a {QUERY_SECONDS:.0f} s "
                         f"query after its {ENTRY_SECONDS:.0f} s entry (needs "
                         f"{low + QUERY_SECONDS:.0f} s)")
    return float(rng.uniform(low, high))


def degrade_query(x: np.ndarray, sr: int, condition: str,
                  rng: np.random.Generator) -> np.ndarray:
    """The query excerpt under one of `CONDITIONS`."""
    from zoo.audio import degrade

    if condition == "clean":
        return np.asarray(x, np.float32)
    if condition == "gain-6dB":
        return degrade.gain(x, -6.0)
    if condition == "noise30dB":
        return degrade.add_noise(x, 30.0, rng)
    if condition == "mp3-32k":
        return degrade.mp3_roundtrip(x, sr, bitrate_kbps=32)
    raise ValueError(f"unknown condition {condition!r}; known: {', '.join(CONDITIONS)}")


def ranks_of(scores: np.ndarray, target: np.ndarray) -> np.ndarray:
    """1-based rank of column ``target[i]`` in row ``i`` of ``scores`` (higher = better; ties
    count against the target)."""
    scores = np.asarray(scores, np.float64)
    own = scores[np.arange(len(scores)), target]
    return np.sum(scores >= own[:, None], axis=1)  # the target itself counts once: rank 1


def same_track_metrics(scores: np.ndarray, query_track: np.ndarray) -> dict[str, float]:
    """recall@1, recall@10, mAP and MR1 of queries whose own track is column ``query_track``."""
    query_track = np.asarray(query_track)
    ranks = ranks_of(scores, query_track)
    return {"recall@1": float(np.mean(ranks <= 1)), "recall@10": float(np.mean(ranks <= 10)),
            "mAP": float(np.mean(1.0 / ranks)), "MR1": float(np.mean(ranks)),
            "queries": int(len(ranks))}


def style_precision(scores: np.ndarray, query_track: np.ndarray, styles: Sequence[str],
                    ks: Sequence[int] = (5, 10)) -> dict[str, float]:
    """Style precision@k over other tracks, and its ceiling (a perfect ranking's value).

    Args:
        scores: ``(queries, files)``, higher = more similar.
        query_track: the query's own file (left out of its ranking).
        styles: style label of every file.
        ks: cut-offs.
    """
    styles = np.asarray(styles)
    query_track = np.asarray(query_track)
    out: dict[str, float] = {}
    order = np.argsort(-np.asarray(scores, np.float64), axis=1, kind="stable")
    for k in ks:
        hits, ceiling = [], []
        for row, own in zip(order, query_track, strict=True):
            others = row[row != own][:k]
            same = styles[others] == styles[own]
            hits.append(float(np.mean(same)))
            available = int(np.sum(styles == styles[own])) - 1
            ceiling.append(min(k, available) / k)
        out[f"style_p@{k}"] = float(np.mean(hits))
        out[f"style_p@{k}_ceiling"] = float(np.mean(ceiling))
    return out
