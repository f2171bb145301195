"""Embedding files written by ``zoo embed``: per-patch and per-file vectors in ``.npz`` or Parquet.

``.npz`` (numpy; read with ``np.load``), for ``N`` files and ``P`` patches in all:

- ``files`` ``(N,)``: the paths, in the order written; ``model``: the preset's name;
- ``patch_file`` ``(P,)``: the row of ``files`` each patch belongs to;
  ``patch_start`` ``(P,)``: its start, seconds;
- per feature ``F``: ``F`` ``(P, ...)`` one row per patch, and ``F_file`` ``(N, ...)`` the mean
  over each file's patches.

Parquet (pyarrow; read with ``pandas.read_parquet`` or any Parquet reader), one row per file:
``file``, ``patch_start`` (list), and per feature ``F``: ``F`` (the file's mean, flattened) and
``F_patches`` (one flattened vector per patch). The schema's ``zoo`` metadata holds the model
and each feature's per-patch shape. Rows are written as files finish, so memory stays bounded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from zoo.errors import ZooError

FORMATS = (".npz", ".parquet")
_ROW_GROUP_FILES = 64  # Parquet rows (files) buffered per row group


class EmbeddingWriter(Protocol):
    def add(self, features: Any) -> None: ...

    def close(self) -> None: ...


def output_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot take an embedding file (checked before any work), or None."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        return f"--out {path}: the name must end in {' or '.join(FORMATS)}"
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            return "writing Parquet needs pyarrow: pip install pyarrow (or write .npz)"
    return None


def open_writer(path: str | os.PathLike, model_name: str) -> EmbeddingWriter:
    """A writer for ``path`` (its suffix picks the format); ``close()`` completes the file."""
    if Path(path).suffix.lower() == ".parquet":
        return ParquetEmbeddings(path, model_name)
    return NpzEmbeddings(path, model_name)


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


class NpzEmbeddings:
    """Collects every file's features and writes one ``.npz`` on `close` (then renames it into
    place, so a crash never leaves a half-written file under the real name)."""

    def __init__(self, path: str | os.PathLike, model_name: str):
        self.path = Path(path)
        self.model_name = model_name
        self._files: list[str] = []
        self._patches: dict[str, list[np.ndarray]] = {}
        self._means: dict[str, list[np.ndarray]] = {}
        self._patch_file: list[np.ndarray] = []
        self._starts: list[np.ndarray] = []

    def add(self, features: Any) -> None:
        row = len(self._files)
        self._files.append(features.source)
        self._patch_file.append(np.full(len(features.times), row, np.int32))
        self._starts.append(np.asarray(features.times, np.float64))
        for name, array in features.items():
            self._patches.setdefault(name, []).append(array)
            self._means.setdefault(name, []).append(array.mean(axis=0, dtype=np.float64)
                                                    .astype(array.dtype))

    def close(self) -> None:
        arrays: dict[str, np.ndarray] = {
            "files": np.asarray(self._files, dtype=str), "model": np.asarray(self.model_name),
            "patch_file": np.concatenate(self._patch_file) if self._patch_file
            else np.zeros(0, np.int32),
            "patch_start": np.concatenate(self._starts) if self._starts else np.zeros(0)}
        for name, parts in self._patches.items():
            arrays[name] = np.concatenate(parts)
            arrays[f"{name}_file"] = np.stack(self._means[name])
        partial = _temporary(self.path)
        with open(partial, "wb") as f:
            np.savez(f, **arrays)
        os.replace(partial, self.path)


class ParquetEmbeddings:
    """Streams one Parquet row per file (`add`), in row groups of a few dozen files."""

    def __init__(self, path: str | os.PathLike, model_name: str):
        self.path = Path(path)
        self.model_name = model_name
        self._rows: list[dict[str, Any]] = []
        self._writer: Any = None
        self._shapes: dict[str, list[int]] | None = None

    def add(self, features: Any) -> None:
        shapes = {name: list(array.shape[1:]) for name, array in features.items()}
        if self._shapes is None:
            self._shapes = shapes
        elif shapes != self._shapes:  # cannot happen within one model; guards the schema
            raise ZooError(f"{features.source}: feature shapes {shapes} differ from the "
                           f"first file's {self._shapes}")
        row: dict[str, Any] = {"file": features.source,
                               "patch_start": np.asarray(features.times, np.float64)}
        for name, array in features.items():
            flat = np.asarray(array, np.float32).reshape(len(array), -1)
            row[name] = flat.mean(axis=0, dtype=np.float64).astype(np.float32)
            row[f"{name}_patches"] = list(flat)
        self._rows.append(row)
        if len(self._rows) >= _ROW_GROUP_FILES:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._rows:
            return
        columns = {key: [row[key] for row in self._rows] for key in self._rows[0]}
        fields = [pa.field("file", pa.string()), pa.field("patch_start", pa.list_(pa.float64()))]
        for name, shape in (self._shapes or {}).items():
            size = int(np.prod(shape)) if shape else 1
            fields += [pa.field(name, pa.list_(pa.float32(), size)),
                       pa.field(f"{name}_patches", pa.list_(pa.list_(pa.float32(), size)))]
        meta = {"model": self.model_name, "shapes": self._shapes}
        schema = pa.schema(fields, metadata={"zoo": json.dumps(meta)})
        table = pa.table({f.name: pa.array(columns[f.name], type=f.type) for f in fields},
                         schema=schema)
        if self._writer is None:
            self._writer = pq.ParquetWriter(_temporary(self.path), schema)
        self._writer.write_table(table)
        self._rows = []

    def close(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._flush()
        if self._writer is None:  # no file succeeded: an empty table with the base columns
            schema = pa.schema([pa.field("file", pa.string()),
                                pa.field("patch_start", pa.list_(pa.float64()))],
                               metadata={"zoo": json.dumps({"model": self.model_name})})
            pq.write_table(schema.empty_table(), _temporary(self.path))
        else:
            self._writer.close()
        os.replace(_temporary(self.path), self.path)
