"""Which files a pipeline reads: a folder, a glob, or a text file that lists paths or URLs.

Matching goes through Beam's ``FileSystems``, so ``gs://``, ``s3://`` and ``hdfs://`` sources
work wherever Beam's extra for that file system is installed (``apache-beam[gcp]``,
``apache-beam[aws]``, ...). Every matched file becomes an `AudioFile`; a listed file that does
not exist becomes a `Failure` of stage ``match`` (it is reported, not silently dropped).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from zoo.search.build import AUDIO_EXTENSIONS

FAILED = "failed"
"""The tag of every PTransform's dead-letter output (`Failure` elements)."""

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class AudioFile:
    """One input file.

    Attributes:
        path: the file's full path or URL (what the decoder opens).
        relpath: the path relative to the source's root (``/``-separated): the catalogue key.
        size: bytes.
        mtime_ns: last modification, nanoseconds since the epoch (from the file system; for
            object stores the object's update time).
    """

    path: str
    relpath: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Failure:
    """A file that did not make it to the output: the dead-letter record.

    Attributes:
        path: the file (full path or URL).
        reason: what went wrong, for a person.
        stage: where: ``match``, ``decode``, ``infer`` or ``assemble``.
    """

    path: str
    reason: str
    stage: str

    def to_row(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason, "stage": self.stage}


@dataclass(frozen=True)
class Source:
    """A resolved SOURCE argument.

    Attributes:
        kind: ``folder``, ``glob`` or ``list``.
        spec: the argument as given.
        root: the folder that `AudioFile.relpath` is relative to (the folder itself; a glob's
            leading folder; the list file's folder for relative entries).
    """

    kind: str
    spec: str
    root: str


def _is_remote(path: str) -> bool:
    return "://" in path


def _absolute(path: str) -> str:
    return path if _is_remote(path) else os.path.abspath(os.path.expanduser(path))


def _join(root: str, relpath: str) -> str:
    return posixpath.join(root, relpath) if _is_remote(root) else os.path.join(root, relpath)


def check_filesystem(url: str) -> None:
    """Raise FileNotFoundError, saying which extra to install, for a URL scheme that Beam
    cannot open here (e.g. ``gs://`` without ``apache-beam[gcp]``)."""
    try:
        FileSystems.get_filesystem(url)
    except ValueError:
        scheme = url.split("://", 1)[0]
        extra = {"gs": "gcp", "s3": "aws", "azfs": "azure"}.get(scheme)
        hint = f": pip install 'apache-beam[{extra}]'" if extra else ""
        raise FileNotFoundError(f"{url}: Beam has no file system for {scheme}:// on this "
                                f"machine{hint}") from None


def resolve_source(spec: str) -> Source:
    """What kind of SOURCE ``spec`` is (a folder, a glob, or a list file), and its root.

    A path with ``*``, ``?`` or ``[`` is a glob; an existing (local) directory, or a URL
    ending in ``/``, is a folder (searched recursively); any other existing file is a list:
    one path or URL per line (blank lines and lines starting with ``#`` ignored; relative
    paths are relative to the list's folder).

    Raises:
        FileNotFoundError: ``spec`` matches nothing of the above.
    """
    spec = os.fspath(spec)
    if _is_remote(spec):
        check_filesystem(spec)
    if any(c in spec for c in _GLOB_CHARS):
        path = _absolute(spec)
        head = path
        while any(c in head for c in _GLOB_CHARS):
            head = posixpath.dirname(head) if _is_remote(head) else os.path.dirname(head)
        return Source("glob", path, head)
    if _is_remote(spec):
        if spec.endswith("/"):
            return Source("folder", spec, spec.rstrip("/"))
        if FileSystems.exists(spec):
            return Source("list", spec, posixpath.dirname(spec))
        raise FileNotFoundError(f"{spec}: no such object (a folder URL ends in '/')")
    path = _absolute(spec)
    if os.path.isdir(path):
        return Source("folder", path, path)
    if os.path.isfile(path):
        if os.path.splitext(path)[1].lower() in AUDIO_EXTENSIONS:
            raise FileNotFoundError(f"{spec} is an audio file: give a folder, a glob or a text "
                                    "file listing the files")
        return Source("list", path, os.path.dirname(path))
    raise FileNotFoundError(f"{spec}: no such folder, glob or list file")


def is_audio_name(path: str) -> bool:
    """True for a non-hidden file with one of `zoo.search.build.AUDIO_EXTENSIONS`."""
    parts = path.replace("\\", "/").split("/")
    if any(p.startswith(".") and p not in (".", "..") for p in parts if p):
        return False
    return posixpath.splitext(parts[-1])[1].lower() in AUDIO_EXTENSIONS


def relative_to(root: str, path: str) -> str:
    """``path`` relative to ``root``, ``/``-separated; the full path if it is outside root."""
    root = root.rstrip("/\\")
    if path.startswith(root + "/") or path.startswith(root + os.sep):
        return path[len(root) + 1:].replace(os.sep, "/")
    return path.replace(os.sep, "/")


def _mtime_ns(path: str, metadata: Any) -> int:
    if not _is_remote(path):
        try:
            return os.stat(path).st_mtime_ns  # exact, as the single-process index records it
        except OSError:
            pass
    return int(round(float(metadata.last_updated_in_seconds or 0.0) * 1e9))


class _MatchPatterns(beam.DoFn):
    """A pattern -> its audio files; a listed file that matches nothing -> a `Failure`."""

    def __init__(self, root: str, listed: bool):
        self.root = root
        self.listed = listed

    def process(self, pattern: str) -> Iterator[Any]:
        try:
            results = FileSystems.match([pattern])[0].metadata_list
        except Exception as err:  # noqa: BLE001 - any file-system error is this file's failure
            if self.listed:
                yield beam.pvalue.TaggedOutput(FAILED, Failure(pattern, f"cannot be listed: "
                                                                        f"{err}", "match"))
                return
            raise
        if self.listed and not results:
            yield beam.pvalue.TaggedOutput(FAILED, Failure(pattern, "no such file", "match"))
            return
        for meta in results:
            rel = relative_to(self.root, meta.path)
            if not is_audio_name(rel):
                if self.listed:
                    yield beam.pvalue.TaggedOutput(
                        FAILED, Failure(meta.path, "not an audio file name (extensions: "
                                        f"{', '.join(sorted(AUDIO_EXTENSIONS))})", "match"))
                continue
            yield AudioFile(meta.path, rel, int(meta.size_in_bytes), _mtime_ns(meta.path, meta))


def _list_entries(line: str, root: str) -> list[str]:
    line = line.strip()
    if not line or line.startswith("#"):
        return []
    if _is_remote(line) or os.path.isabs(line):
        return [line]
    return [_join(root, line)]


class MatchAudio(beam.PTransform):
    """SOURCE -> one `AudioFile` per audio file (main output) and `Failure`\\ s (``failed``).

    Args:
        source: a folder (recursive), a glob, or a list file (see `resolve_source`), or a
            `Source`.

    Example:
        >>> with beam.Pipeline() as p:
        ...     files = p | MatchAudio("music/")
        ...     files.main | beam.Map(print)
    """

    def __init__(self, source: str | Source):
        super().__init__()
        self.source = source if isinstance(source, Source) else resolve_source(source)

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.pvalue.DoOutputsTuple:
        src = self.source
        if src.kind == "list":
            patterns = (pbegin
                        | "ReadList" >> beam.io.ReadFromText(src.spec)
                        | "Entries" >> beam.FlatMap(_list_entries, src.root))
        else:
            pattern = src.spec if src.kind == "glob" else _join(src.root, "**")
            patterns = pbegin | "Pattern" >> beam.Create([pattern])
        return (patterns
                | "Match" >> beam.ParDo(_MatchPatterns(src.root, src.kind == "list"))
                .with_outputs(FAILED, main="files"))


class SkipDone(beam.PTransform):
    """Drops files whose ``(relpath, size, mtime_ns)`` already has a committed row.

    Args:
        done: a PCollection of ``(relpath, (size, mtime_ns))`` from earlier committed runs.

    A changed file (other size or modification time) goes through again; its new row
    supersedes the old one (`zoo.beam.shards.Dataset`).
    """

    def __init__(self, done: beam.PCollection):
        super().__init__()
        self.done = done

    def expand(self, files: beam.PCollection) -> beam.PCollection:
        keyed = files | "KeyByPath" >> beam.Map(lambda f: (f.relpath, f))

        def keep(item: tuple[str, dict[str, list]]) -> Iterator[AudioFile]:
            _, groups = item
            done = {tuple(d) for d in groups["done"]}
            files = list(groups["files"])  # a list file may name one file twice: once is enough
            if files and (files[0].size, files[0].mtime_ns) not in done:
                yield files[0]

        return ({"files": keyed, "done": self.done}
                | "Join" >> beam.CoGroupByKey()
                | "Keep" >> beam.FlatMap(keep))
