"""The approximate-nearest-neighbour layer: faiss indexes over unit vectors, inner product metric.

Vectors are L2-normalised, so the inner product is the cosine similarity and the distance
reported everywhere is ``1 - cosine`` (0: same direction, 1: orthogonal, 2: opposite).

Index types:
    * ``"flat"``: `faiss.IndexFlatIP`, exact search (recall 1). Used up to `FLAT_MAX` vectors,
      where a single query over all of them still takes a few milliseconds.
    * ``"ivf"``: `faiss.IndexIVFFlat` (inverted lists over k-means cells of the vectors, the
      vectors themselves stored uncompressed). A query scans the ``nprobe`` cells nearest to it.
      ``nprobe`` is calibrated at build time: the smallest value whose recall@10 against exact
      search, on a sample of the indexed vectors used as queries (each query's own entry left
      out), reaches `TARGET_RECALL`; it is stored with the index.

Segment indexes (one vector per 3 s segment, `zoo.search.segments`) are searched for candidate
files, then re-ranked exactly from the full vectors, so they may be compressed:
    * ``"flat"``: no faiss index at all, an exact scan of the memory-mapped vectors
      (`flat_segment_search`). Used up to `SEGMENT_FLAT_MAX` segments.
    * ``"ivfpq"``: `faiss.IndexIVFPQ`: k-means cells, and each vector stored as `pq_bytes`
      one-byte product-quantisation codes (50 bytes for 200-d instead of 800; a width that is
      not a multiple of 4 is zero-padded to one, `pq_dim`), plus its 8-byte id. Its
      ``nprobe`` is calibrated on the re-ranked file results
      (`zoo.search.segments.calibrate_nprobe`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from zoo.search._faiss import require_faiss

FLAT_MAX = 50_000
"""``index_type="auto"`` builds an exact index up to this many vectors, IVF above."""

TARGET_RECALL = 0.97
"""Recall@10 that ``nprobe`` is calibrated to (the target is 0.95; the margin covers queries
that are not in the catalogue)."""

SEGMENT_FLAT_MAX = 250_000
"""A segment index is an exact scan up to this many segments (~3,000 four-minute tracks),
IVF-PQ above: an exact scan of 10,000 tracks (800,000 segments) took ~220 ms per query on
2 busy cores, IVF-PQ with exact re-ranking ~8 ms at 2.5M segments, with file recall@10
0.967 against exact scoring (docs/benchmarks.md)."""

SEGMENT_INDEX_TYPES = ("auto", "flat", "ivfpq")
PQ_DIMS_PER_CODE = 4  # one 8-bit code per 4 dimensions: 200-d -> 50 bytes
PQ_MIN_TRAIN = 256 * 39  # 8-bit codebooks: 256 centroids x 39 points each

CALIBRATION_QUERIES = 500
MIN_POINTS_PER_LIST = 39  # k-means needs this many training points per cell (faiss warns below)
TRAIN_POINTS_PER_LIST = 64  # training sample size per cell (faiss caps at 256 and subsamples)
INDEX_TYPES = ("auto", "flat", "ivf")
SINGLE_THREAD_BELOW = 16  # queries per call below which faiss runs on one thread
# nprobe values tried by the calibration, smallest first (steps of x1.5 / x1.33)
NPROBE_STEPS = tuple(sorted({int(b * 2 ** e) for e in range(16) for b in (1, 1.5)}))


@dataclass(frozen=True)
class AnnParams:
    """How an index was built and is searched (stored in the index manifest).

    Attributes:
        type: ``"flat"`` or ``"ivf"``.
        nlist: IVF cells (ivf only).
        nprobe: cells scanned per query (ivf only).
        calibrated_recall: recall@10 measured at ``nprobe`` on the calibration queries.
        calibration_queries: how many indexed vectors were used as calibration queries.
        recall_curve: ``{nprobe: recall@10}`` for every value tried during calibration.
    """

    type: str
    nlist: int | None = None
    nprobe: int | None = None
    calibrated_recall: float | None = None
    calibration_queries: int | None = None
    recall_curve: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnnParams:
        return cls(**data)


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as contiguous float32 (rows of norm 0 are left at 0)."""
    x = np.asarray(x, np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, np.float32(1e-12)), np.float32)


def default_nlist(n: int) -> int:
    """IVF cells for ``n`` vectors: ``2 sqrt(n)`` (2,000 for a million), at most ``n / 39``.

    Twice as many cells as ``sqrt(n)`` halved the single-query time at 1M vectors for the same
    recall (smaller cells, so fewer vectors scanned; see docs/benchmarks.md) for a 1.7x longer
    build.
    """
    return max(1, min(int(round(2 * math.sqrt(n))), n // MIN_POINTS_PER_LIST))


def choose_index_type(n: int, index_type: str = "auto") -> str:
    """``"flat"`` or ``"ivf"`` for ``n`` vectors.

    Raises:
        ValueError: unknown type, or ``"ivf"`` asked for too few vectors to train it.
    """
    if index_type not in INDEX_TYPES:
        raise ValueError(f"unknown index type {index_type!r}; known: {', '.join(INDEX_TYPES)}")
    if index_type == "auto":
        return "flat" if n <= FLAT_MAX else "ivf"
    if index_type == "ivf" and n < 2 * MIN_POINTS_PER_LIST:
        raise ValueError(f"an IVF index needs at least {2 * MIN_POINTS_PER_LIST} vectors to "
                         f"train its cells, got {n}; use the flat (exact) index")
    return index_type


def exact_knn(queries: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by inner product: ``(similarities, ids)``, each ``(queries, k)``."""
    faiss = require_faiss()
    k = min(k, len(vectors))
    return faiss.knn(np.ascontiguousarray(queries, np.float32),
                     np.ascontiguousarray(vectors, np.float32), k,
                     metric=faiss.METRIC_INNER_PRODUCT)


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Mean fraction of each row of ``truth[:, :k]`` that appears in ``found[:, :k]``."""
    found, truth = np.asarray(found)[:, :k], np.asarray(truth)[:, :k]
    if truth.size == 0:
        return 1.0
    hits = [len(set(f.tolist()) & set(t.tolist())) / len(t) for f, t in zip(found, truth,
                                                                            strict=True)]
    return float(np.mean(hits))


def _drop_ids(ids: np.ndarray, drop: np.ndarray, k: int) -> np.ndarray:
    """Each row of ``ids`` without the id in ``drop`` (and without -1 padding), cut to ``k``."""
    rows = []
    for row, own in zip(ids, drop, strict=True):
        kept = [i for i in row.tolist() if i != own and i >= 0][:k]
        rows.append(kept + [-2] * (k - len(kept)))  # -2 never matches a real id
    return np.asarray(rows, np.int64)


def set_search_params(index: Any, params: AnnParams) -> None:
    """Apply the stored search-time parameters (``nprobe``) to a loaded index."""
    if params.type == "ivf" and params.nprobe:
        index.nprobe = int(params.nprobe)


def calibrate_nprobe(index: Any, vectors: np.ndarray, *, k: int = 10,
                     target_recall: float = TARGET_RECALL,
                     n_queries: int = CALIBRATION_QUERIES, seed: int = 0
                     ) -> tuple[int, float, dict[str, float], int]:
    """The smallest ``nprobe`` (of `NPROBE_STEPS`, then ``nlist``) reaching ``target_recall``.

    Queries are a random sample of the indexed vectors; each query's own entry is removed from
    both the exact and the approximate results before comparing their top ``k``.

    Returns:
        ``(nprobe, recall at it, {nprobe: recall} tried, queries used)``.
    """
    n = len(vectors)
    rng = np.random.default_rng(seed)
    qids = np.sort(rng.choice(n, size=min(n_queries, n), replace=False))
    queries = vectors[qids]
    k_eff = min(k, n - 1)
    if k_eff <= 0:
        return 1, 1.0, {"1": 1.0}, len(qids)
    _, truth = exact_knn(queries, vectors, k_eff + 1)
    truth = _drop_ids(truth, qids, k_eff)
    curve: dict[str, float] = {}
    nprobe, recall = 1, 0.0
    candidates = [c for c in NPROBE_STEPS if c < index.nlist] + [index.nlist]
    for nprobe in candidates:
        index.nprobe = nprobe
        _, found = index.search(queries, k_eff + 1)
        recall = recall_at_k(_drop_ids(found, qids, k_eff), truth, k_eff)
        curve[str(nprobe)] = round(recall, 4)
        if recall >= target_recall:
            break
    index.nprobe = nprobe
    return nprobe, recall, curve, len(qids)


def build_ann(vectors: np.ndarray, index_type: str = "auto", *, nlist: int | None = None,
              nprobe: int | None = None, target_recall: float = TARGET_RECALL,
              seed: int = 0) -> tuple[Any, AnnParams]:
    """A faiss index over unit ``vectors`` (inner product), and how it was built.

    Args:
        vectors: ``(n, dim)`` L2-normalised float32 rows; row ``i`` gets id ``i``.
        index_type: ``"auto"`` (flat up to `FLAT_MAX` vectors, IVF above), ``"flat"``, ``"ivf"``.
        nlist: IVF cells (default `default_nlist`).
        nprobe: IVF cells scanned per query; default: calibrated to ``target_recall``.
        target_recall: recall@10 against exact search that the calibration aims for.
        seed: seed of the training sample, the k-means and the calibration queries.

    Returns:
        ``(index, params)``.

    Example:
        >>> index, params = build_ann(normalize_rows(np.random.randn(100_000, 200)))
        >>> params.type, params.nprobe
        ('ivf', 16)
    """
    faiss = require_faiss()
    vectors = np.ascontiguousarray(vectors, np.float32)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise ValueError(f"need a non-empty (n, dim) array of vectors, got shape {vectors.shape}")
    n, dim = vectors.shape
    kind = choose_index_type(n, index_type)
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
        index.add(vectors)
        return index, AnnParams(type="flat")
    nlist = nlist or default_nlist(n)
    if nlist * MIN_POINTS_PER_LIST > n:
        raise ValueError(f"nlist={nlist} needs at least {nlist * MIN_POINTS_PER_LIST} vectors "
                         f"to train, got {n}")
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    rng = np.random.default_rng(seed)
    n_train = min(n, nlist * TRAIN_POINTS_PER_LIST)
    train = vectors if n_train == n else vectors[np.sort(rng.choice(n, n_train, replace=False))]
    index.train(train)
    index.add(vectors)
    if nprobe:
        index.nprobe = int(nprobe)
        return index, AnnParams(type="ivf", nlist=nlist, nprobe=int(nprobe))
    nprobe, recall, curve, used = calibrate_nprobe(index, vectors, target_recall=target_recall,
                                                   seed=seed)
    return index, AnnParams(type="ivf", nlist=nlist, nprobe=nprobe,
                            calibrated_recall=round(recall, 4), calibration_queries=used,
                            recall_curve=curve)


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """Run faiss with ``n`` OpenMP threads inside the block (restored after; None: as is)."""
    faiss = require_faiss()
    before = faiss.omp_get_max_threads()
    if n is None or n == before:
        yield
        return
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def search(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` ``(distances, ids)`` with distance ``1 - cosine``; missing results have id -1.

    ``queries`` must be L2-normalised rows (use `normalize_rows`). A few queries run on one
    thread: splitting one query's scan over OpenMP threads costs more than it saves, by 10x on
    a busy 2-core machine (measured: exact search over 60k vectors, 2-4 ms on one thread,
    40 ms on two); batches of queries use every thread.
    """
    queries = np.ascontiguousarray(np.atleast_2d(queries), np.float32)
    k = max(1, min(int(k), index.ntotal))
    with _threads(1 if len(queries) < SINGLE_THREAD_BELOW else None):
        sims, ids = index.search(queries, k)
    distances = np.clip(1.0 - sims, 0.0, 2.0).astype(np.float32)
    return distances, ids


def choose_segment_index_type(n: int, index_type: str = "auto") -> str:
    """``"flat"`` or ``"ivfpq"`` for a segment index of ``n`` vectors.

    Raises:
        ValueError: unknown type, or ``"ivfpq"`` asked for too few vectors to train it.
    """
    if index_type not in SEGMENT_INDEX_TYPES:
        raise ValueError(f"unknown segment index type {index_type!r}; known: "
                         f"{', '.join(SEGMENT_INDEX_TYPES)}")
    if index_type == "auto":
        return "flat" if n <= SEGMENT_FLAT_MAX else "ivfpq"
    if index_type == "ivfpq" and n < PQ_MIN_TRAIN:
        raise ValueError(f"an IVF-PQ index needs at least {PQ_MIN_TRAIN} segments to train its "
                         f"codebooks, got {n}; use the exact segment index (--segment-index-type "
                         "auto or flat; Python: segment_index_type='auto')")
    return index_type


def pq_dim(dim: int) -> int:
    """The width an IVF-PQ index stores: ``dim`` rounded up to a multiple of `PQ_DIMS_PER_CODE`.

    Product quantisation needs the width to be a multiple of its number of codes; vectors
    (and queries) are padded with zeros to it, which leaves every inner product unchanged, so
    any width (e.g. a 298-d joined embedding) gets one code per 4 dimensions.
    """
    return -(-int(dim) // PQ_DIMS_PER_CODE) * PQ_DIMS_PER_CODE


def pq_bytes(dim: int) -> int:
    """Bytes per vector of the IVF-PQ code of ``dim``-d vectors: one per 4 (padded) dimensions."""
    return pq_dim(dim) // PQ_DIMS_PER_CODE


def _pad_columns(x: np.ndarray, width: int) -> np.ndarray:
    x = np.ascontiguousarray(x, np.float32)
    if x.shape[1] == width:
        return x
    return np.ascontiguousarray(np.pad(x, ((0, 0), (0, width - x.shape[1]))))


def build_ivfpq(vectors: np.ndarray, *, nlist: int | None = None, seed: int = 0) -> Any:
    """A trained `faiss.IndexIVFPQ` (inner product) holding ``vectors`` (ids = rows).

    ``nlist`` defaults to `default_nlist`; training uses up to 64 vectors per cell and never
    fewer than the codebooks need.
    """
    faiss = require_faiss()
    vectors = np.ascontiguousarray(vectors, np.float32)
    n, dim = vectors.shape
    nlist = nlist or default_nlist(n)
    width = pq_dim(dim)
    quantizer = faiss.IndexFlatIP(width)
    index = faiss.IndexIVFPQ(quantizer, width, nlist, pq_bytes(dim), 8,
                             faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    rng = np.random.default_rng(seed)
    n_train = min(n, max(nlist * TRAIN_POINTS_PER_LIST, PQ_MIN_TRAIN))
    train = vectors if n_train == n else vectors[np.sort(rng.choice(n, n_train, replace=False))]
    index.train(_pad_columns(train, width))
    for start in range(0, n, 1 << 20):  # bounded copies of a memory-mapped array
        index.add(_pad_columns(vectors[start:start + (1 << 20)], width))
    return index


def flat_segment_search(vectors: np.ndarray) -> Callable[[np.ndarray, int],
                                                         tuple[np.ndarray, np.ndarray]]:
    """Exact nearest-segment search over ``vectors`` (unit rows, may be memory-mapped).

    Returns:
        ``search(queries, k) -> (similarities, ids)``, as `zoo.search.segments.SegmentSearch`.
    """

    def search_segments(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        with _threads(1 if len(queries) < SINGLE_THREAD_BELOW else None):
            return exact_knn(queries, vectors, k)

    return search_segments


def index_segment_search(index: Any) -> Callable[[np.ndarray, int],
                                                 tuple[np.ndarray, np.ndarray]]:
    """Nearest-segment search through a faiss index (approximate for IVF-PQ)."""

    def search_segments(queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = _pad_columns(queries, index.d)  # an IVF-PQ index may be zero-padded
        with _threads(1 if len(queries) < SINGLE_THREAD_BELOW else None):
            return index.search(queries, min(int(k), index.ntotal))

    return search_segments
