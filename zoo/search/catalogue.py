"""Build, save, load and query a catalogue index (query by example over a folder of audio).

Example:
    >>> from zoo import search
    >>> report = search.build_index("music/", "music.idx", model="musicnn_msd")
    >>> index = search.load_index("music.idx")
    >>> for path, distance in index.query("query.mp3", top=5):
    ...     print(f"{distance:.4f} {path}")
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from zoo.errors import AudioError
from zoo.search import ann, store
from zoo.search._faiss import require_faiss
from zoo.search.ann import AnnParams
from zoo.search.embedding import (
    DEFAULT_HOP_SECONDS,
    DEFAULT_MODEL,
    DEFAULT_TAIL,
    ModelInfo,
    TrackEmbedder,
    model_info,
)
from zoo.search.errors import CorruptIndexError, IndexMismatchError, SearchError
from zoo.search.store import FileEntry, PartialStore

AUDIO_EXTENSIONS = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3",
                              ".aif", ".aiff", ".aifc", ".au", ".snd", ".w64", ".caf"})
"""File name endings that `scan` treats as audio (case-insensitive); other files are ignored."""

DEFAULT_CHECKPOINT_EVERY = 32
METRIC = "cosine"
DISTANCE = "1 - cosine similarity (inner product of L2-normalised vectors): 0 = same direction"


class Match(NamedTuple):
    """One search result: the catalogue file and its distance (``1 - cosine``) to the query."""

    path: str
    distance: float


@dataclass
class BuildReport:
    """What `build_index` did.

    Attributes:
        index: the index, loaded.
        embedded: files embedded in this run.
        reused: files whose vectors came from an earlier (possibly interrupted) run.
        removed: files of the earlier index that are no longer in the folder (dropped).
        failed: ``(path, reason)`` of files that could not be embedded (not in the index).
        seconds: wall time of the whole build.
    """

    index: CatalogueIndex
    embedded: int = 0
    reused: int = 0
    removed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def scan(audio_dir: str | os.PathLike) -> list[FileEntry]:
    """Audio files under ``audio_dir`` (recursive, hidden files and folders skipped), sorted.

    Raises:
        NotADirectoryError: ``audio_dir`` is not a folder.
    """
    root = Path(audio_dir)
    if not root.is_dir():
        raise NotADirectoryError(f"{os.fspath(audio_dir)} is not a folder")
    entries = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith(".") or Path(name).suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            path = Path(folder) / name
            try:
                st = path.stat()
            except OSError:
                continue  # a dangling link
            if path.is_file():
                entries.append(FileEntry(path.relative_to(root).as_posix(), st.st_size,
                                         st.st_mtime_ns))
    return sorted(entries, key=lambda e: e.path)


def _file_digest(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return path.stat().st_size, digest.hexdigest()


class CatalogueIndex:
    """A loaded index: the faiss index, the vectors, the files, and the model that made them.

    Use `load_index` (or `build_index`) to get one.

    Attributes:
        path: the index directory.
        manifest: the parsed ``manifest.json``.
        model: the `ModelInfo` the vectors were made with; queries use exactly this model.
        params: the `AnnParams` (type, nlist, nprobe, calibration).
        root: the catalogue folder (absolute, as it was when indexed).
        files: one `FileEntry` per vector.
        vectors: ``(len(files), dim)`` float32 unit vectors (memory-mapped from
            ``vectors.npy`` when loaded from disk).
    """

    def __init__(self, path: Path, manifest: dict[str, Any], faiss_index: Any,
                 vectors: np.ndarray):
        self.path = path
        self.manifest = manifest
        self.model = ModelInfo.from_dict(manifest["model"])
        self.params = AnnParams.from_dict(manifest["index"])
        self.root = Path(manifest["root"])
        self.files = [FileEntry.from_dict(d) for d in manifest["files"]]
        self.vectors = vectors
        self.faiss_index = faiss_index
        ann.set_search_params(faiss_index, self.params)
        self._embedder: TrackEmbedder | None = None

    def __len__(self) -> int:
        return len(self.files)

    def __repr__(self) -> str:
        return (f"CatalogueIndex({os.fspath(self.path)!r}, files={len(self)}, "
                f"model={self.model.preset!r}, type={self.params.type!r})")

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def file_path(self, i: int) -> str:
        """Full path of the catalogue file behind vector ``i``."""
        return os.path.join(self.root, *self.files[i].path.split("/"))

    @property
    def embedder(self) -> TrackEmbedder:
        """The index's own model, loaded on first use and checked against the manifest.

        Raises:
            IndexMismatchError: the preset now resolves to other weights or another feature.
        """
        if self._embedder is None:
            embedder = TrackEmbedder(self.model.preset, hop_seconds=self.model.hop_seconds,
                                     tail=self.model.tail)
            if embedder.info.identity() != self.model.identity():
                raise IndexMismatchError(
                    f"index {self.path} was built with {self.model.describe()}, but "
                    f"{self.model.preset!r} is now {embedder.info.describe()}: rebuild the index "
                    "(zoo index ... --overwrite)")
            self._embedder = embedder
        return self._embedder

    def embed(self, audio_or_path: Any, *, source_sr: int | None = None) -> np.ndarray:
        """The query vector of a recording, made with the index's model."""
        return self.embedder.embed(audio_or_path, source_sr=source_sr)

    def query_vector(self, vector: np.ndarray, top: int = 10) -> list[Match]:
        """Nearest catalogue files to a vector (normalised here), best first."""
        vector = np.asarray(vector, np.float32).reshape(1, -1)
        if vector.shape[1] != self.dim:
            raise ValueError(f"query vector has {vector.shape[1]} dimensions, the index {self.dim}")
        if top < 1:
            raise ValueError(f"top must be >= 1, got {top}")
        distances, ids = ann.search(self.faiss_index, ann.normalize_rows(vector), top)
        return [Match(self.file_path(int(i)), float(d))
                for d, i in zip(distances[0], ids[0], strict=True) if i >= 0]

    def query(self, audio_or_path: Any, top: int = 10, *,
              source_sr: int | None = None) -> list[Match]:
        """The ``top`` catalogue files most similar to a recording, best first.

        Args:
            audio_or_path: a file path, encoded bytes, or a float waveform (give ``source_sr``).
            top: how many results.
            source_sr: sample rate of an array input.

        Returns:
            `Match` rows ``(path, distance)``; distance is ``1 - cosine`` in [0, 2].

        Raises:
            AudioError: the query cannot be read. IndexMismatchError: the index's model changed.

        Example:
            >>> index.query("query.wav", top=3)
            [Match(path='/music/a.flac', distance=0.0), Match(path='/music/b.ogg', ...)]
        """
        return self.query_vector(self.embed(audio_or_path, source_sr=source_sr), top)


def load_index(path: str | os.PathLike, *, verify: bool = True) -> CatalogueIndex:
    """Open an index written by `build_index` / ``zoo index``.

    Args:
        path: the index directory.
        verify: also check the sha256 of the data files against the manifest (sizes, shapes,
            dimensions, counts and index type are always checked).

    Raises:
        CorruptIndexError: missing, truncated, altered or inconsistent files.
        MissingDependencyError: faiss is not installed.

    Example:
        >>> index = zoo.search.load_index("music.idx")
        >>> index.model.preset, len(index)
        ('musicnn_msd', 1000)
    """
    faiss = require_faiss()
    path = Path(path)
    if not path.is_dir():
        raise CorruptIndexError(f"{os.fspath(path)} is not an index directory")
    manifest = store.read_json(path / store.MANIFEST, "index")
    what = f"index {os.fspath(path)}"
    if not isinstance(manifest, dict) or manifest.get("format") != store.FORMAT:
        raise CorruptIndexError(f"{what}: {store.MANIFEST} is not a zoo search index manifest")
    if manifest.get("format_version", 0) > store.FORMAT_VERSION:
        raise CorruptIndexError(f"{what} uses format {manifest['format_version']}; this zoo "
                                f"reads up to {store.FORMAT_VERSION}: upgrade zoo")
    try:
        count, dim = int(manifest["count"]), int(manifest["dim"])
        ModelInfo.from_dict(manifest["model"])
        params = AnnParams.from_dict(manifest["index"])
        files = [FileEntry.from_dict(d) for d in manifest["files"]]
        data = {name: manifest["data"][name] for name in (store.VECTORS, store.INDEX_FILE)}
        str(manifest["root"])
    except (KeyError, TypeError, ValueError) as err:
        raise CorruptIndexError(f"{what}: invalid manifest ({type(err).__name__}: {err})") from err
    if len(files) != count:
        raise CorruptIndexError(f"{what}: manifest lists {len(files)} files for {count} vectors")
    for name, record in data.items():
        file = path / name
        if not file.is_file():
            raise CorruptIndexError(f"{what}: {name} is missing")
        size = file.stat().st_size
        if size != record["bytes"]:
            raise CorruptIndexError(f"{what}: {name} has {size} bytes, the manifest says "
                                    f"{record['bytes']} (truncated or replaced)")
        if verify and _file_digest(file)[1] != record["sha256"]:
            raise CorruptIndexError(f"{what}: {name} does not match the sha256 in the manifest "
                                    "(altered or corrupt)")
    vectors = store.read_npy(path / store.VECTORS, what, mmap=True)  # searched via faiss
    if vectors.dtype != np.float32 or vectors.shape != (count, dim):
        raise CorruptIndexError(f"{what}: {store.VECTORS} is {vectors.dtype}{vectors.shape}, "
                                f"expected float32({count}, {dim})")
    try:
        index = faiss.read_index(os.fspath(path / store.INDEX_FILE))
    except RuntimeError as err:
        raise CorruptIndexError(f"{what}: cannot read {store.INDEX_FILE}: {err}") from err
    expected = {"flat": "IndexFlatIP", "ivf": "IndexIVFFlat"}.get(params.type)
    actual = type(index).__name__  # read_index returns the concrete class
    if (expected != actual or index.ntotal != count or index.d != dim
            or index.metric_type != faiss.METRIC_INNER_PRODUCT):
        raise CorruptIndexError(f"{what}: {store.INDEX_FILE} is a {actual} of {index.ntotal} "
                                f"x {index.d}, the manifest says {expected} of {count} x {dim} "
                                "(inner product)")
    return CatalogueIndex(path, manifest, index, vectors)


def write_index(out: str | os.PathLike, vectors: np.ndarray, files: list[FileEntry],
                model: ModelInfo, root: str | os.PathLike, *, index_type: str = "auto",
                failed: Iterable[tuple[str, str]] = (), nlist: int | None = None,
                nprobe: int | None = None) -> CatalogueIndex:
    """Build the ANN index over ``vectors`` and write the index directory ``out``.

    Args:
        out: the index directory (created if needed).
        vectors: ``(len(files), dim)`` unit vectors.
        files: the catalogue entry of every row.
        model: the model that made the vectors.
        root: the catalogue folder the entries are relative to.
        index_type: ``"auto"``, ``"flat"`` or ``"ivf"`` (see `zoo.search.ann`).
        failed: ``(relative path, reason)`` of files left out, recorded in the manifest.
        nlist, nprobe: IVF parameters (default: chosen / calibrated).

    Returns:
        The written index, loaded.
    """
    import zoo

    faiss = require_faiss()
    vectors = ann.normalize_rows(vectors)
    if len(files) != len(vectors):
        raise ValueError(f"{len(files)} files for {len(vectors)} vectors")
    index, params = ann.build_ann(vectors, index_type, nlist=nlist, nprobe=nprobe)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store.write_npy(out / store.VECTORS, vectors)
    tmp = out / f".{store.INDEX_FILE}.tmp"
    faiss.write_index(index, os.fspath(tmp))
    os.replace(tmp, out / store.INDEX_FILE)
    data = {}
    for name in (store.VECTORS, store.INDEX_FILE):
        size, sha = _file_digest(out / name)
        data[name] = {"bytes": size, "sha256": sha}
    manifest = {
        "format": store.FORMAT,
        "format_version": store.FORMAT_VERSION,
        "zoo_version": zoo.__version__,
        "faiss_version": getattr(faiss, "__version__", "unknown"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model.to_dict(),
        "dim": int(vectors.shape[1]),
        "metric": METRIC,
        "distance": DISTANCE,
        "index": params.to_dict(),
        "count": len(files),
        "root": os.fspath(Path(root).resolve()),
        "files": [f.to_dict() for f in files],
        "failed": [{"path": p, "error": e} for p, e in failed],
        "data": data,
    }
    store.write_json(out / store.MANIFEST, manifest)
    return CatalogueIndex(out, manifest, index, vectors)


def _previous(out: Path, overwrite: bool) -> tuple[dict[str, Any] | None, dict | None]:
    """The existing manifest and partial-store state of ``out`` (None where absent)."""
    if overwrite:
        return None, None
    manifest = None
    if store.is_index_dir(out):
        manifest = store.read_json(out / store.MANIFEST, f"index {out}")
        if not isinstance(manifest, dict) or manifest.get("format") != store.FORMAT:
            raise CorruptIndexError(f"{out}: {store.MANIFEST} is not a zoo search index "
                                    "manifest; pass overwrite=True (--overwrite) to replace it")
    state = PartialStore(out).state()
    return manifest, state


def _check_same(what: str, recorded: dict[str, Any], info: ModelInfo, root: str,
                out: Path) -> None:
    try:
        old = ModelInfo.from_dict(recorded["model"])
        old_root = recorded["root"]
    except (KeyError, TypeError) as err:
        raise CorruptIndexError(f"{what} in {out} is invalid ({err}); pass overwrite=True "
                                "(--overwrite) to rebuild") from err
    if old.identity() != info.identity():
        raise IndexMismatchError(
            f"{what} in {out} was made with {old.describe()}, not {info.describe()}: pass "
            f"--overwrite (overwrite=True) to rebuild it with the new model, or --model "
            f"{old.preset} to update it")
    if os.path.normcase(old_root) != os.path.normcase(root):
        raise IndexMismatchError(f"{what} in {out} indexes {old_root}, not {root}: use another "
                                 "--out, or --overwrite to replace it")


def _reusable(out: Path, manifest: dict[str, Any] | None, partial: PartialStore,
              current: dict[str, FileEntry]) -> dict[str, np.ndarray]:
    """Vectors from the previous index and the partial store for files that did not change."""
    known: dict[str, np.ndarray] = {}
    if manifest is not None:
        try:
            old = load_index(out, verify=False)
        except CorruptIndexError as err:
            print(f"zoo: ignoring the previous index in {out}: {err}", file=sys.stderr)
        else:
            for entry, vector in zip(old.files, old.vectors, strict=True):
                if current.get(entry.path) == entry:
                    known[entry.path] = np.array(vector)  # a copy: the file is replaced later
    for entry, vector in partial.items():
        if current.get(entry.path) == entry:
            known[entry.path] = vector
    return known


def build_index(
    audio_dir: str | os.PathLike,
    out: str | os.PathLike,
    model: str | os.PathLike | None = None,
    *,
    index_type: str = "auto",
    overwrite: bool = False,
    hop_seconds: float = DEFAULT_HOP_SECONDS,
    tail: str = DEFAULT_TAIL,
    batch_size: int = 8,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    progress: bool = True,
    on_failure: Callable[[str, str], None] | None = None,
) -> BuildReport:
    """Embed every audio file under ``audio_dir`` and write a searchable index to ``out``.

    Resumable: vectors are saved to ``out/partial/`` every ``checkpoint_every`` files, and a
    rerun (after an interruption, or after files were added) embeds only files that are not
    in the index yet or whose size or modification time changed; files that disappeared are
    dropped.

    Args:
        audio_dir: the catalogue folder (searched recursively for `AUDIO_EXTENSIONS`).
        out: the index directory.
        model: preset name, preset directory or ``hf://`` address. Default: the model of the
            existing index in ``out``, else `DEFAULT_MODEL` (``siamese_musicnn_msd``).
        index_type: ``"auto"`` (exact up to `zoo.search.ann.FLAT_MAX` files, IVF above),
            ``"flat"`` or ``"ivf"``.
        overwrite: discard an existing index in ``out`` (needed to change the model).
        hop_seconds, tail: patching of the files (see `zoo.tag`).
        batch_size: patches per model call.
        checkpoint_every: files per saved chunk.
        progress: show a progress bar (files done, rate, ETA) on stderr.
        on_failure: called with ``(path, reason)`` for each file that cannot be embedded
            (default: a line on stderr). Such files are skipped, the rest are indexed.

    Returns:
        A `BuildReport` (its ``failed`` lists the skipped files).

    Raises:
        IndexMismatchError: ``out`` holds an index of another model or folder (and not
            ``overwrite``). PresetError: unknown model. SearchError: no file could be indexed.
        MissingDependencyError: faiss is not installed.

    Example:
        >>> report = zoo.search.build_index("music/", "music.idx", model="musicnn_msd")
        >>> len(report.index), report.failed
        (1000, [])
    """
    from tqdm import tqdm

    require_faiss()
    started = time.perf_counter()
    root = Path(audio_dir).expanduser().resolve()
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise SearchError(f"{out} exists and is not a folder")
    foreign = store.foreign_entries(out)
    if foreign:
        raise SearchError(f"{out} is not an index directory (it holds {', '.join(foreign[:3])}"
                          f"{', ...' if len(foreign) > 3 else ''}): choose a new or empty --out")
    entries = scan(root)
    manifest, state = _previous(out, overwrite)
    if model is None:
        recorded = manifest or state
        model = recorded["model"]["preset"] if recorded else DEFAULT_MODEL
    info = model_info(model, hop_seconds=hop_seconds, tail=tail)
    for what, recorded in (("the index", manifest), ("the interrupted build", state)):
        if recorded is not None:
            _check_same(what, recorded, info, str(root), out)
    if overwrite:
        store.remove_index_files(out)
    if not entries:
        raise SearchError(f"no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) under {root}")

    current = {e.path: e for e in entries}
    partial = PartialStore(out)
    known = _reusable(out, manifest, partial, current)
    reused = len(known)
    removed = 0 if manifest is None else sum(1 for d in manifest.get("files", [])
                                             if d.get("path") not in current)
    todo = [e for e in entries if e.path not in known]
    failed: list[tuple[str, str]] = []

    def report(path: str, reason: str) -> None:
        failed.append((path, reason))
        if on_failure is not None:
            on_failure(path, reason)
        else:
            tqdm.write(f"zoo: FAILED {path}: {reason}", file=sys.stderr)

    if todo:
        out.mkdir(parents=True, exist_ok=True)
        partial.start(info.to_dict(), str(root))
        embedder = TrackEmbedder(info.preset, hop_seconds=hop_seconds, tail=tail,
                                 batch_size=batch_size)
        pending: list[tuple[FileEntry, np.ndarray]] = []

        def flush() -> None:
            if pending:
                partial.append([e for e, _ in pending], np.stack([v for _, v in pending]))
                pending.clear()

        bar = tqdm(todo, unit="file", desc="embedding", file=sys.stderr, disable=not progress,
                   dynamic_ncols=True)
        try:
            for entry in bar:
                path = root.joinpath(*entry.path.split("/"))
                try:
                    vector = embedder.embed(path)
                except (AudioError, OSError) as err:
                    reason = err.reason if isinstance(err, AudioError) else str(err)
                    report(os.fspath(path), reason)
                    continue
                known[entry.path] = vector
                pending.append((entry, vector))
                if len(pending) >= checkpoint_every:
                    flush()
        finally:
            flush()  # also on Ctrl-C: the next run resumes from here
            bar.close()

    kept = [e for e in entries if e.path in known]
    if not kept:
        raise SearchError(f"none of the {len(entries)} audio files under {root} could be "
                          "indexed")
    vectors = np.stack([known[e.path] for e in kept])
    rel_failed = [(os.path.relpath(p, root), r) for p, r in failed]
    index = write_index(out, vectors, kept, info, root, index_type=index_type,
                        failed=rel_failed)
    partial.clear()
    return BuildReport(index=index, embedded=len(kept) - reused, reused=reused,
                       removed=removed, failed=failed, seconds=time.perf_counter() - started)
