"""The on-disk index: a directory with a faiss index, the vectors and a JSON manifest.

Layout of ``INDEX/``:

    manifest.json   format, zoo and faiss versions, the model (`ModelInfo`), dim, metric,
                    index type and parameters (`AnnParams`), the catalogue root (absolute),
                    one entry per indexed file (path relative to the root, size, mtime_ns;
                    entry ``i`` is vector ``i``), files that failed, and the byte size and
                    sha256 of the two data files
    vectors.npy     (files, dim) float32 unit vectors (plain .npy, read without pickle)
    index.faiss     the faiss index (faiss.write_index), ids = rows of vectors.npy
    partial/        only while `zoo index` runs or after it was interrupted: vectors of files
                    embedded since the last complete build, in chunks, for resuming

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
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
VECTORS = "vectors.npy"
INDEX_FILE = "index.faiss"
PARTIAL = "partial"
STATE = "state.json"
OWN_NAMES = (MANIFEST, VECTORS, INDEX_FILE, PARTIAL)


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
    for name in (MANIFEST, VECTORS, INDEX_FILE):
        for p in (path / name, _tmp(path / name)):
            p.unlink(missing_ok=True)
    shutil.rmtree(path / PARTIAL, ignore_errors=True)


class PartialStore:
    """Vectors of files embedded since the last complete build, saved in chunks as they finish.

    ``partial/state.json`` records the model and catalogue root the chunks belong to;
    ``chunk-NNNNNN.npy`` holds the vectors and ``chunk-NNNNNN.json`` the matching file entries
    (written after the vectors, so a chunk without its JSON is ignored).
    """

    def __init__(self, index_dir: Path):
        self.dir = Path(index_dir) / PARTIAL

    def state(self) -> dict[str, Any] | None:
        """The recorded ``{"model": ..., "root": ...}``, or None if there is no partial store."""
        path = self.dir / STATE
        if not path.is_file():
            return None
        return read_json(path, "partial index")

    def start(self, model: dict[str, Any], root: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.dir / STATE).is_file():
            write_json(self.dir / STATE, {"format": FORMAT, "model": model, "root": root})

    def _chunks(self) -> list[Path]:
        return sorted(self.dir.glob("chunk-*.json"))

    def append(self, entries: list[FileEntry], vectors: np.ndarray) -> None:
        """Save one chunk."""
        if not entries:
            return
        names = self._chunks()
        number = int(names[-1].stem.split("-")[1]) + 1 if names else 1
        stem = self.dir / f"chunk-{number:06d}"
        write_npy(stem.with_suffix(".npy"), np.asarray(vectors, np.float32))
        write_json(stem.with_suffix(".json"), [e.to_dict() for e in entries])

    def items(self) -> Iterator[tuple[FileEntry, np.ndarray]]:
        """Every saved ``(entry, vector)``; unreadable or inconsistent chunks are skipped."""
        for meta in self._chunks():
            try:
                entries = [FileEntry.from_dict(d) for d in json.loads(meta.read_text("utf-8"))]
                vectors = np.load(meta.with_suffix(".npy"), allow_pickle=False)
            except (OSError, ValueError, KeyError, TypeError, EOFError):
                continue
            if vectors.ndim != 2 or len(vectors) != len(entries):
                continue
            yield from zip(entries, vectors.astype(np.float32), strict=True)

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
