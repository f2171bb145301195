"""Shared helpers for the dataset builders in ``scripts/datasets``.

* Debian packages: :func:`fetch_package` runs ``apt-get download`` once, unpacks the ``.deb``
  (optionally only some members) into a cache folder, runs an optional post-processing step (for
  example unpacking the audio members of a zip inside the package), deletes the ``.deb`` and
  records the exact version in a stamp file, so later calls return at once.
* Audio: :func:`load_audio` decodes with soundfile (wav/flac/ogg/opus/mp3) or, failing that, with
  ffmpeg (tracker modules), downmixes to mono and resamples with soxr; :func:`write_wav` writes
  16-bit PCM atomically (a clip either exists complete or not at all).
* Bookkeeping: build stamps (a finished build with the same parameters is not redone), per-clip
  manifests (``sources.csv``, ``skipped.csv``, ``SOURCES.md``), shared command-line options.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

CACHE_ENV = "ZOO_DATASETS_CACHE"
EXIT_SKIPPED = 77  # the automake convention for "test skipped": sources not available here
STAMP = ".zoo-build.json"
PKG_STAMP = ".zoo-package.json"
ZIP_SUFFIX = ".d"  # members of ARCHIVE.zip are unpacked to ARCHIVE.zip.d/


class SourceUnavailable(RuntimeError):
    """A Debian package (or tool) needed for a build cannot be had on this machine."""


class DecodeError(RuntimeError):
    """An audio file could not be decoded."""


@dataclass(frozen=True)
class Package:
    """An unpacked Debian package: files live under ``root`` in the ``dpkg -x`` layout."""

    name: str
    version: str
    root: Path
    licence: str = ""

    def rel(self, path: Path) -> str:
        """The path of ``path`` inside the package (``ARCHIVE.zip:member`` for zip members)."""
        rel = path.relative_to(self.root).as_posix()
        for ext in (".zip", ".pk3"):
            marker = ext + ZIP_SUFFIX + "/"
            if marker in rel:
                head, tail = rel.split(marker, 1)
                return f"{head}{ext}:{tail}"
        return rel


def default_cache_dir() -> Path:
    """``$ZOO_DATASETS_CACHE`` or ``~/.cache/zoo-datasets``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "zoo-datasets"


def log(msg: str) -> None:
    """Print a progress line to stderr (kept apart from tqdm bars)."""
    print(msg, file=sys.stderr, flush=True)


def _run(cmd: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), cwd=cwd, check=False, capture_output=True, text=True)


def candidate_version(name: str) -> str:
    """The version apt would download for ``name`` ("unknown" if apt does not know it)."""
    if shutil.which("apt-cache") is None:
        return "unknown"
    res = _run(["apt-cache", "show", "--no-all-versions", name])
    for line in res.stdout.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def _read_pkg_stamp(root: Path) -> dict | None:
    try:
        return json.loads((root / PKG_STAMP).read_text())
    except (OSError, ValueError):
        return None


def fetch_package(
    name: str,
    cache_dir: Path,
    *,
    members: Sequence[str] | None = None,
    post: Callable[[Path], None] | None = None,
    post_id: str = "",
    debian_roots: Sequence[Path] = (),
    licence: str = "",
) -> Package:
    """Download and unpack Debian package ``name`` once; return where its files are.

    Args:
        name: the binary package name.
        cache_dir: the cache root; the package is unpacked to ``cache_dir/debs/<name>``.
        members: ``tar`` wildcards (``./usr/share/...``) to extract instead of the whole package.
        post: called with the unpacked root before the stamp is written (e.g. to unpack audio
            members of an archive and delete the archive); ``post_id`` names that step so that a
            changed step triggers a fresh unpack.
        debian_roots: folders holding packages unpacked earlier with ``dpkg -x PKG.deb DIR/PKG``;
            a hit there is used in place (its version is apt's candidate version).
        licence: a short licence string recorded with the package.

    Raises:
        SourceUnavailable: apt-get is missing or the download or unpack failed.
    """
    for droot in debian_roots:
        cand = Path(droot) / name
        if (cand / "usr").is_dir() and post is None:
            return Package(name, candidate_version(name), cand, licence)
    root = cache_dir / "debs" / name
    want = {"members": list(members or []), "post": post_id}
    stamp = _read_pkg_stamp(root)
    if stamp is not None and all(stamp.get(k) == v for k, v in want.items()):
        return Package(name, stamp["version"], root, licence)
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise SourceUnavailable(f"{name}: apt-get/dpkg-deb not found and package not cached")
    if root.exists():
        shutil.rmtree(root)
    dl = cache_dir / "downloads"
    dl.mkdir(parents=True, exist_ok=True)
    log(f"[apt] downloading {name} ...")
    res = _run(["apt-get", "download", "-q", name], cwd=dl)
    debs = sorted(dl.glob(f"{name}_*.deb"))
    if res.returncode != 0 or not debs:
        raise SourceUnavailable(f"{name}: apt-get download failed: {res.stderr.strip()[-500:]}")
    deb = debs[-1]
    try:
        version = _run(["dpkg-deb", "-f", str(deb), "Version"]).stdout.strip() or "unknown"
        tmp = root.with_name(root.name + ".partial")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        log(f"[apt] unpacking {deb.name} ({deb.stat().st_size / 1e6:.0f} MB) ...")
        if members:
            doc = f"./usr/share/doc/{name}/*"
            cmd = (f"dpkg-deb --fsys-tarfile {_q(deb)} | tar -x -C {_q(tmp)} --wildcards "
                   + " ".join(_q(m) for m in [*members, doc]))
            res = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=False,
                                 capture_output=True, text=True)
        else:
            res = _run(["dpkg-deb", "-x", str(deb), str(tmp)])
        if res.returncode != 0:
            raise SourceUnavailable(f"{name}: unpack failed: {res.stderr.strip()[-500:]}")
        if post is not None:
            post(tmp)
        (tmp / PKG_STAMP).write_text(json.dumps({"name": name, "version": version, **want}))
        tmp.rename(root)
    finally:
        deb.unlink(missing_ok=True)
    return Package(name, version, root, licence)


def _q(x: object) -> str:
    s = str(x)
    return "'" + s.replace("'", "'\\''") + "'"


def unpack_zip(archive: Path, patterns: Sequence[str], delete: bool = True) -> int:
    """Unpack the members of ``archive`` matching ``patterns`` (fnmatch, case-insensitive) into
    ``archive`` + ``.d/`` and delete the archive; returns the number of members written."""
    dest = archive.with_name(archive.name + ZIP_SUFFIX)
    n = 0
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            low = info.filename.lower()
            if info.is_dir() or not any(fnmatch.fnmatch(low, p.lower()) for p in patterns):
                continue
            target = dest / info.filename
            if ".." in Path(info.filename).parts:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            n += 1
    if delete:
        archive.unlink()
    return n


def zip_post(archive_rel: str, patterns: Sequence[str]) -> Callable[[Path], None]:
    """A ``post`` step for :func:`fetch_package`: unpack members of one archive, drop it."""

    def _post(root: Path) -> None:
        archive = root / archive_rel
        log(f"[zip] unpacking {', '.join(patterns)} from {archive.name} ...")
        n = unpack_zip(archive, patterns)
        log(f"[zip] {n} members")

    return _post


OAD_ZIP = "usr/share/games/0ad/mods/public/public.zip"


def oad_fetch_options() -> dict:
    """How 0ad-data is fetched by every builder (one cache entry): only ``public.zip`` is taken
    from the 1.4 GB package, only its ``audio/`` members are kept, the zip is deleted."""
    return {"members": [f"./{OAD_ZIP}"], "post": zip_post(OAD_ZIP, ["audio/*"]),
            "post_id": "public.zip:audio/*"}


# --------------------------------------------------------------------------------------------
# audio


def load_audio(path: Path, sr: int) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sr`` Hz (channels averaged, soxr HQ resampling).

    soundfile is tried first; files it cannot read (tracker modules) go through ffmpeg.

    Raises:
        DecodeError: neither decoder could read the file, or it holds no samples.
    """
    try:
        x, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises several exception types
        if shutil.which("ffmpeg") is None:
            raise DecodeError(f"{path}: {exc} (and ffmpeg is not installed)") from exc
        res = subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1",
             "-ar", str(sr), "-"], check=False, capture_output=True)
        if res.returncode != 0 or not res.stdout:
            raise DecodeError(f"{path}: {exc}; ffmpeg: {res.stderr.decode()[-300:]}") from exc
        y = np.frombuffer(res.stdout, dtype="<f4").astype(np.float32)
        return y
    if x.size == 0:
        raise DecodeError(f"{path}: no samples")
    y = x.mean(axis=1)
    if file_sr != sr:
        import soxr

        y = soxr.resample(y, file_sr, sr, quality="HQ")
    if not np.all(np.isfinite(y)):
        raise DecodeError(f"{path}: non-finite samples")
    return y.astype(np.float32)


def to_int16(x: np.ndarray) -> np.ndarray:
    """Round a [-1, 1] float signal to 16-bit integers (clipping outside that range)."""
    return np.clip(np.round(np.asarray(x, np.float64) * 32767.0), -32768, 32767).astype(np.int16)


def write_wav(path: Path, x: np.ndarray, sr: int) -> None:
    """Write mono 16-bit PCM wav atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".wav", dir=path.parent, prefix=".tmp-")
    os.close(fd)
    try:
        sf.write(tmp, to_int16(x), sr, format="WAV", subtype="PCM_16")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def rms_db(x: np.ndarray) -> float:
    """Root mean square level in dBFS (-inf for digital silence)."""
    if x.size == 0:
        return float("-inf")
    r = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return 20 * np.log10(r) if r > 0 else float("-inf")


def frame_db(x: np.ndarray, frame: int) -> np.ndarray:
    """Level in dBFS of consecutive frames of ``frame`` samples (last partial frame padded)."""
    n = max(1, -(-x.size // frame))
    pad = np.zeros(n * frame, np.float64)
    pad[: x.size] = x
    p = np.mean(pad.reshape(n, frame) ** 2, axis=1)
    return 10 * np.log10(np.maximum(p, 1e-12))


def silence_bounds(x: np.ndarray, sr: int, rel_db: float = 40.0, floor_db: float = -60.0,
                   frame_s: float = 0.01) -> tuple[int, int]:
    """``(start, end)`` sample indices of ``x`` without leading and trailing frames quieter than
    ``rel_db`` below the loudest frame (and below ``floor_db`` absolute); ``(0, 0)`` for
    silence."""
    frame = max(1, int(round(frame_s * sr)))
    db = frame_db(x, frame)
    thr = max(float(db.max()) - rel_db, floor_db)
    keep = np.flatnonzero(db > thr)
    if keep.size == 0:
        return 0, 0
    return int(keep[0] * frame), int(min(x.size, (keep[-1] + 1) * frame))


def file_md5(path: Path) -> str:
    """md5 of a file's bytes (used to drop byte-identical duplicates)."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# build stamps, manifests, splits


def check_stamp(out: Path, params: dict, overwrite: bool) -> bool:
    """True if ``out`` holds a finished build with ``params`` (nothing to do).

    A build with other parameters is refused unless ``overwrite`` (then ``out`` is emptied).
    A started but unfinished build with the same parameters is resumed (existing clips kept).
    """
    stamp = out / STAMP
    if stamp.exists():
        old = json.loads(stamp.read_text())
        if old.get("params") == params and old.get("complete"):
            return True
        if old.get("params") != params:
            if not overwrite:
                raise SystemExit(f"{out} holds a build with other parameters "
                                 f"({old.get('params')}); pass --overwrite or pick another dir")
            shutil.rmtree(out)
    elif out.exists() and any(out.iterdir()):
        if not overwrite:
            raise SystemExit(f"{out} is not empty and holds no build stamp; pass --overwrite")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"params": params, "complete": False}, indent=1))
    return False


def abandon(out: Path) -> None:
    """Remove ``out`` again if it holds nothing but an unfinished build stamp (a skipped build
    leaves no trace)."""
    if out.is_dir() and [p.name for p in out.iterdir()] == [STAMP]:
        if not json.loads((out / STAMP).read_text()).get("complete"):
            shutil.rmtree(out)


def finish_stamp(out: Path, params: dict, summary: dict) -> None:
    """Mark the build in ``out`` complete, with a summary (counts, timing)."""
    (out / STAMP).write_text(json.dumps({"params": params, "complete": True, **summary},
                                        indent=1, sort_keys=True))


@dataclass
class SourceRow:
    """Provenance of one written clip."""

    clip: str  # path relative to the output dir
    package: str
    version: str
    source: str  # file inside the package (``archive.zip:member`` for archive members)
    licence: str
    start_s: float = 0.0
    duration_s: float = 0.0
    note: str = ""


@dataclass
class Manifest:
    """Collects :class:`SourceRow` rows and skipped sources; writes ``sources.csv``,
    ``skipped.csv`` and ``SOURCES.md``."""

    title: str
    rows: list[SourceRow] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # package, source, why

    def add(self, row: SourceRow) -> None:
        self.rows.append(row)

    def skip(self, package: str, source: str, why: str) -> None:
        self.skipped.append((package, source, why))

    def write(self, out: Path, notes: Iterable[str] = ()) -> None:
        rows = sorted(self.rows, key=lambda r: r.clip)
        cols = list(asdict(rows[0]).keys()) if rows else list(SourceRow.__annotations__)
        with open(out / "sources.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            for r in rows:
                w.writerow(asdict(r))
        with open(out / "skipped.csv", "w", newline="") as f:
            w2 = csv.writer(f)
            w2.writerow(["package", "source", "reason"])
            w2.writerows(sorted(self.skipped))
        per: dict[tuple[str, str, str], int] = Counter((r.package, r.version, r.licence)
                                                       for r in rows)
        srcs: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        for r in rows:
            srcs[(r.package, r.version, r.licence)].add(r.source)
        lines = [f"# {self.title}: sources", "",
                 "Every clip's Debian package, version, source file, offset and licence is in "
                 "`sources.csv` (one row per clip); sources that were skipped (undecodable, "
                 "too short, silent, duplicates) are in `skipped.csv` with the reason. The "
                 "full licence texts are in each package's `/usr/share/doc/<package>/copyright`.",
                 "", *notes, "",
                 "| package | version | licence | source files | clips |",
                 "|---|---|---|---|---|"]
        for (pkg, ver, lic), n in sorted(per.items()):
            lines.append(f"| {pkg} | {ver} | {lic} | {len(srcs[(pkg, ver, lic)])} | {n} |")
        lines += ["", f"Total: {len(rows)} clips; {len(self.skipped)} sources skipped.", ""]
        (out / "SOURCES.md").write_text("\n".join(lines))


def add_common_args(parser: argparse.ArgumentParser, default_seed: int) -> None:
    """The options every builder shares."""
    parser.add_argument("out_dir", type=Path, help="output folder")
    parser.add_argument("--small", action="store_true",
                        help="a tiny subset for smoke tests (few clips per class)")
    parser.add_argument("--seed", type=int, default=default_seed, help="random seed")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help=f"download/unpack cache (default ${CACHE_ENV} or "
                             "~/.cache/zoo-datasets)")
    parser.add_argument("--debian-root", type=Path, action="append", default=[],
                        help="folder with packages unpacked earlier as DIR/PKG (repeatable); "
                             "used instead of downloading, except for packages whose inner "
                             "archives are unpacked (0ad-data, openarena-data, nexuiz-music)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing build made with other parameters")
