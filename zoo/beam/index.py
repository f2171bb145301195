"""A `zoo similar` index from an embeddings dataset (the Parquet shards of `run_catalogue`).

The driver reads the per-file table (one row and one vector per file), lays the segment rows
out file by file into ``segments.npy`` straight from the shards, one record batch at a time
(memory: the file vectors, the segment start times and one batch; the segment vectors
themselves stay on disk), then builds the faiss indexes as `zoo index` does: exact up to
`zoo.search.ann.SEGMENT_FLAT_MAX` segments, IVF-PQ trained on a sample and filled in chunks
above, candidates always re-ranked exactly.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from zoo.beam.shards import Dataset, DatasetError
from zoo.beam.sources import relative_to, resolve_source
from zoo.search import ann, store
from zoo.search.catalogue import CatalogueIndex, write_index
from zoo.search.embedding import ModelInfo
from zoo.search.errors import SearchError
from zoo.search.segments import SegmentTable
from zoo.search.store import FileEntry

BATCH_ROWS = 65_536


def _current_files(dataset: Dataset) -> list[dict]:
    """Latest file rows of the files in the last run's listing (unchanged since), by path."""
    runs = dataset.runs
    if not runs:
        raise DatasetError(f"{dataset.root} has no committed run")
    listing = dataset.read_all("listing", ["path", "size", "mtime_ns"])
    last = len(runs) - 1
    current = {(r["path"], r["size"], r["mtime_ns"]) for r in listing.to_pylist()
               if r["run"] == last}
    rows = dataset.read("files", ["path", "size", "mtime_ns", "segments"]).to_pylist()
    return [r for r in rows if (r["path"], r["size"], r["mtime_ns"]) in current]


def _file_vectors(dataset: Dataset, files: list[dict]) -> np.ndarray:
    where = {(f["path"], f["run"]): i for i, f in enumerate(files)}
    vectors: np.ndarray | None = None
    for ordinal, path in dataset.paths("files"):
        with FileSystems.open(path, compression_type="uncompressed") as fh:
            table = pq.read_table(fh, columns=["path", "vector"])
        for p, v in zip(table.column("path").to_pylist(), table.column("vector").to_pylist(),
                        strict=True):
            i = where.get((p, ordinal))
            if i is None:
                continue
            if vectors is None:
                vectors = np.zeros((len(files), len(v)), np.float32)
            vectors[i] = v
    if vectors is None:
        raise DatasetError(f"{dataset.root}: no file vectors")
    return vectors


def _lay_out_segments(dataset: Dataset, files: list[dict], dim: int, out: Path
                      ) -> tuple[np.ndarray, SegmentTable]:
    """Write ``out/segments.npy`` file by file from the shards; return it memory-mapped."""
    counts = np.asarray([f["segments"] for f in files], np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    total = int(offsets[-1])
    where = {(f["path"], f["run"]): i for i, f in enumerate(files)}
    tmp = out / f".{store.SEGMENTS}.tmp"
    seg = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(total, dim))
    starts = np.zeros(total, np.float32)
    filled = np.zeros(total, bool)
    for ordinal, path in dataset.paths("segments"):
        with FileSystems.open(path, compression_type="uncompressed") as fh:
            parquet = pq.ParquetFile(fh)
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS,
                                              columns=["path", "segment", "start", "vector"]):
                paths = batch.column("path").to_pylist()
                files_of = np.asarray([where.get((p, ordinal), -1) for p in paths], np.int64)
                keep = files_of >= 0
                if not keep.any():
                    continue
                segment = batch.column("segment").to_numpy().astype(np.int64)
                if np.any(segment[keep] >= counts[files_of[keep]]) or np.any(segment < 0):
                    raise DatasetError(f"{path}: a segment number beyond its file's count")
                rows = offsets[files_of[keep]] + segment[keep]
                vectors = batch.column("vector").flatten().to_numpy().reshape(-1, dim)
                if np.any(filled[rows]):
                    raise DatasetError(f"{path}: a segment appears twice")
                seg[rows] = ann.normalize_rows(vectors[keep])
                starts[rows] = batch.column("start").to_numpy()[keep]
                filled[rows] = True
    if not filled.all():
        missing = int((~filled).sum())
        raise DatasetError(f"{dataset.root}: {missing} of {total} segments have no row in the "
                           "shards (a shard was removed?): run the pipeline again with "
                           "--overwrite")
    seg.flush()
    del seg
    os.replace(tmp, out / store.SEGMENTS)
    mapped = np.load(out / store.SEGMENTS, mmap_mode="r", allow_pickle=False)
    return mapped, SegmentTable(offsets, starts)


def build_index_from_dataset(dataset_root: str, out: str | os.PathLike, *,
                             level: str = "segment", index_type: str = "auto",
                             segment_index_type: str = "auto") -> CatalogueIndex:
    """Write a searchable index into ``out`` from an embeddings dataset.

    Args:
        dataset_root: the dataset folder (`zoo.beam.shards.Dataset`), e.g. ``INDEX/shards``.
        out: the index directory (`zoo similar --index`).
        level, index_type, segment_index_type: as `zoo.search.build_index`.

    Returns:
        The index, loaded.

    Raises:
        DatasetError: not an embeddings dataset, nothing committed, or rows missing.
        SearchError: no file could be indexed.

    Example:
        >>> run_catalogue("embeddings", "music/", "music.idx/shards", "musicnn_msd")
        >>> index = build_index_from_dataset("music.idx/shards", "music.idx")
        >>> index.query("query.mp3", top=5)
    """
    dataset = Dataset(dataset_root)
    if not dataset.exists():
        raise DatasetError(f"{dataset_root} holds no zoo dataset")
    if dataset.manifest.get("kind") != "embeddings":
        raise DatasetError(f"{dataset_root} holds {dataset.manifest.get('kind')}, not "
                           "embeddings")
    files = _current_files(dataset)
    if not files:
        raise SearchError(f"none of the files of {dataset.manifest['source']} could be indexed")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vectors = _file_vectors(dataset, files)
    segment_vectors = table = None
    if level == "segment":
        segment_vectors, table = _lay_out_segments(dataset, files, vectors.shape[1], out)
    entries = [FileEntry(f["path"], int(f["size"]), int(f["mtime_ns"])) for f in files]
    model = ModelInfo.from_dict(dataset.manifest["model"])
    root = dataset.manifest.get("root") or resolve_source(dataset.manifest["source"]).root
    failed = [(relative_to(root, r["path"]), r["reason"])
              for r in dataset.read("failed").to_pylist()]
    return write_index(out, vectors, entries, model, root, index_type=index_type,
                       failed=failed, segment_vectors=segment_vectors, table=table,
                       segment_index_type=segment_index_type,
                       segments_in_place=segment_vectors is not None)
