"""A catalogue index on disk and in memory: open it, write it, query it, explain its answers.

Example:
    >>> from zoo import search
    >>> index = search.load_index("music.idx")
    >>> for path, distance in index.query("query.mp3", top=5):
    ...     print(f"{distance:.4f} {path}")
    >>> for hit in index.explain("query.mp3", top=1):
    ...     print(hit.match.path, [(a.query_start, a.catalogue_start) for a in hit.alignments])
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from zoo.hub.cache import file_sha256
from zoo.search import ann, segments, store
from zoo.search._faiss import require_faiss
from zoo.search.ann import AnnParams
from zoo.search.embedding import ModelInfo, Segments, TrackEmbedder
from zoo.search.errors import CorruptIndexError, IndexMismatchError, SearchError
from zoo.search.segments import FileScore, SegmentTable
from zoo.search.store import FileEntry

METRIC = "cosine"
DISTANCE = "1 - cosine similarity (inner product of L2-normalised vectors): 0 = same direction"
SEGMENT_DISTANCE = ("1 - mean over query segments of the best cosine with the file's segments: "
                    "0 = every query segment has an identical segment in the file")
LEVELS = ("segment", "file")
DEFAULT_QUERY_HOP_SECONDS = 3.0
"""Hop between query segments, as the catalogue's: a 1 s hop was no better on clean queries and
worse on degraded ones, for three times the work (docs/search.md)."""

_FILE_INDEX_CLASSES = {"flat": "IndexFlatIP", "ivf": "IndexIVFFlat"}


class Match(NamedTuple):
    """One search result: the catalogue file and its distance to the query.

    The distance is ``1 - cosine`` of the file vectors (file level) or ``1 - score`` of the
    segment match (segment level, `zoo.search.segments`).
    """

    path: str
    distance: float


class Alignment(NamedTuple):
    """Which catalogue passage a query passage matched (seconds from each file's start)."""

    query_start: float
    query_end: float
    catalogue_start: float
    catalogue_end: float
    similarity: float


@dataclass(frozen=True)
class Explained:
    """A `Match` with the catalogue passage that each query segment matched best."""

    match: Match
    alignments: list[Alignment]


def file_digest(path: Path) -> tuple[int, str]:
    """``(size, sha256 hex)`` of a file (the one sha256 reader: `zoo.hub.cache.file_sha256`)."""
    return path.stat().st_size, file_sha256(path)


class CatalogueIndex:
    """A loaded index: faiss indexes, the vectors, the files, and the model that made them.

    Use `load_index` (or `zoo.search.build_index`) to get one.

    Attributes:
        path: the index directory.
        manifest: the parsed ``manifest.json``.
        model: the `ModelInfo` the vectors were made with; queries use exactly this model.
        level: ``"segment"`` (a vector per segment, and one per file) or ``"file"`` (one per
            file only; also every index of format 1).
        params: the `AnnParams` of the file-vector index (type, nlist, nprobe, calibration).
        segment_params: the `AnnParams` of the segment index (``flat`` or ``ivfpq``), or None.
        root: the catalogue folder (absolute, as it was when indexed).
        files: one `FileEntry` per file vector.
        vectors: ``(len(files), dim)`` float32 unit file vectors (memory-mapped).
        segments: ``(segments, dim)`` float32 unit segment vectors (memory-mapped), or None.
        table: the `SegmentTable` (which rows belong to which file, start times), or None.
    """

    def __init__(self, path: Path, manifest: dict[str, Any], faiss_index: Any,
                 vectors: np.ndarray, segment_vectors: np.ndarray | None = None,
                 table: SegmentTable | None = None, segment_index: Any = None):
        self.path = path
        self.manifest = manifest
        self.model = ModelInfo.from_dict(manifest["model"])
        self.level = manifest.get("level", "file")
        self.params = AnnParams.from_dict(manifest["index"])
        seg = manifest.get("segment_index")
        self.segment_params = AnnParams.from_dict(seg) if seg else None
        # A URL root (an index built by zoo.beam over gs://...) stays a string: Path would
        # fold its "//".
        root = manifest["root"]
        self.root = root if "://" in root else Path(root)
        self.files = [FileEntry.from_dict(d) for d in manifest["files"]]
        self.vectors = vectors
        self.faiss_index = faiss_index
        self.segments = segment_vectors
        self.table = table
        self.segment_index = segment_index
        ann.set_search_params(faiss_index, self.params)
        if segment_index is not None and self.segment_params and self.segment_params.nprobe:
            segment_index.nprobe = int(self.segment_params.nprobe)
        self._embedder: TrackEmbedder | None = None

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        extra = (f", segments={self.table.n_segments}" if self.table is not None else "")
        return (f"CatalogueIndex({os.fspath(self.path)!r}, files={len(self)}{extra}, "
                f"model={self.model.preset!r}, level={self.level!r})")

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def patch_seconds(self) -> float:
        """Duration of one segment (the model's patch), seconds."""
        if self.model.patch_seconds is not None:
            return float(self.model.patch_seconds)
        return float(self.embedder.model.zoo_preset.preprocessing.patch_seconds)

    def file_path(self, i: int) -> str:
        """Full path of catalogue file ``i``."""
        return os.path.join(os.fspath(self.root), *self.files[i].path.split("/"))

    @property
    def embedder(self) -> TrackEmbedder:
        """The index's own model, loaded on first use and checked against the manifest.

        Raises:
            IndexMismatchError: the preset now resolves to other weights or another feature.
        """
        if self._embedder is None:
            embedder = TrackEmbedder(self.model.preset, hop_seconds=self.model.hop_seconds,
                                     tail=self.model.tail, precision=self.model.precision)
            if embedder.info.identity() != self.model.identity():
                raise IndexMismatchError(
                    f"index {self.path} was built with {self.model.describe()}, but "
                    f"{self.model.preset!r} is now {embedder.info.describe()}: rebuild the index "
                    "(zoo index ... --overwrite)")
            self._embedder = embedder
        return self._embedder

    def embed(self, audio_or_path: Any, *, source_sr: int | None = None) -> np.ndarray:
        """The file-level query vector of a recording, made with the index's model."""
        return self.embedder.embed(audio_or_path, source_sr=source_sr)

    def embed_segments(self, audio_or_path: Any, *, source_sr: int | None = None,
                       query_hop: float | None = None) -> Segments:
        """The query segments of a recording (hop ``query_hop``, default 3 s)."""
        hop = DEFAULT_QUERY_HOP_SECONDS if query_hop is None else float(query_hop)
        if not hop > 0:
            raise ValueError(f"query_hop must be > 0 seconds, got {query_hop}")
        return self.embedder.embed_segments(audio_or_path, source_sr=source_sr,
                                            hop_seconds=hop)

    def _level(self, level: str | None) -> str:
        level = self.level if level is None else level
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; known: {', '.join(LEVELS)}")
        if level == "segment" and self.segments is None:
            raise SearchError(
                f"index {self.path} holds one vector per file (no segments): query it with "
                "level='file' (--level file), or rebuild it for segment search: zoo index "
                f"{self.root} --out {self.path} --overwrite")
        return level

    def query_vector(self, vector: np.ndarray, top: int = 10) -> list[Match]:
        """Nearest catalogue files to a file-level vector (normalised here), best first."""
        vector = np.asarray(vector, np.float32).reshape(1, -1)
        if vector.shape[1] != self.dim:
            raise ValueError(f"query vector has {vector.shape[1]} dimensions, the index {self.dim}")
        _check_top(top)
        distances, ids = ann.search(self.faiss_index, ann.normalize_rows(vector), top)
        return [Match(self.file_path(int(i)), float(d))
                for d, i in zip(distances[0], ids[0], strict=True) if i >= 0]

    def rank_segments(self, query: np.ndarray, top: int = 10) -> list[FileScore]:
        """Files best matching query segments ``(m, dim)`` (normalised here), best first."""
        self._level("segment")
        query = np.asarray(query, np.float32)
        if query.ndim != 2 or query.shape[1] != self.dim or len(query) == 0:
            raise ValueError(f"query segments must be (segments, {self.dim}), got {query.shape}")
        _check_top(top)
        search = (ann.flat_segment_search(self.segments) if self.segment_index is None
                  else ann.index_segment_search(self.segment_index))
        return segments.rank_files(ann.normalize_rows(query), self.segments, self.table,
                                   search, min(top, len(self)))

    def query(self, audio_or_path: Any, top: int = 10, *, source_sr: int | None = None,
              level: str | None = None, query_hop: float | None = None) -> list[Match]:
        """The ``top`` catalogue files most similar to a recording, best first.

        Args:
            audio_or_path: a file path, encoded bytes, or a float waveform (give ``source_sr``).
            top: how many results.
            source_sr: sample rate of an array input.
            level: ``"segment"`` (match segment by segment; the default of a segment index) or
                ``"file"`` (one mean vector per file; the only choice for a file-level index).
            query_hop: hop between query segments, seconds (segment level; default 3 s).

        Returns:
            `Match` rows ``(path, distance)``, distance in [0, 2].

        Raises:
            AudioError: the query cannot be read. IndexMismatchError: the index's model changed.
            SearchError: segment level asked of an index without segments.

        Example:
            >>> index.query("query.wav", top=3)
            [Match(path='/music/a.flac', distance=0.0), Match(path='/music/b.ogg', ...)]
        """
        if self._level(level) == "file":
            _check_top(top)
            return self.query_vector(self.embed(audio_or_path, source_sr=source_sr), top)
        return [hit.match for hit in self.explain(audio_or_path, top, source_sr=source_sr,
                                                  query_hop=query_hop)]

    def explain(self, audio_or_path: Any, top: int = 10, *, source_sr: int | None = None,
                query_hop: float | None = None) -> list[Explained]:
        """`query` at segment level, with the catalogue passage each query segment matched.

        Example:
            >>> hit = index.explain("clip.mp3", top=1)[0]
            >>> hit.alignments[0]
            Alignment(query_start=0.0, query_end=3.0, catalogue_start=81.0, catalogue_end=84.0,
                      similarity=0.93)
        """
        self._level("segment")
        _check_top(top)
        query = self.embed_segments(audio_or_path, source_sr=source_sr, query_hop=query_hop)
        return self.explain_segments(query, top)

    def explain_segments(self, query: Segments, top: int = 10) -> list[Explained]:
        """`explain` for query segments that are already embedded."""
        patch = self.patch_seconds
        out = []
        for scored in self.rank_segments(query.vectors, top):
            starts = self.table.starts[scored.best_rows]
            alignments = [Alignment(float(q), float(q) + patch, float(c), float(c) + patch,
                                    float(s))
                          for q, c, s in zip(query.starts, starts, scored.best_similarities,
                                             strict=True)]
            out.append(Explained(Match(self.file_path(scored.file), scored.distance),
                                 alignments))
        return out


def _check_top(top: int) -> None:
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")


def _read_faiss(faiss: Any, path: Path, what: str) -> Any:
    try:
        return faiss.read_index(os.fspath(path))
    except RuntimeError as err:
        raise CorruptIndexError(f"{what}: cannot read {path.name}: {err}") from err


def _check_data_files(path: Path, data: dict[str, Any], names: Iterable[str], what: str,
                      verify: bool) -> None:
    for name in names:
        try:
            record = data[name]
            expected_bytes, expected_sha = int(record["bytes"]), str(record["sha256"])
        except (KeyError, TypeError, ValueError) as err:
            raise CorruptIndexError(f"{what}: the manifest does not describe {name}") from err
        file = path / name
        if not file.is_file():
            raise CorruptIndexError(f"{what}: {name} is missing")
        size = file.stat().st_size
        if size != expected_bytes:
            raise CorruptIndexError(f"{what}: {name} has {size} bytes, the manifest says "
                                    f"{expected_bytes} (truncated or replaced)")
        if verify and file_digest(file)[1] != expected_sha:
            raise CorruptIndexError(f"{what}: {name} does not match the sha256 in the manifest "
                                    "(altered or corrupt)")


def _check_array(array: np.ndarray, dtype: Any, shape: tuple[int, ...], name: str,
                 what: str) -> None:
    if array.dtype != dtype or array.shape != shape:
        raise CorruptIndexError(f"{what}: {name} is {array.dtype}{array.shape}, expected "
                                f"{np.dtype(dtype)}{shape}")


def _check_faiss(faiss: Any, index: Any, expected: str | None, count: int, dim: int,
                 name: str, what: str) -> None:
    actual = type(index).__name__  # read_index returns the concrete class
    if (expected != actual or index.ntotal != count or index.d != dim
            or index.metric_type != faiss.METRIC_INNER_PRODUCT):
        raise CorruptIndexError(f"{what}: {name} is a {actual} of {index.ntotal} x {index.d}, "
                                f"the manifest says {expected} of {count} x {dim} "
                                "(inner product)")


def load_index(path: str | os.PathLike, *, verify: bool = True) -> CatalogueIndex:
    """Open an index written by `zoo.search.build_index` / ``zoo index`` (format 1 or 2).

    Args:
        path: the index directory.
        verify: also check the sha256 of the data files against the manifest (sizes, shapes,
            dimensions, counts and index types are always checked).

    Raises:
        CorruptIndexError: missing, truncated, altered, inconsistent or foreign files.
        MissingDependencyError: faiss is not installed.

    Example:
        >>> index = zoo.search.load_index("music.idx")
        >>> index.model.preset, len(index), index.level
        ('musicnn_msd_whitened_chroma_rhythm', 1000, 'segment')
    """
    faiss = require_faiss()
    path = Path(path)
    if not path.is_dir():
        raise CorruptIndexError(f"{os.fspath(path)} is not an index directory")
    manifest = store.read_json(path / store.MANIFEST, "index")
    what = f"index {os.fspath(path)}"
    if not isinstance(manifest, dict) or manifest.get("format") != store.FORMAT:
        raise CorruptIndexError(f"{what}: {store.MANIFEST} is not a zoo search index manifest")
    version = manifest.get("format_version", 0)
    if not isinstance(version, int) or version > store.FORMAT_VERSION:
        raise CorruptIndexError(f"{what} uses format {version}; this zoo reads up to "
                                f"{store.FORMAT_VERSION}: upgrade zoo")
    level = manifest.get("level", "file")
    try:
        count, dim = int(manifest["count"]), int(manifest["dim"])
        ModelInfo.from_dict(manifest["model"])
        params = AnnParams.from_dict(manifest["index"])
        files = [FileEntry.from_dict(d) for d in manifest["files"]]
        data = dict(manifest["data"])
        str(manifest["root"])
        seg_params = (AnnParams.from_dict(manifest["segment_index"]) if level == "segment"
                      else None)
        n_segments = int(manifest["segments"]) if level == "segment" else 0
    except (KeyError, TypeError, ValueError) as err:
        raise CorruptIndexError(f"{what}: invalid manifest ({type(err).__name__}: {err})") from err
    if level not in LEVELS:
        raise CorruptIndexError(f"{what}: unknown level {level!r} in the manifest")
    if len(files) != count:
        raise CorruptIndexError(f"{what}: manifest lists {len(files)} files for {count} vectors")
    names = [store.VECTORS, store.INDEX_FILE]
    if level == "segment":
        names += [store.SEGMENTS, store.SEGMENT_OFFSETS, store.SEGMENT_STARTS]
        if seg_params.type == "ivfpq":
            names.append(store.SEGMENT_INDEX_FILE)
    _check_data_files(path, data, names, what, verify)

    vectors = store.read_npy(path / store.VECTORS, what, mmap=True)  # searched via faiss
    _check_array(vectors, np.float32, (count, dim), store.VECTORS, what)
    index = _read_faiss(faiss, path / store.INDEX_FILE, what)
    _check_faiss(faiss, index, _FILE_INDEX_CLASSES.get(params.type), count, dim,
                 store.INDEX_FILE, what)
    if level == "file":
        return CatalogueIndex(path, manifest, index, vectors)

    seg = store.read_npy(path / store.SEGMENTS, what, mmap=True)
    _check_array(seg, np.float32, (n_segments, dim), store.SEGMENTS, what)
    offsets = store.read_npy(path / store.SEGMENT_OFFSETS, what)
    starts = store.read_npy(path / store.SEGMENT_STARTS, what)
    _check_array(offsets, np.int64, (count + 1,), store.SEGMENT_OFFSETS, what)
    _check_array(starts, np.float32, (n_segments,), store.SEGMENT_STARTS, what)
    table = SegmentTable(offsets, starts)
    problem = table.check()
    if problem is not None:
        raise CorruptIndexError(f"{what}: {problem}")
    segment_index = None
    if seg_params.type == "ivfpq":
        segment_index = _read_faiss(faiss, path / store.SEGMENT_INDEX_FILE, what)
        _check_faiss(faiss, segment_index, "IndexIVFPQ", n_segments, ann.pq_dim(dim),
                     store.SEGMENT_INDEX_FILE, what)
    elif seg_params.type != "flat":
        raise CorruptIndexError(f"{what}: unknown segment index type {seg_params.type!r}")
    return CatalogueIndex(path, manifest, index, vectors, seg, table, segment_index)


def _write_faiss(faiss: Any, index: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    faiss.write_index(index, os.fspath(tmp))
    os.replace(tmp, path)


def _build_segment_index(seg: np.ndarray, table: SegmentTable, index_type: str,
                         seed: int = 0) -> tuple[Any, AnnParams]:
    kind = ann.choose_segment_index_type(len(seg), index_type)
    if kind == "flat":
        return None, AnnParams(type="flat")
    index = ann.build_ivfpq(seg, seed=seed)
    nprobe, recall, curve, used = segments.calibrate_nprobe(index, seg, table,
                                                            target_recall=ann.TARGET_RECALL,
                                                            seed=seed)
    return index, AnnParams(type="ivfpq", nlist=int(index.nlist), nprobe=nprobe,
                            calibrated_recall=round(recall, 4), calibration_queries=used,
                            recall_curve=curve)


def write_index(out: str | os.PathLike, vectors: np.ndarray, files: list[FileEntry],
                model: ModelInfo, root: str | os.PathLike, *, index_type: str = "auto",
                failed: Iterable[tuple[str, str]] = (), nlist: int | None = None,
                nprobe: int | None = None, segment_vectors: np.ndarray | None = None,
                table: SegmentTable | None = None,
                segment_index_type: str = "auto",
                segments_in_place: bool = False) -> CatalogueIndex:
    """Build the ANN indexes and write the index directory ``out``.

    Args:
        out: the index directory (created if needed).
        vectors: ``(len(files), dim)`` unit file vectors.
        files: the catalogue entry of every row.
        model: the model that made the vectors.
        root: the catalogue folder the entries are relative to.
        index_type: file-vector index: ``"auto"``, ``"flat"`` or ``"ivf"`` (`zoo.search.ann`).
        failed: ``(relative path, reason)`` of files left out, recorded in the manifest.
        nlist, nprobe: IVF parameters of the file-vector index (default: chosen / calibrated).
        segment_vectors: ``(segments, dim)`` unit segment vectors, file by file (None: a
            file-level index).
        table: the `SegmentTable` of ``segment_vectors``.
        segment_index_type: ``"auto"``, ``"flat"`` (exact scan) or ``"ivfpq"``.
        segments_in_place: ``segment_vectors`` is already ``out/segments.npy`` (unit rows,
            memory-mapped; e.g. written shard by shard by `zoo.beam.build_index_from_dataset`):
            it is indexed where it lies, not copied.

    Returns:
        The written index, loaded.
    """
    import zoo

    faiss = require_faiss()
    vectors = ann.normalize_rows(vectors)
    if len(files) != len(vectors):
        raise ValueError(f"{len(files)} files for {len(vectors)} vectors")
    level = "file" if segment_vectors is None else "segment"
    if level == "segment":
        if table is None or table.n_files != len(files):
            raise ValueError("segment vectors need a SegmentTable with one row per file")
        problem = table.check()
        if problem is not None or len(segment_vectors) != table.n_segments:
            raise ValueError(problem or f"{len(segment_vectors)} segment vectors for "
                             f"{table.n_segments} segments in the table")
    index, params = ann.build_ann(vectors, index_type, nlist=nlist, nprobe=nprobe)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store.write_npy(out / store.VECTORS, vectors)
    _write_faiss(faiss, index, out / store.INDEX_FILE)
    names = [store.VECTORS, store.INDEX_FILE]
    seg_index, seg_params, seg = None, None, None
    if level == "segment":
        if segments_in_place:
            seg = segment_vectors
        else:
            seg = ann.normalize_rows(segment_vectors)
            store.write_npy(out / store.SEGMENTS, seg)
        store.write_npy(out / store.SEGMENT_OFFSETS, table.offsets.astype(np.int64))
        store.write_npy(out / store.SEGMENT_STARTS, table.starts.astype(np.float32))
        names += [store.SEGMENTS, store.SEGMENT_OFFSETS, store.SEGMENT_STARTS]
        seg_index, seg_params = _build_segment_index(seg, table, segment_index_type)
        if seg_index is not None:
            _write_faiss(faiss, seg_index, out / store.SEGMENT_INDEX_FILE)
            names.append(store.SEGMENT_INDEX_FILE)
    for name in set(store.DATA_FILES) - set(names):  # an earlier build's, not this one's
        (out / name).unlink(missing_ok=True)
    data = {}
    for name in names:
        size, sha = file_digest(out / name)
        data[name] = {"bytes": size, "sha256": sha}
    manifest = {
        "format": store.FORMAT,
        "format_version": store.FORMAT_VERSION,
        "zoo_version": zoo.__version__,
        "faiss_version": getattr(faiss, "__version__", "unknown"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model.to_dict(),
        "level": level,
        "dim": int(vectors.shape[1]),
        "metric": METRIC,
        "distance": SEGMENT_DISTANCE if level == "segment" else DISTANCE,
        "index": params.to_dict(),
        "count": len(files),
        "root": os.fspath(root) if "://" in os.fspath(root) else os.fspath(Path(root).resolve()),
        "files": [f.to_dict() for f in files],
        "failed": [{"path": p, "error": e} for p, e in failed],
        "data": data,
    }
    if level == "segment":
        manifest["segments"] = table.n_segments
        manifest["segment_index"] = seg_params.to_dict()
    store.write_json(out / store.MANIFEST, manifest)
    return load_index(out, verify=False)
