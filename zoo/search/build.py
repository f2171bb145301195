"""Build (and resume, and update) a catalogue index over a folder of audio.

Example:
    >>> from zoo import search
    >>> report = search.build_index("music/", "music.idx", model="musicnn_msd")
    >>> len(report.index), report.index.level, report.failed
    (1000, 'segment', [])
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zoo import audio
from zoo.errors import AudioError, AudioWarning
from zoo.search import store
from zoo.search._faiss import require_faiss
from zoo.search.catalogue import LEVELS, CatalogueIndex, load_index, write_index
from zoo.search.embedding import (
    DEFAULT_HOP_SECONDS,
    DEFAULT_MODEL,
    DEFAULT_TAIL,
    ModelInfo,
    TrackEmbedder,
    model_info,
)
from zoo.search.errors import CorruptIndexError, IndexMismatchError, SearchError
from zoo.search.segments import SegmentTable
from zoo.search.store import EmbeddedFile, FileEntry, PartialStore

AUDIO_EXTENSIONS = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3",
                              ".aif", ".aiff", ".aifc", ".au", ".snd", ".w64", ".caf"})
"""File name endings that `scan` treats as audio (case-insensitive); other files are ignored."""

DEFAULT_CHECKPOINT_EVERY = 32
DEFAULT_LEVEL = "segment"


@dataclass
class BuildReport:
    """What `build_index` did.

    Attributes:
        index: the index, loaded.
        embedded: files embedded in this run.
        reused: files whose vectors came from an earlier (possibly interrupted) run.
        removed: files of the earlier index that are no longer in the folder (dropped).
        failed: ``(path, reason)`` of files that could not be embedded (not in the index).
        warnings: ``(path, message)`` of files indexed with a doubt: possibly truncated,
            silent or nearly so, shorter than one patch (the message names the file).
        seconds: wall time of the whole build.
    """

    index: CatalogueIndex
    embedded: int = 0
    reused: int = 0
    removed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def scan(audio_dir: str | os.PathLike) -> list[FileEntry]:
    """Audio files under ``audio_dir`` (recursive, hidden files and folders skipped), sorted.

    Names that cannot be statted (a broken symbolic link, a link loop) are left out; `build_index`
    reports them as failed.

    Raises:
        NotADirectoryError: ``audio_dir`` is not a folder.
    """
    return _scan(Path(audio_dir))[0]


def _scan(root: Path) -> tuple[list[FileEntry], list[Path]]:
    """`scan`'s entries, and the audio-named paths that could not be statted."""
    if not root.is_dir():
        raise NotADirectoryError(f"{os.fspath(root)} is not a folder")
    entries, unreadable = [], []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith(".") or Path(name).suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            path = Path(folder) / name
            try:
                st = path.stat()
            except OSError:
                unreadable.append(path)  # a broken link or a link loop
                continue
            if path.is_file():
                entries.append(FileEntry(path.relative_to(root).as_posix(), st.st_size,
                                         st.st_mtime_ns))
    return sorted(entries, key=lambda e: e.path), sorted(unreadable)


def _unreadable_reason(path: Path) -> str:
    """Why a scanned name cannot be read, in `zoo.audio`'s words (one wording everywhere)."""
    try:
        audio.info(path)
    except AudioError as err:
        return err.reason
    return "cannot be read"  # it became readable since the scan: say something all the same


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
            f"{old.preset}"
            f"{'' if old.precision == info.precision else ' --precision ' + old.precision}"
            " to update it")
    if os.path.normcase(old_root) != os.path.normcase(root):
        raise IndexMismatchError(f"{what} in {out} indexes {old_root}, not {root}: use another "
                                 "--out, or --overwrite to replace it")


def _previous_files(index: CatalogueIndex) -> list[EmbeddedFile]:
    """The files of an earlier index, copied out of its memory-mapped arrays."""
    dim = index.dim
    empty = (np.zeros((0, dim), np.float32), np.zeros(0, np.float32))
    out = []
    for i, entry in enumerate(index.files):
        if index.table is None:
            seg, starts = empty
        else:
            rows = index.table.rows(i)
            seg, starts = np.array(index.segments[rows]), np.array(index.table.starts[rows])
        out.append(EmbeddedFile(entry, np.array(index.vectors[i]), seg, starts))
    return out


def _reusable(out: Path, manifest: dict[str, Any] | None, partial: PartialStore,
              current: dict[str, FileEntry], level: str) -> dict[str, EmbeddedFile]:
    """Embeddings from the previous index and the partial store for files that did not change
    (and that hold what ``level`` needs: a segment index cannot reuse file-only vectors)."""
    known: dict[str, EmbeddedFile] = {}
    candidates: list[EmbeddedFile] = []
    if manifest is not None:
        try:
            old = load_index(out, verify=False)
        except CorruptIndexError as err:
            print(f"zoo: ignoring the previous index in {out}: {err}", file=sys.stderr)
        else:
            if level == "segment" and old.table is None:
                print(f"zoo: the index in {out} holds one vector per file; embedding every "
                      "file again for segment search", file=sys.stderr)
            else:
                candidates = _previous_files(old)
    candidates.extend(partial.items())
    for item in candidates:
        if current.get(item.entry.path) == item.entry and (level == "file" or len(item.starts)):
            known[item.entry.path] = item
    return known


def build_index(
    audio_dir: str | os.PathLike,
    out: str | os.PathLike,
    model: str | os.PathLike | None = None,
    *,
    level: str = DEFAULT_LEVEL,
    index_type: str = "auto",
    segment_index_type: str = "auto",
    overwrite: bool = False,
    hop_seconds: float = DEFAULT_HOP_SECONDS,
    tail: str = DEFAULT_TAIL,
    batch_size: int = 8,
    precision: str | None = None,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    progress: bool = True,
    on_failure: Callable[[str, str], None] | None = None,
    on_warning: Callable[[str, str], None] | None = None,
) -> BuildReport:
    """Embed every audio file under ``audio_dir`` and write a searchable index to ``out``.

    Resumable: embeddings are saved to ``out/partial/`` every ``checkpoint_every`` files, and a
    rerun (after an interruption, or after files were added) embeds only files that are not
    in the index yet or whose size or modification time changed; files that disappeared are
    dropped.

    Args:
        audio_dir: the catalogue folder (searched recursively for `AUDIO_EXTENSIONS`).
        out: the index directory.
        model: preset name, preset directory or ``hf://`` address. Default: the model of the
            existing index in ``out``, else `DEFAULT_MODEL`.
        level: ``"segment"`` (default: a vector per patch of every file, plus one per file) or
            ``"file"`` (one mean vector per file: smaller, coarser).
        index_type: index of the file vectors: ``"auto"`` (exact up to
            `zoo.search.ann.FLAT_MAX` files, IVF above), ``"flat"`` or ``"ivf"``.
        segment_index_type: index of the segments: ``"auto"`` (exact scan up to
            `zoo.search.ann.SEGMENT_FLAT_MAX` segments, IVF-PQ above), ``"flat"``, ``"ivfpq"``.
        overwrite: discard an existing index in ``out`` (needed to change the model).
        hop_seconds, tail: patching of the files (see `zoo.tag`); a segment is one patch.
        batch_size: patches per model call.
        precision: ``"float32"`` or ``"bfloat16"`` (`zoo.inference.precision`: about twice the
            embedding speed on a CPU with AVX512-BF16 / AMX). Default: the existing index's,
            else float32. Queries use the index's precision; vectors of two precisions never
            mix in one index.
        checkpoint_every: files per saved chunk.
        progress: show a progress bar (files done, rate, ETA) on stderr.
        on_failure: called with ``(path, reason)`` for each file that cannot be embedded
            (default: a line on stderr). Such files are skipped, the rest are indexed.
        on_warning: called with ``(path, message)`` for each file indexed with a doubt (its
            decoder's `zoo.errors.AudioWarning`, or the silence / short-clip notes `zoo.tag`
            gives); default: a ``zoo: warning: <message>`` line on stderr.

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
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; known: {', '.join(LEVELS)}")
    started = time.perf_counter()
    root = Path(audio_dir).expanduser().resolve()
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise SearchError(f"{out} exists and is not a folder")
    foreign = store.foreign_entries(out)
    if foreign:
        raise SearchError(f"{out} is not an index directory (it holds {', '.join(foreign[:3])}"
                          f"{', ...' if len(foreign) > 3 else ''}): choose a new or empty --out")
    entries, unreadable = _scan(root)
    manifest, state = _previous(out, overwrite)
    recorded = manifest or state
    if model is None:
        model = recorded["model"]["preset"] if recorded else DEFAULT_MODEL
    if precision is None:
        precision = recorded["model"].get("precision", "float32") if recorded else "float32"
    info = model_info(model, hop_seconds=hop_seconds, tail=tail, precision=precision)
    for what, recorded in (("the index", manifest), ("the interrupted build", state)):
        if recorded is not None:
            _check_same(what, recorded, info, str(root), out)
    if overwrite:
        store.remove_index_files(out)
    if not entries and not unreadable:
        raise SearchError(f"no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) under {root}")

    current = {e.path: e for e in entries}
    partial = PartialStore(out)
    known = _reusable(out, manifest, partial, current, level)
    reused = len(known)
    removed = 0 if manifest is None else sum(1 for d in manifest.get("files", [])
                                             if d.get("path") not in current)
    todo = [e for e in entries if e.path not in known]
    failed: list[tuple[str, str]] = []
    doubtful: list[tuple[str, str]] = []

    def report(path: str, reason: str) -> None:
        failed.append((path, reason))
        if on_failure is not None:
            on_failure(path, reason)
        else:
            tqdm.write(f"zoo: FAILED {path}: {reason}", file=sys.stderr)

    def warn(path: str, message: str) -> None:
        doubtful.append((path, message))
        if on_warning is not None:
            on_warning(path, message)
        else:  # one line, as zoo tag prints them: not Python's "file:line: Warning" + source
            tqdm.write(f"zoo: warning: {message}", file=sys.stderr)

    for path in unreadable:
        report(os.fspath(path), _unreadable_reason(path))

    if todo:
        out.mkdir(parents=True, exist_ok=True)
        partial.start(info.to_dict(), str(root), level)
        embedder = TrackEmbedder(info.preset, hop_seconds=hop_seconds, tail=tail,
                                 batch_size=batch_size, precision=info.precision)
        pending: list[EmbeddedFile] = []

        def flush() -> None:
            if pending:
                partial.append(pending)
                pending.clear()

        bar = tqdm(todo, unit="file", desc="embedding", file=sys.stderr, disable=not progress,
                   dynamic_ncols=True)
        try:
            for entry in bar:
                path = root.joinpath(*entry.path.split("/"))
                try:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        seg = embedder.embed_segments(path)
                except (AudioError, OSError) as err:
                    reason = err.reason if isinstance(err, AudioError) else str(err)
                    report(os.fspath(path), reason)
                    continue
                for caught_warning in caught:
                    if issubclass(caught_warning.category, AudioWarning):
                        warn(os.fspath(path), str(caught_warning.message))
                    else:  # not ours to reword: hand it back to Python's warning machinery
                        warnings.warn_explicit(caught_warning.message, caught_warning.category,
                                               caught_warning.filename, caught_warning.lineno)
                for note in seg.notes:
                    warn(os.fspath(path), f"{os.fspath(path)}: {note}")
                item = (EmbeddedFile(entry, seg.mean, seg.vectors, seg.starts)
                        if level == "segment" else
                        EmbeddedFile(entry, seg.mean, seg.vectors[:0], seg.starts[:0]))
                known[entry.path] = item
                pending.append(item)
                if len(pending) >= checkpoint_every:
                    flush()
        finally:
            flush()  # also on Ctrl-C: the next run resumes from here
            bar.close()

    kept = [known[e.path] for e in entries if e.path in known]
    if not kept:
        raise SearchError(f"none of the {len(entries) + len(unreadable)} audio files under "
                          f"{root} could be indexed")
    vectors = np.stack([k.mean for k in kept])
    segment_vectors, table = None, None
    if level == "segment":
        segment_vectors = np.concatenate([k.segments for k in kept])
        table = SegmentTable.from_counts([len(k.starts) for k in kept],
                                         np.concatenate([k.starts for k in kept]))
    rel_failed = [(os.path.relpath(p, root), r) for p, r in failed]
    index = write_index(out, vectors, [k.entry for k in kept], info, root,
                        index_type=index_type, failed=rel_failed,
                        segment_vectors=segment_vectors, table=table,
                        segment_index_type=segment_index_type)
    partial.clear()
    return BuildReport(index=index, embedded=len(kept) - reused, reused=reused,
                       removed=removed, failed=failed, warnings=doubtful,
                       seconds=time.perf_counter() - started)
