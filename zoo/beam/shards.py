"""The pipelines' output: Parquet shards in committed runs, and how to read them back.

Layout of an output folder ``OUT/`` (local or any Beam file system):

    dataset.json                 what the dataset is (``taggrams`` or ``embeddings``), the model
                                 (`zoo.search.embedding.ModelInfo`), the source, the tag names,
                                 and the list of **committed** runs with their shard files
    runs/<run id>/files-*.parquet      one row per file (taggrams: the taggram; embeddings:
                                       the file vector)
    runs/<run id>/segments-*.parquet   embeddings only: one row per segment
    runs/<run id>/failed-*.parquet     the dead-letter: path, reason, stage
    runs/<run id>/listing-*.parquet    every audio file the run matched (path, size, mtime_ns)

A run writes its shards (Beam writes each to a temporary name and renames it when the bundle
is done), then the driver **commits** it by rewriting ``dataset.json`` (temporary file, then
rename). Readers only read committed runs, so a run killed half way leaves nothing they read;
its folder is removed by the next run. A file processed again because it changed has a row in
a later run; `Dataset` resolves each path to its latest row, so no path is read twice.
"""

from __future__ import annotations

import json
import posixpath
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from zoo.errors import ZooError

FORMAT = "zoo-beam-dataset"
FORMAT_VERSION = 1
MANIFEST = "dataset.json"
RUNS = "runs"
KINDS = ("taggrams", "embeddings")
TABLES = {"taggrams": ("files", "failed", "listing"),
          "embeddings": ("files", "segments", "failed", "listing")}


class DatasetError(ZooError, ValueError):
    """An output folder that is not a zoo dataset, or one of another kind or model."""


def _file_columns() -> list[pa.Field]:
    return [pa.field("path", pa.string()), pa.field("uri", pa.string()),
            pa.field("size", pa.int64()), pa.field("mtime_ns", pa.int64()),
            pa.field("duration", pa.float64()), pa.field("sample_rate", pa.int32()),
            pa.field("channels", pa.int32()), pa.field("model", pa.string()),
            pa.field("weights_sha256", pa.string()), pa.field("hop_seconds", pa.float64()),
            pa.field("repeat_padded", pa.bool_())]


TAGGRAM_SCHEMA = pa.schema(_file_columns() + [
    pa.field("patches", pa.int32()), pa.field("times", pa.list_(pa.float32())),
    pa.field("mean", pa.list_(pa.float32())),
    pa.field("taggram", pa.list_(pa.list_(pa.float32())))])
"""One row per file: the file, the model, patch start times, mean and per-patch taggram."""

FILE_VECTOR_SCHEMA = pa.schema(_file_columns() + [
    pa.field("segments", pa.int32()), pa.field("vector", pa.list_(pa.float32()))])
"""One row per file: the file, the model, its segment count and unit file vector."""

SEGMENT_SCHEMA = pa.schema([pa.field("path", pa.string()), pa.field("segment", pa.int32()),
                            pa.field("start", pa.float32()),
                            pa.field("vector", pa.list_(pa.float32()))])
"""One row per segment: the file, the segment's rank and start (s), its unit vector."""

FAILED_SCHEMA = pa.schema([pa.field("path", pa.string()), pa.field("reason", pa.string()),
                           pa.field("stage", pa.string())])
"""The dead-letter: one row per file that produced no output."""

LISTING_SCHEMA = pa.schema([pa.field("path", pa.string()), pa.field("size", pa.int64()),
                            pa.field("mtime_ns", pa.int64())])
"""Every audio file a run matched (the index is built over the latest listing)."""


def schemas(kind: str, tags: list[str] | None = None) -> dict[str, pa.Schema]:
    """The Parquet schema of each table of a ``kind`` dataset (tag names in the metadata)."""
    files = TAGGRAM_SCHEMA if kind == "taggrams" else FILE_VECTOR_SCHEMA
    if tags:
        files = files.with_metadata({b"zoo.tags": json.dumps(list(tags)).encode()})
    out = {"files": files, "failed": FAILED_SCHEMA, "listing": LISTING_SCHEMA}
    if kind == "embeddings":
        out["segments"] = SEGMENT_SCHEMA
    return out


def join(*parts: str) -> str:
    """Join path parts, local or URL."""
    if "://" in parts[0]:
        return posixpath.join(*parts)
    import os

    return os.path.join(*parts)


def _read_text(path: str) -> str:
    with FileSystems.open(path, mime_type="application/json",
                          compression_type="uncompressed") as f:
        return f.read().decode("utf-8")


def _write_text(path: str, text: str) -> None:
    """Write then rename: a reader sees the old file or the new one, never half of one."""
    tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
    with FileSystems.create(tmp, mime_type="application/json") as f:
        f.write(text.encode("utf-8"))
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def new_run_id() -> str:
    """A sortable, unique run id: UTC time and a random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


class Dataset:
    """An output folder of committed runs (see the module notes).

    Args:
        root: the output folder (local path or URL).

    Example:
        >>> ds = Dataset("tags/")
        >>> table = ds.read("files", columns=["path", "mean"])   # latest row per file
    """

    def __init__(self, root: str):
        if "://" in root:
            from zoo.beam.sources import check_filesystem

            check_filesystem(root)
        self.root = root.rstrip("/") if "://" in root else root
        self.manifest_path = join(self.root, MANIFEST)
        self._manifest: dict[str, Any] | None = None

    def exists(self) -> bool:
        return FileSystems.exists(self.manifest_path)

    @property
    def manifest(self) -> dict[str, Any]:
        if self._manifest is None:
            try:
                doc = json.loads(_read_text(self.manifest_path))
            except (OSError, ValueError, UnicodeDecodeError) as err:
                raise DatasetError(f"{self.manifest_path}: cannot read it ({err})") from err
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise DatasetError(f"{self.manifest_path} is not a zoo dataset manifest")
            if doc.get("format_version", 0) > FORMAT_VERSION:
                raise DatasetError(f"{self.manifest_path}: format version "
                                   f"{doc.get('format_version')} is newer than this zoo reads "
                                   f"({FORMAT_VERSION}): upgrade zoo")
            self._manifest = doc
        return self._manifest

    @property
    def runs(self) -> list[dict[str, Any]]:
        return self.manifest["runs"] if self.exists() else []

    def run_dir(self, run_id: str) -> str:
        return join(self.root, RUNS, run_id)

    def create(self, kind: str, model: dict[str, Any], source: str, tags: list[str],
               root: str | None = None) -> None:
        """Write the manifest of a new, empty dataset.

        Args:
            kind: ``taggrams`` or ``embeddings``.
            model: the `ModelInfo` dict of the model.
            source: the SOURCE argument.
            tags: tag names (taggrams).
            root: the folder the rows' ``path`` is relative to (default: ``source``).
        """
        if kind not in KINDS:
            raise ValueError(f"unknown dataset kind {kind!r}")
        self._manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
                          "model": model, "source": source, "root": root or source,
                          "tags": list(tags), "runs": []}
        FileSystems.mkdirs(self.root) if not FileSystems.exists(self.root) else None
        _write_text(self.manifest_path, json.dumps(self._manifest, indent=1) + "\n")

    def check(self, kind: str, identity: tuple, describe: str) -> None:
        """Refuse to add to a dataset of another kind or model.

        Raises:
            DatasetError: with what to do instead.
        """
        from zoo.search.embedding import ModelInfo

        doc = self.manifest
        if doc.get("kind") != kind:
            raise DatasetError(f"{self.root} holds {doc.get('kind')}, not {kind}: choose "
                               "another --out")
        old = ModelInfo.from_dict(doc["model"])
        if old.identity() != identity:
            raise DatasetError(f"{self.root} was made with {old.describe()}, not {describe}: "
                               "pass --overwrite to start it again with the new model, or "
                               "another --out")

    def shards(self, run_dir: str, table: str) -> list[str]:
        """The Parquet files of one table that a finished run wrote (sorted names)."""
        found = FileSystems.match([join(run_dir, f"{table}-*.parquet")])[0].metadata_list
        return sorted(posixpath.basename(m.path.replace("\\", "/")) for m in found)

    def commit(self, run_id: str, stats: dict[str, Any]) -> dict[str, Any]:
        """Record a finished run's shards in the manifest (the commit point)."""
        run_dir = self.run_dir(run_id)
        kind = self.manifest["kind"]
        entry = {"id": run_id,
                 "committed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "tables": {t: self.shards(run_dir, t) for t in TABLES[kind]}, **stats}
        doc = dict(self.manifest)
        doc["runs"] = [*doc["runs"], entry]
        _write_text(self.manifest_path, json.dumps(doc, indent=1) + "\n")
        self._manifest = doc
        return entry

    def remove_uncommitted(self) -> list[str]:
        """Delete run folders that no committed run names (left by killed runs).

        One writer at a time: a run still going in another process would lose its shards.
        """
        committed = {r["id"] for r in self.runs}
        runs_dir = join(self.root, RUNS)
        if "://" not in runs_dir:
            import os

            found = set(os.listdir(runs_dir)) if os.path.isdir(runs_dir) else set()
        else:
            base = runs_dir.rstrip("/") + "/"
            found = {m.path[len(base):].split("/")[0]
                     for m in FileSystems.match([base + "**"])[0].metadata_list
                     if m.path.startswith(base)}
        stale = sorted(found - committed)
        for run_id in stale:
            try:
                FileSystems.delete([self.run_dir(run_id)])
            except OSError:
                pass
        return stale

    def paths(self, table: str) -> Iterator[tuple[int, str]]:
        """``(run ordinal, shard path)`` of every committed shard of ``table``, oldest first."""
        for ordinal, run in enumerate(self.runs):
            for name in run["tables"].get(table, []):
                yield ordinal, join(self.run_dir(run["id"]), name)

    def read_all(self, table: str, columns: list[str] | None = None) -> pa.Table:
        """Every committed row of ``table`` with a ``run`` column (ordinal), superseded or not."""
        pieces = []
        for ordinal, path in self.paths(table):
            with FileSystems.open(path, mime_type="application/x-parquet",
                                  compression_type="uncompressed") as f:
                piece = pq.read_table(f, columns=columns)
            pieces.append(piece.append_column("run", pa.array([ordinal] * len(piece),
                                                               pa.int32())))
        if not pieces:
            schema = schemas(self.manifest["kind"])[table]
            if columns is not None:
                schema = pa.schema([schema.field(c) for c in columns])
            return schema.append(pa.field("run", pa.int32())).empty_table()
        return pa.concat_tables(pieces, promote_options="default")

    def read(self, table: str = "files", columns: list[str] | None = None) -> pa.Table:
        """The current rows of a per-file table (``files``, ``listing``): the latest row of each
        path, sorted by path. ``failed`` keeps only paths with no later output."""
        cols = None if columns is None else sorted(set(columns) | {"path"})
        rows = self.read_all(table, cols)
        if len(rows) == 0:
            return rows
        runs = rows.column("run").to_pylist()
        latest: dict[str, int] = {}
        for i, path in enumerate(rows.column("path").to_pylist()):
            j = latest.get(path)
            if j is None or runs[i] >= runs[j]:
                latest[path] = i
        if table == "failed":
            done = self.read_all("files", ["uri"])  # a Failure names the file by its uri
            done_run: dict[str, int] = {}
            for uri, run in zip(done.column("uri").to_pylist(), done.column("run").to_pylist(),
                                strict=True):
                done_run[uri] = max(run, done_run.get(uri, -1))
            latest = {p: i for p, i in latest.items() if done_run.get(p, -1) < runs[i]}
        order = [latest[p] for p in sorted(latest)]
        return rows.take(pa.array(order, pa.int64()))
