"""Segment-level retrieval: a file is scored by how well its segments match the query's.

A catalogue file holds one unit vector per segment (a model patch, e.g. 3 s); so does the
query. The score of a file for a query is

    score(query, file) = mean over query segments q of  max over the file's segments c of  q . c

(the cosine of each query segment with its best match in the file, averaged), and the reported
distance is ``1 - score``. A file that contains the query's passage, or passages that sound
like each of its parts, scores high even if the rest of it sounds different: a mean vector per
file blurs that away.

Search has two steps, so it scales to catalogues of tens of millions of segments:

1. **Candidates**: every query segment fetches its ``per_segment`` nearest catalogue segments
   (an exact scan of the memory-mapped vectors, or a compressed faiss IVF-PQ index above
   `zoo.search.ann.SEGMENT_FLAT_MAX` segments); the files they belong to are the candidates,
   ordered by the partial score those hits give, and at most ``max_candidates`` are kept.
2. **Exact re-ranking**: each candidate's segments are read from the full-precision vectors and
   the score above is computed exactly; the best-matching catalogue segment of each query
   segment is kept for `explain`.

Example:
    >>> table = SegmentTable.from_counts([3, 2], starts=np.array([0, 3, 6, 0, 3.]))
    >>> table.files_of(np.array([0, 2, 3]))
    array([0, 0, 1])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from zoo.search import ann

DEFAULT_PER_SEGMENT = 100
"""Nearest catalogue segments fetched per query segment (step 1)."""

DEFAULT_MAX_CANDIDATES = 256
"""Files re-ranked exactly at most (step 2); at least ``4 x top`` are always kept."""

PLATEAU_STEPS = 3
PLATEAU_GAIN = 0.002

SegmentSearch = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]
"""``(queries (m, dim), k) -> (similarities (m, k), segment ids (m, k); -1 = none)``."""


@dataclass(frozen=True)
class SegmentTable:
    """Which segments belong to which file, and when each segment starts.

    Attributes:
        offsets: ``(files + 1,)`` int64; file ``i`` owns segment rows
            ``offsets[i]:offsets[i + 1]`` (in time order).
        starts: ``(segments,)`` float32 start time of every segment, seconds.
    """

    offsets: np.ndarray
    starts: np.ndarray

    @classmethod
    def from_counts(cls, counts: Sequence[int], starts: np.ndarray) -> SegmentTable:
        """The table of files with ``counts[i]`` segments each (starts concatenated in order)."""
        offsets = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(np.asarray(counts, np.int64), out=offsets[1:])
        return cls(offsets, np.asarray(starts, np.float32))

    @property
    def n_files(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_segments(self) -> int:
        return int(self.offsets[-1])

    def counts(self) -> np.ndarray:
        """Segments per file."""
        return np.diff(self.offsets)

    def rows(self, file: int) -> slice:
        """The segment rows of ``file``."""
        return slice(int(self.offsets[file]), int(self.offsets[file + 1]))

    def files_of(self, rows: np.ndarray) -> np.ndarray:
        """The file of each segment row (rows must be valid, ``>= 0``)."""
        return np.searchsorted(self.offsets, rows, side="right") - 1

    def check(self) -> str | None:
        """What is inconsistent in the table, or None."""
        if self.offsets.ndim != 1 or len(self.offsets) < 1 or self.offsets[0] != 0:
            return "segment offsets must start at 0"
        if np.any(np.diff(self.offsets) < 1):
            return "every file must have at least one segment"
        if self.starts.shape != (self.n_segments,):
            return (f"{len(self.starts)} segment start times for {self.n_segments} "
                    "segments")
        return None


@dataclass(frozen=True)
class FileScore:
    """The exact score of one catalogue file for one query.

    Attributes:
        file: the file's index in the catalogue.
        score: mean over query segments of the best cosine in the file.
        best_rows: ``(query segments,)`` the catalogue segment row each query segment matched.
        best_similarities: ``(query segments,)`` the cosine of each of those matches.
    """

    file: int
    score: float
    best_rows: np.ndarray
    best_similarities: np.ndarray

    @property
    def distance(self) -> float:
        """``1 - score``, clipped to [0, 2]."""
        return float(min(max(1.0 - self.score, 0.0), 2.0))


def score_file(query: np.ndarray, segments: np.ndarray, table: SegmentTable,
               file: int) -> FileScore:
    """`FileScore` of ``file``: the exact aggregate over all of its segments.

    Args:
        query: ``(m, dim)`` unit query segments.
        segments: ``(segments, dim)`` unit catalogue segments (may be memory-mapped: only the
            file's rows are read).
        table: the catalogue's `SegmentTable`.
        file: the file to score.
    """
    rows = table.rows(file)
    block = np.asarray(segments[rows], np.float32)
    sims = query @ block.T  # (m, file segments)
    best = np.argmax(sims, axis=1)
    best_sims = sims[np.arange(len(query)), best]
    return FileScore(file, float(np.mean(best_sims, dtype=np.float64)),
                     best + rows.start, best_sims.astype(np.float32))


def candidate_files(similarities: np.ndarray, ids: np.ndarray, table: SegmentTable,
                    max_candidates: int) -> np.ndarray:
    """Files behind the fetched segments, best partial score first, at most ``max_candidates``.

    The partial score of a file is the mean over query segments of the best similarity among
    *its fetched* segments (0 where a query segment fetched none of them): a lower bound of
    the exact score that needs no further reads.
    """
    m = len(ids)
    valid = ids >= 0
    if not np.any(valid):
        return np.zeros(0, np.int64)
    files = table.files_of(ids[valid])
    query_rows = np.broadcast_to(np.arange(m)[:, None], ids.shape)[valid]
    sims = similarities[valid].astype(np.float64)
    unique, inverse = np.unique(files, return_inverse=True)
    best = np.full((len(unique), m), -np.inf)
    np.maximum.at(best, (inverse, query_rows), sims)
    best[np.isinf(best)] = 0.0
    partial = best.mean(axis=1)
    order = np.argsort(-partial, kind="stable")[:max_candidates]
    return unique[order]


def rank_files(query: np.ndarray, segments: np.ndarray, table: SegmentTable,
               search: SegmentSearch, top: int, *, per_segment: int = DEFAULT_PER_SEGMENT,
               max_candidates: int = DEFAULT_MAX_CANDIDATES) -> list[FileScore]:
    """The ``top`` files with the best exact segment score for ``query``, best first.

    Args:
        query: ``(m, dim)`` unit query segments.
        segments: ``(segments, dim)`` unit catalogue segments.
        table: their `SegmentTable`.
        search: nearest-segment search (`SegmentSearch`), exact or approximate.
        top: how many files.
        per_segment: segments fetched per query segment.
        max_candidates: files re-ranked exactly (at least ``4 * top``).

    Returns:
        `FileScore` rows, highest score first (ties by file index).
    """
    query = np.ascontiguousarray(query, np.float32)
    if query.ndim != 2 or len(query) == 0:
        raise ValueError(f"need (segments, dim) query vectors, got shape {query.shape}")
    k = max(1, min(int(per_segment), table.n_segments))
    similarities, ids = search(query, k)
    pool = max(int(max_candidates), 4 * int(top))
    files = candidate_files(similarities, ids, table, pool)
    scored = [score_file(query, segments, table, int(f)) for f in files]
    scored.sort(key=lambda s: (-s.score, s.file))
    return scored[:top]


def exact_scores(query: np.ndarray, segments: np.ndarray, table: SegmentTable) -> np.ndarray:
    """The exact score of every file (a full scan; for evaluation and tests), ``(files,)``."""
    sims = np.asarray(query, np.float32) @ np.asarray(segments, np.float32).T
    best = np.maximum.reduceat(sims, table.offsets[:-1], axis=1)  # (m, files)
    return best.mean(axis=0, dtype=np.float64)


def _distinct_files(ids: np.ndarray, table: SegmentTable, own: int, k: int) -> list[int]:
    """The first ``k`` distinct files behind a ranked row of segment ids, ``own`` left out."""
    out: list[int] = []
    for f in table.files_of(ids[ids >= 0]).tolist():
        if f != own and f not in out:
            out.append(f)
            if len(out) == k:
                break
    return out


def calibrate_nprobe(index: object, segments: np.ndarray, table: SegmentTable, *,
                     k: int = 10, target_recall: float = 0.97, n_queries: int = 200,
                     seed: int = 0, per_segment: int = DEFAULT_PER_SEGMENT,
                     max_candidates: int = DEFAULT_MAX_CANDIDATES
                     ) -> tuple[int, float, dict[str, float], int]:
    """The smallest ``nprobe`` of an IVF-PQ segment index whose re-ranked top ``k`` files
    match the exact top ``k`` (recall) at ``target_recall``.

    Queries are single indexed segments (a random sample); each query's own file is left out
    of both rankings. The exact ranking of files for one segment is the order of their best
    segment, from an exact scan. Where the product quantisation itself caps the recall below
    the target (near-duplicate files that its codes cannot tell apart), growing ``nprobe``
    stops paying: after `PLATEAU_STEPS` steps without a gain of `PLATEAU_GAIN`, the smallest
    ``nprobe`` within `PLATEAU_GAIN` of the best recall is kept.

    Returns:
        ``(nprobe, recall at it, {nprobe: recall} tried, queries used)``.
    """
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(table.n_segments, size=min(n_queries, table.n_segments),
                              replace=False))
    queries = np.ascontiguousarray(segments[rows], np.float32)
    owners = table.files_of(rows)
    k = min(k, table.n_files - 1)
    if k <= 0:
        return 1, 1.0, {"1": 1.0}, len(rows)
    _, exact_ids = ann.exact_knn(queries, segments, min(table.n_segments, 50 * (k + 1)))
    truth = [_distinct_files(r, table, int(o), k) for r, o in zip(exact_ids, owners,
                                                                   strict=True)]
    search = ann.index_segment_search(index)
    curve: dict[str, float] = {}
    nprobe, recall = 1, 0.0
    steps = [c for c in ann.NPROBE_STEPS if c < index.nlist] + [index.nlist]
    best, since_gain = -1.0, 0
    for nprobe in steps:
        index.nprobe = nprobe
        hits = []
        for q, own, want in zip(queries, owners, truth, strict=True):
            ranked = rank_files(q[None], segments, table, search, k + 1,
                                per_segment=per_segment, max_candidates=max_candidates)
            got = [s.file for s in ranked if s.file != own][:k]
            hits.append(len(set(got) & set(want)) / max(1, len(want)))
        recall = float(np.mean(hits))
        curve[str(nprobe)] = round(recall, 4)
        if recall >= target_recall:
            break
        since_gain = 0 if recall > best + PLATEAU_GAIN else since_gain + 1
        best = max(best, recall)
        if since_gain >= PLATEAU_STEPS:
            nprobe, recall = next((int(n), r) for n, r in curve.items()
                                  if r >= best - PLATEAU_GAIN)
            break
    index.nprobe = nprobe
    return nprobe, recall, curve, len(rows)
