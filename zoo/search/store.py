"""The on-disk index: a directory with a faiss index, the vectors and a JSON manifest.

Layout of ``INDEX/`` (format 2):

    manifest.json         format, zoo and faiss versions, the model (`ModelInfo`), dim, metric,
                          level (``segment`` or ``file``), index types and parameters
                          (`AnnParams`), the catalogue root (absolute), one entry per indexed
                          file (path relative to the root, size, mtime_ns; entry ``i`` is file
                          vector ``i``), files that failed, and the byte size and sha256 of
                          every data file
    vectors.npy           (files, dim) float32 unit file vectors (plain .npy, no pickle)
    index.faiss           the faiss index of the file vectors, ids = rows of vectors.npy
    segments.npy          (segments, dim) float32 unit segment vectors, file by file, in time
                          order (level ``segment`` only; memory-mapped when searched)
    segment_offsets.npy   (files + 1,) int64: file ``i`` owns rows ``offsets[i]:offsets[i+1]``
    segment_starts.npy    (segments,) float32 start of each segment in its file, seconds
    segments.faiss        compressed (IVF-PQ) index of the segments, only above
                          `zoo.search.ann.SEGMENT_FLAT_MAX` segments (below, an exact scan)
    shards/               only for `zoo index --runner ...`: the Beam pipeline's Parquet shards
                          (`zoo.beam.shards`), which the index is built from
    partial/              only while `zoo index` runs or after it was interrupted: vectors of
                          files embedded since the last complete build, in chunks, for resuming

Format 1 (zoo before segment search) had only manifest.json, vectors.npy and index.faiss; it
still loads and answers file-level queries.

Every file is written to a temporary name and renamed into place; the manifest last.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zoo.search.errors import CorruptIndexError

FORMAT = "zoo-search-index"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
VECTORS = "vectors.npy"
INDEX_FILE = "index.faiss"
SEGMENTS = "segments.npy"
SEGMENT_OFFSETS = "segment_offsets.npy"
SEGMENT_STARTS = "segment_starts.npy"
SEGMENT_INDEX_FILE = "segments.faiss"
PARTIAL = "partial"
SHARDS = "shards"  # `zoo index --runner`: the pipeline's Parquet shards (zoo.beam.shards)
STATE = "state.json"
DATA_FILES = (VECTORS, INDEX_FILE, SEGMENTS, SEGMENT_OFFSETS, SEGMENT_STARTS,
              SEGMENT_INDEX_FILE)
OWN_NAMES = (MANIFEST, *DATA_FILES, PARTIAL, SHARDS)


@dataclass(frozen=True)
class FileEntry:
    """One catalogue file: path relative to the catalogue root (``/``-separated), size, mtime."""

    path: str
    size: int
    mtime_ns: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileEntry:
        return cls(str(data["path"]), int(data["size"]), int(data["mtime_ns"]))


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def write_json(path: Path, doc: Any) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    tmp = _tmp(path)
    tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_npy(path: Path, array: np.ndarray) -> None:
    """Write a ``.npy`` atomically."""
    tmp = _tmp(path)
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)
    os.replace(tmp, path)


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorruptIndexError(f"{what}: {path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorruptIndexError(f"{what}: cannot read {path}: {err}") from err


def read_npy(path: Path, what: str, mmap: bool = False) -> np.ndarray:
    """A ``.npy`` array (never unpickled); ``mmap``: mapped read-only, read from disk on use."""
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except FileNotFoundError:
        raise CorruptIndexError(f"{what}: {path} is missing") from None
    except (OSError, ValueError, EOFError) as err:
        raise CorruptIndexError(f"{what}: cannot read {path}: {err}") from err


def is_index_dir(path: Path) -> bool:
    """Whether ``path`` holds a (complete) index."""
    return (path / MANIFEST).is_file()


def foreign_entries(path: Path) -> list[str]:
    """Names in ``path`` that an index does not write (an index is never written over them)."""
    if not path.is_dir():
        return []
    own = set(OWN_NAMES)
    return sorted(p.name for p in path.iterdir()
                  if p.name not in own and not (p.name.startswith(".") and
                                                p.name.endswith(".tmp")))


def remove_index_files(path: Path) -> None:
    """Delete what an index wrote in ``path`` (nothing else)."""
    for name in (MANIFEST, *DATA_FILES):
        for p in (path / name, _tmp(path / name)):
            p.unlink(missing_ok=True)
    shutil.rmtree(path / PARTIAL, ignore_errors=True)


@dataclass(frozen=True)
class EmbeddedFile:
    """What embedding one catalogue file gave: its file vector and its segments."""

    entry: FileEntry
    mean: np.ndarray  # (dim,) unit file vector
    segments: np.ndarray  # (segments, dim) unit vectors; (0, dim) for a file-level index
    starts: np.ndarray  # (segments,) seconds


class PartialStore:
    """Vectors of files embedded since the last complete build, saved in chunks as they finish.

    ``partial/state.json`` records the model, catalogue root and level the chunks belong to;
    ``chunk-NNNNNN.npz`` holds the file vectors, segment vectors, start times and segment
    counts, and ``chunk-NNNNNN.json`` the matching file entries (written after the arrays, so
    a chunk without its JSON is ignored; a file is in exactly one chunk).
    """

    def __init__(self, index_dir: Path):
        self.dir = Path(index_dir) / PARTIAL

    def state(self) -> dict[str, Any] | None:
        """The recorded ``{"model": ..., "root": ..., "level": ...}``, or None if there is no
        usable partial store (none, or one written by an older zoo, which is discarded)."""
        path = self.dir / STATE
        if not path.is_file():
            return None
        state = read_json(path, "partial index")
        if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
            self.clear()  # an older zoo's chunks hold no segments: embed those files again
            return None
        return state

    def start(self, model: dict[str, Any], root: str, level: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / STATE).is_file():
            write_json(self.dir / STATE, {"format": FORMAT, "format_version": FORMAT_VERSION,
                                          "model": model, "root": root, "level": level})

    def _chunks(self) -> list[Path]:
        return sorted(self.dir.glob("chunk-*.json"))

    def append(self, files: list[EmbeddedFile]) -> None:
        """Save one chunk."""
        if not files:
            return
        names = self._chunks()
        number = int(names[-1].stem.split("-")[1]) + 1 if names else 1
        stem = self.dir / f"chunk-{number:06d}"
        dim = len(files[0].mean)
        arrays = {
            "means": np.stack([f.mean for f in files]).astype(np.float32),
            "segments": np.concatenate([np.reshape(f.segments, (-1, dim)) for f in files]
                                       ).astype(np.float32),
            "starts": np.concatenate([f.starts for f in files]).astype(np.float32),
            "counts": np.asarray([len(f.starts) for f in files], np.int64),
        }
        tmp = stem.with_name(f".{stem.name}.npz.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, stem.with_suffix(".npz"))
        write_json(stem.with_suffix(".json"), [f.entry.to_dict() for f in files])

    def items(self) -> Iterator[EmbeddedFile]:
        """Every saved file; unreadable or inconsistent chunks are skipped."""
        for meta in self._chunks():
            try:
                entries = [FileEntry.from_dict(d) for d in json.loads(meta.read_text("utf-8"))]
                with np.load(meta.with_suffix(".npz"), allow_pickle=False) as data:
                    means, segments = data["means"], data["segments"]
                    starts, counts = data["starts"], data["counts"]
            except (OSError, ValueError, KeyError, TypeError, EOFError):
                continue
            if (means.ndim != 2 or len(means) != len(entries) or len(counts) != len(entries)
                    or int(counts.sum()) != len(segments) or len(starts) != len(segments)):
                continue
            bounds = np.concatenate([[0], np.cumsum(counts)])
            for i, entry in enumerate(entries):
                rows = slice(int(bounds[i]), int(bounds[i + 1]))
                yield EmbeddedFile(entry, means[i], segments[rows], starts[rows])

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
