"""Build full-track music corpora from Debian game soundtracks, with whole packages held out.

For similarity-search evaluation and training: every track is kept whole (silent head and tail
trimmed, cut to at most ``--max-seconds`` from the start), and the ``heldout`` set consists of
packages (soundtracks, mostly distinct composers) that share nothing with the ``train`` set.

``train``: the seven soundtracks of ``build_music_styles.py``, with its style labels and file
rules (``LABELS``): wesnoth-1.16-music (orchestral), 0ad-data (world, ``public.zip:audio/music``
without the 8-bit bonus track), warzone2100-music (electronic), nexuiz-music (techno,
``music.pk3``), hedgewars-data (rock, ``Data/Music``), drascula-music (piano), pingus-data
(tracker modules, decoded by ffmpeg).

``heldout`` (Debian bookworm; style = one descriptive label per soundtrack, from its docs, file
names, the composers' descriptions and, as a cross-check, the mean ``musicnn_msd`` tags of its
tracks; two packages may share a label, and labels shared with ``train`` mean the same):

=================  =============  ==============================  ==================================
package            style          licence (debian/copyright)      why this label
=================  =============  ==============================  ==================================
ufoai-music        cinematic      per file: CC-BY-3.0,            sci-fi strategy score by several
                                  CC-BY-SA-3.0, GPL-2 (OpenArena  composers: mostly synth / ambient
                                  tracks), public-domain          underscore (musicnn: electronic +
                                                                  ambient), David01-05 metal
naev-data          space-ambient  per file: GPL-2+ (Vega          space-opera synth pads, some
                                  Strike), GPL-3 or CC-BY-3.0,    orchestral / rock battle cues
                                  CC-BY-3.0, CC-BY-SA-3.0, rest
                                  GPL-3+
supertux-data      chiptune       GPL-2+ (data/music/*)           cheerful platformer tunes, synth /
                                                                  tracker-made (chipdisko, retro/);
                                                                  not all strictly chiptune
supertuxkart-data  pop            per file: CC-BY-SA-3.0 / 4.0,   upbeat kart-racing tunes
                                  GPL                             (electro-pop, rock, celtic,
                                                                  latin); by file names and docs
widelands-data     orchestral     GPL-2+ (ingame_24-26:           medieval / pastoral orchestral
                                  CC-BY-SA-3.0)                   score
flare-game         orchestral     CC-BY-SA-3.0+                   fantasy RPG orchestral themes
freedroidrpg-data  electronic     GPL-2+                          synth / industrial electronic
                                                                  soundtrack
singularity-music  ambient        CC-BY-SA-3.0 (Max McCracken;    slow electronic ambient (musicnn:
                                  not DEP-5)                      electronic + ambient)
hyperrogue-music   ambient        CC-BY-SA-3.0 (Parrotte,         short atmospheric loops, one per
                                  Domina, Savino)                 land; mixed instruments
megaglest-data     world          CC-BY-SA-3.0                    one theme per faction: egyptian,
                                                                  indian, persian, norse, roman, ...
warmux-data        eclectic       GPL-2+ (not DEP-5)              jazzy / circus / folk / rock mix
                                                                  (Olivier Militon and others): no
                                                                  one style
xmoto-data         electronic     GPL-2+                          electronic / rock game loops
                                                                  (musicnn: electronic)
=================  =============  ==============================  ==================================

Licences are looked up per file in the package's ``debian/copyright`` (DEP-5: the last
``Files:`` paragraph matching the file wins; the ``licence`` column of ``tracks.csv``), falling
back to the package-level string in ``HELDOUT`` / ``LABELS`` for non-DEP-5 copyright files.
Not used (inspected with ``apt-get download``): fretsonfire-songs-muldjord (4 songs) and
-sectoid (1 song), below the 5-track minimum; openarena-data (no music in Debian's ``pak0``);
neverball-data, teeworlds-data, trigger-rally-data, endless-sky-data, lincity-ng-data,
freeorion-data, dreamchess-data, holotz-castle-data, solarwolf, alienblaster-data (sound
effects, jingles or at most 2 music files); freecol (6 tracks) and extremetuxracer-data (6
short tracks) to keep the list at 12; planetblupi-music-ogg (rendered from the MIDI version).

Output (a contract other code depends on):

* ``OUT/audio/<package>/<track_id>.wav``: 16 kHz mono 16-bit PCM, the whole track with silent
  head and tail trimmed (``common.silence_bounds``), cut to at most ``--max-seconds`` (default
  600) from the start. Tracks shorter than 45 s after trimming (no room for a 30 s catalogue
  entry plus a disjoint 10 s query) and silent ones are skipped.
* ``OUT/tracks.csv``: ``path,set,package,style,track,duration_s,licence,version,source``
  (``path`` relative to OUT, ``track`` = ``<package>:<track_id>``, ``source`` = file inside the
  package, ``archive:member`` for archive members).
* ``OUT/sources.csv`` (per track: offset of the trimmed start in the source), ``skipped.csv``
  (every skipped source and why), ``SOURCES.md`` (per package: set, style, version, licences,
  tracks, minutes) and the build stamp ``.zoo-build.json``.

Duplicates: variants of one composition share a track id (``build_music_styles.track_id``
plus per-package rules: supertuxkart's ``_fast`` versions, supertux's ``_old`` / ``_remix``,
naev's ``ambient2_5``) and only the longest is kept; byte-identical files, decoded-identical
audio and copies of one recording or variants with the same timing (detrended loudness
envelopes of 4 bands correlating >= 0.8 at some alignment; other music scores below 0.65) are
skipped, the later one losing: train is scanned first, so held-out copies of train music are
dropped. ``--set heldout`` therefore still scans (but does not write) the train packages, and
the held-out set does not depend on ``--set``.

``--small``: a smoke subset in seconds (drascula-music and pingus-data for train, xmoto-data and
singularity-music held out, 3 tracks each chosen with ``--seed``, ``--max-seconds`` 60).
If the packages cannot be had it prints ``SKIPPED: ...`` and exits with status 77.

Usage::

    python scripts/datasets/build_music_tracks.py OUT [--set train|heldout|all] [--small]
        [--max-seconds 600] [--cache-dir DIR] [--seed N] [--overwrite]
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import hashlib
import json
import re
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_music_styles import LABELS, SMALL_LABELS  # noqa: E402
from build_music_styles import track_id as styles_track_id  # noqa: E402
from common import (  # noqa: E402
    EXIT_SKIPPED,
    DecodeError,
    Manifest,
    Package,
    SourceRow,
    SourceUnavailable,
    abandon,
    add_common_args,
    check_stamp,
    default_cache_dir,
    fetch_package,
    file_md5,
    finish_stamp,
    load_audio,
    log,
    silence_bounds,
    to_int16,
    write_wav,
    zip_post,
)

SR = 16000
MIN_TRACK_S = 45.0
MAX_SECONDS = 600.0
SMALL_MAX_SECONDS = 60.0
SMALL_TRACKS = 3
SETS = ("train", "heldout")
COLUMNS = ("path", "set", "package", "style", "track", "duration_s", "licence", "version",
           "source")
ENV_HOP_S = 0.1  # loudness envelope frames for spotting copies of one recording
ENV_DETREND_S = 3.0
ENV_BANDS = (0, 300, 1200, 3500, SR // 2 + 1)  # Hz
NEAR_DUP_R = 0.8
BUILD_VERSION = 1
_G = "./usr/share/games/"
UFOAI_PK3 = "usr/share/games/ufoai/base/0music.pk3"


@dataclass(frozen=True)
class Source:
    """One package (one soundtrack) and the rule that picks its music files."""

    package: str
    set: str  # "train" or "heldout"
    style: str
    pattern: str  # regex on the lower-case path inside the package (Package.rel)
    licence: str  # fallback when debian/copyright names no licence for a file
    fetch: dict = field(default_factory=dict, compare=False)  # fetch_package options
    variants: str = ""  # regex removed from the track id: variants of one composition
    small: bool = False  # part of the --small subset

    def config(self) -> list:
        """What of this source goes into the build's config hash."""
        return [self.package, self.set, self.style, self.pattern, self.licence,
                self.fetch.get("members"), self.fetch.get("post_id"), self.variants, self.small]


TRAIN: tuple[Source, ...] = tuple(
    Source(pkg, "train", label, rx, lic, opts, small=label in SMALL_LABELS)
    for label, (pkg, opts, rx, lic) in sorted(LABELS.items()))

HELDOUT: tuple[Source, ...] = (
    Source("ufoai-music", "heldout", "cinematic", r"0music\.pk3:music/[^/]+\.ogg$",
           "GPL-2+ (per file: CC-BY-3.0, CC-BY-SA-3.0, GPL-2, public-domain)",
           {"post": zip_post(UFOAI_PK3, ["music/*.ogg"]), "post_id": "0music.pk3:music/*.ogg"}),
    Source("naev-data", "heldout", "space-ambient", r"snd/music/[^/]+\.ogg$",
           "GPL-3+ (per file: GPL-2+, GPL-3 or CC-BY-3.0, CC-BY-3.0, CC-BY-SA-3.0)",
           {"members": ["./usr/share/naev/dat/snd/music/*"]}, variants=r"(?<=ambient2)_5$"),
    Source("supertux-data", "heldout", "chiptune", r"supertux2/music/.+\.ogg$", "GPL-2+",
           {"members": [_G + "supertux2/music/*"]}, variants=r"(_2|_remix|_old)$"),
    Source("supertuxkart-data", "heldout", "pop", r"data/music/[^/]+\.ogg$",
           "CC-BY-SA-3.0 (per file: CC-BY-SA-4.0, GPL)",
           {"members": [_G + "supertuxkart/data/music/*"]}, variants=r"_f(ast)?$"),
    Source("widelands-data", "heldout", "orchestral", r"data/music/[^/]+\.ogg$",
           "GPL-2+ (ingame_24-26: CC-BY-SA-3.0)", {"members": [_G + "widelands/data/music/*"]}),
    Source("flare-game", "heldout", "orchestral", r"/music/(?!wind_ambient)[^/]+\.ogg$",
           "CC-BY-SA-3.0+", {"members": [_G + "flare/mods/*/music/*"]}),
    Source("freedroidrpg-data", "heldout", "electronic", r"sound/music/[^/]+\.ogg$", "GPL-2+",
           {"members": ["./usr/share/freedroidrpg/data/sound/music/*"]}),
    Source("singularity-music", "heldout", "ambient", r"singularity/music/.+\.ogg$",
           "CC-BY-SA-3.0", small=True),
    Source("hyperrogue-music", "heldout", "ambient", r"hyperrogue/music/[^/]+\.ogg$",
           "CC-BY-SA-3.0"),
    Source("megaglest-data", "heldout", "world", r"/music/[^/]+\.ogg$", "CC-BY-SA-3.0",
           {"members": [_G + "megaglest/*/music/*"]}),
    Source("warmux-data", "heldout", "eclectic", r"warmux/music/.+\.ogg$", "GPL-2+",
           {"members": [_G + "warmux/music/*"]}),
    Source("xmoto-data", "heldout", "electronic", r"textures/musics/[^/]+\.ogg$", "GPL-2+",
           {"members": [_G + "xmoto/Textures/Musics/*"]}, small=True),
)


# --------------------------------------------------------------------------------------------
# planning: files, track ids, licences


def track_id(stem: str, variants: str = "") -> str:
    """The composition a file belongs to: ``build_music_styles.track_id`` (remasters and
    variants), then the package's own variant rule, made safe as a file name."""
    tid = styles_track_id(stem)
    if variants:
        tid = re.sub(variants, "", tid)
    return re.sub(r"[^a-z0-9._-]+", "_", tid).strip("._-") or "track"


def candidate_files(pkg: Package, source: Source) -> list[Path]:
    """The files of ``pkg`` that ``source.pattern`` selects, sorted by their path."""
    pat = re.compile(source.pattern)
    return sorted(f for f in pkg.root.rglob("*")
                  if f.is_file() and pat.search(pkg.rel(f).lower()))


def group_variants(files: Iterable[Path], variants: str = "") -> dict[str, list[Path]]:
    """Files grouped by track id (variants of one composition together), in file order."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for f in files:
        groups[track_id(f.stem, variants)].append(f)
    return dict(groups)


def small_order(tids: Sequence[str], seed: int, package: str) -> list[str]:
    """Track ids in a seeded random order (the --small subset takes the first usable ones)."""
    rng = np.random.default_rng([seed, int(hashlib.md5(package.encode()).hexdigest()[:8], 16)])
    return [tids[i] for i in rng.permutation(len(tids))]


def copyright_rules(text: str) -> list[tuple[list[str], str]]:
    """``(patterns, licence)`` of each ``Files:`` paragraph of a DEP-5 ``debian/copyright``, in
    file order (empty for a copyright file in another format)."""
    rules = []
    for para in re.split(r"\n[ \t]*\n", text):
        files = re.search(r"^Files:(.*(?:\n[ \t].*)*)", para, re.M)
        lic = re.search(r"^License:[ \t]*(\S.*)$", para, re.M)
        if files and lic:
            rules.append((files.group(1).split(), lic.group(1).strip()))
    return rules


def file_licence(rules: Sequence[tuple[Sequence[str], str]], rel: str) -> str | None:
    """The licence of the last ``Files:`` paragraph matching ``rel`` (DEP-5: the last match
    wins). Paths in debian/copyright are source-tree paths, so a pattern matches when its file
    name matches and its innermost folder is one of the installed file's folders."""
    parts = rel.replace(":", "/").lower().split("/")
    found = None
    for patterns, lic in rules:
        for pat in patterns:
            pdir, _, pname = pat.lower().removeprefix("./").rpartition("/")
            if not fnmatch.fnmatchcase(parts[-1], pname):
                continue
            inner = pdir.rpartition("/")[2]
            if inner and not any(fnmatch.fnmatchcase(p, inner) for p in parts[:-1]):
                continue
            found = lic
    return found


def package_rules(pkg: Package) -> list[tuple[list[str], str]]:
    """The licence rules of ``pkg``'s ``debian/copyright`` (none if it is missing)."""
    path = pkg.root / "usr" / "share" / "doc" / pkg.name / "copyright"
    try:
        return copyright_rules(path.read_text(errors="replace"))
    except OSError:
        return []


# --------------------------------------------------------------------------------------------
# audio: trimming, duplicates


def trim(x: np.ndarray, max_seconds: float) -> tuple[int, int, float, str]:
    """``(start, end, trimmed_s, why_not)``: the track without its silent head and tail, cut
    to ``max_seconds``, as sample indices; its length before the cut; and "" for a usable
    track, else the reason to skip it."""
    a, b = silence_bounds(x, SR)
    if b <= a:
        return 0, 0, 0.0, "silent"
    dur = (b - a) / SR
    if dur < MIN_TRACK_S:
        return a, b, dur, f"shorter than {MIN_TRACK_S:.0f} s after trimming ({dur:.1f} s)"
    return a, min(b, a + int(round(max_seconds * SR))), dur, ""


def envelope(x: np.ndarray) -> np.ndarray:
    """Detrended loudness envelopes of ``ENV_BANDS`` frequency bands (dB, ``ENV_HOP_S``
    frames, a 3 s moving average removed), shape ``(bands, frames)``: the fine loudness pattern
    of a recording, which copies and re-encodings share and other music does not."""
    hop = int(round(ENV_HOP_S * SR))
    n = max(1, x.size // hop)
    frames = np.zeros((n, hop), np.float32)
    frames.flat[: min(x.size, n * hop)] = x[: n * hop]
    power = np.abs(np.fft.rfft(frames * np.hanning(hop).astype(np.float32), axis=1)) ** 2
    freqs = np.fft.rfftfreq(hop, 1 / SR)
    k = int(ENV_DETREND_S / ENV_HOP_S) | 1
    out = []
    for lo, hi in zip(ENV_BANDS[:-1], ENV_BANDS[1:], strict=True):
        db = 10 * np.log10(power[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) + 1e-9)
        trend = np.convolve(np.pad(db, k // 2, mode="edge"), np.ones(k) / k, mode="valid")
        e = np.clip(db - trend, -20.0, 20.0)
        out.append(e - e.mean())
    return np.stack(out).astype(np.float32)


def match_score(a: np.ndarray, b: np.ndarray) -> float:
    """Best normalised correlation (all bands together) of the middle 80 % of the shorter
    envelope with any stretch of the longer one: about 1 for copies of one recording, 0.6-0.8
    for re-renderings of one tune, below 0.65 for other music."""
    if a.shape[1] > b.shape[1]:
        a, b = b, a
    m = a.shape[1]
    t = a[:, m // 10: m - m // 10].astype(np.float64)
    t -= t.mean(axis=1, keepdims=True)
    tn, n_t = float(np.linalg.norm(t)), t.shape[1]
    if tn == 0 or n_t < 2:
        return 0.0
    n = 1 << int(np.ceil(np.log2(b.shape[1] + n_t)))
    prod = np.fft.rfft(b, n, axis=1) * np.conj(np.fft.rfft(t, n, axis=1))
    num = np.fft.irfft(prod, n, axis=1)[:, : b.shape[1] - n_t + 1].sum(axis=0)
    zero = np.zeros((b.shape[0], 1))
    c1 = np.concatenate([zero, np.cumsum(b, axis=1, dtype=np.float64)], axis=1)
    c2 = np.concatenate([zero, np.cumsum(np.square(b, dtype=np.float64), axis=1)], axis=1)
    s1, s2 = c1[:, n_t:] - c1[:, :-n_t], c2[:, n_t:] - c2[:, :-n_t]
    var = np.maximum(s2 - s1 * s1 / n_t, 1e-9).sum(axis=0)
    return float(np.max(num / (tn * np.sqrt(var))))


@dataclass
class Dedupe:
    """What has been kept so far (byte hashes, decoded-audio hashes, envelopes), to drop later
    copies."""

    threshold: float = NEAR_DUP_R
    md5s: dict[str, str] = field(default_factory=dict)  # file md5 -> track
    audio: dict[str, str] = field(default_factory=dict)  # decoded-audio md5 -> track
    envs: dict[str, np.ndarray] = field(default_factory=dict)  # track -> envelope
    close: list[tuple[float, str, str]] = field(default_factory=list)  # near misses (r, a, b)

    def nearest(self, env: np.ndarray) -> tuple[float, str]:
        """``(score, track)`` of the kept track whose envelope matches ``env`` best."""
        best, who = 0.0, ""
        for other, e in self.envs.items():
            r = match_score(env, e)
            if r > best:
                best, who = r, other
        return best, who

    def why_copy(self, track: str, md5: str, y: np.ndarray, env: np.ndarray) -> str:
        """Why ``track`` (file bytes ``md5``, trimmed audio ``y``) duplicates a kept track, or
        "" (then near misses, scores of 0.5 or more, are remembered in ``close``)."""
        if md5 in self.md5s:
            return f"byte-identical to {self.md5s[md5]}"
        h = audio_md5(y)
        if h in self.audio:
            return f"decoded audio identical to {self.audio[h]}"
        r, who = self.nearest(env)
        if r >= self.threshold:
            return f"copy or same-timing variant of {who} (envelope r={r:.2f})"
        if r >= 0.5:
            self.close.append((round(r, 3), who, track))
        return ""

    def add(self, track: str, md5s: Iterable[str], y: np.ndarray, env: np.ndarray) -> None:
        """Record a kept track (with the byte hashes of all its variant files)."""
        for m in md5s:
            self.md5s.setdefault(m, track)
        self.audio[audio_md5(y)] = track
        self.envs[track] = env


def audio_md5(y: np.ndarray) -> str:
    """md5 of audio as the 16-bit samples it is written as."""
    return hashlib.md5(to_int16(y).tobytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# scanning and writing


@dataclass
class Track:
    """One written (or, for a set that is only scanned, kept) track."""

    path: str
    set: str
    package: str
    style: str
    track: str
    duration_s: float
    licence: str
    version: str
    source: str
    start_s: float = 0.0  # trimmed start in the source file
    trimmed_s: float = 0.0  # length after trimming, before the cut

    def row(self) -> dict:
        """The ``tracks.csv`` row."""
        return {c: getattr(self, c) for c in COLUMNS}


@dataclass
class Decoded:
    """One variant file of a composition, decoded and trimmed."""

    path: Path
    md5: str
    x: np.ndarray | None = None
    a: int = 0
    b: int = 0
    trimmed_s: float = 0.0
    why_not: str = ""


def decode_variant(path: Path, max_seconds: float) -> Decoded:
    """Decode and trim one file (``why_not`` says why it cannot be used)."""
    d = Decoded(path, file_md5(path))
    try:
        x = load_audio(path, SR)
    except DecodeError as exc:
        d.why_not = f"undecodable: {str(exc)[-120:]}"
        return d
    d.a, d.b, d.trimmed_s, d.why_not = trim(x, max_seconds)
    if not d.why_not:
        d.x = x
    return d


def pick_variant(decoded: Sequence[Decoded]) -> Decoded | None:
    """The usable variant with the longest trimmed length (the first on ties), or None."""
    usable = [d for d in decoded if not d.why_not]
    return max(usable, key=lambda d: d.trimmed_s) if usable else None


@dataclass
class Build:
    """State of one build: where to write, what to keep."""

    out: Path
    write_sets: tuple[str, ...]
    max_seconds: float
    dedupe: Dedupe = field(default_factory=Dedupe)
    manifest: Manifest = field(default_factory=lambda: Manifest("Music tracks (full tracks)"))
    tracks: list[Track] = field(default_factory=list)

    def skip(self, source: Source, pkg: Package, path: Path, why: str) -> None:
        """Record a skipped file (for the sets that are written)."""
        if source.set in self.write_sets:
            self.manifest.skip(source.package, pkg.rel(path), why)

    def add_group(self, source: Source, pkg: Package, tid: str, paths: Sequence[Path],
                  rules: Sequence[tuple[Sequence[str], str]]) -> bool:
        """Decode one composition's files, keep the best new one; True if a track was kept."""
        track = f"{source.package}:{tid}"
        decoded = [decode_variant(p, self.max_seconds) for p in paths]
        best = pick_variant(decoded)
        for d in decoded:
            if d is not best:
                self.skip(source, pkg, d.path, d.why_not or f"variant of {track} "
                          f"(kept {best.path.name if best else '?'}, the longest)")
        if best is None:
            return False
        y = best.x[best.a:best.b]
        env = envelope(y)
        why = self.dedupe.why_copy(track, best.md5, y, env)
        if why:
            self.skip(source, pkg, best.path, why)
            return False
        self.dedupe.add(track, [d.md5 for d in decoded], y, env)
        self.keep(source, pkg, tid, best, y, rules)
        return True

    def keep(self, source: Source, pkg: Package, tid: str, d: Decoded, y: np.ndarray,
             rules: Sequence[tuple[Sequence[str], str]]) -> None:
        """Write one track (if its set is written and it is not there yet) and record it."""
        rel = f"audio/{source.package}/{tid}.wav"
        src = pkg.rel(d.path)
        t = Track(rel, source.set, source.package, source.style, f"{source.package}:{tid}",
                  round(y.size / SR, 3), file_licence(rules, src) or source.licence,
                  pkg.version, src, round(d.a / SR, 3), round(d.trimmed_s, 3))
        if source.set not in self.write_sets:
            return
        if not (self.out / rel).exists():
            write_wav(self.out / rel, y, SR)
        self.tracks.append(t)
        self.manifest.add(SourceRow(rel, t.package, t.version, src, t.licence, t.start_s,
                                    t.duration_s, f"set={t.set}; style={t.style}; "
                                    f"track={t.track}; trimmed_s={t.trimmed_s}"))

    def scan(self, source: Source, pkg: Package, limit: int | None, seed: int) -> int:
        """Plan, decode, dedupe and write one package's tracks; returns the number kept."""
        groups = group_variants(candidate_files(pkg, source), source.variants)
        order = sorted(groups) if limit is None else small_order(sorted(groups), seed,
                                                                 source.package)
        rules = package_rules(pkg)
        kept = 0
        for tid in tqdm(order, desc=f"{source.set} {source.package}", unit="track"):
            if limit is not None and kept >= limit:
                break
            kept += self.add_group(source, pkg, tid, groups[tid], rules)
        return kept


def write_tracks_csv(out: Path, tracks: Iterable[Track]) -> None:
    """``OUT/tracks.csv`` with exactly the ``COLUMNS``, sorted by path."""
    with open(out / "tracks.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(COLUMNS))
        w.writeheader()
        for t in sorted(tracks, key=lambda t: t.path):
            w.writerow(t.row())


def package_summary(tracks: Iterable[Track]) -> dict[str, dict]:
    """Per package: set, style, version, licences, tracks, minutes."""
    per: dict[str, dict] = {}
    for t in sorted(tracks, key=lambda t: (SETS.index(t.set), t.package)):
        p = per.setdefault(t.package, {"set": t.set, "style": t.style, "version": t.version,
                                       "licences": set(), "tracks": 0, "minutes": 0.0})
        p["licences"].add(t.licence)
        p["tracks"] += 1
        p["minutes"] += t.duration_s / 60
    for p in per.values():
        p["licences"] = sorted(p["licences"])
        p["minutes"] = round(p["minutes"], 1)
    return per


def set_totals(tracks: Sequence[Track], sets: Iterable[str]) -> dict[str, list]:
    """Per set: ``[tracks, minutes]``."""
    return {s: [sum(t.set == s for t in tracks),
                round(sum(t.duration_s for t in tracks if t.set == s) / 60, 1)] for s in sets}


def summary_notes(per: dict[str, dict], totals: dict[str, list],
                  close: Sequence[tuple[float, str, str]]) -> list[str]:
    """The per-package table (and near misses of the copy detector) for ``SOURCES.md``."""
    lines = ["Per package (one soundtrack = one style label; `heldout` packages share no "
             "tracks with `train`):", "",
             "| set | package | style | version | licences | tracks | minutes |",
             "|---|---|---|---|---|---|---|"]
    for pkg, p in per.items():
        lines.append(f"| {p['set']} | {pkg} | {p['style']} | {p['version']} | "
                     f"{'; '.join(p['licences'])} | {p['tracks']} | {p['minutes']} |")
    for s, (n, minutes) in totals.items():
        n_pkg = sum(p["set"] == s for p in per.values())
        lines.append(f"\n{s}: {n_pkg} packages, {n} tracks, {minutes} minutes.")
    if close:
        lines += ["", "Closest pairs kept (loudness-envelope correlation 0.5-0.8; copies of one "
                  "recording or same-timing variants score >= 0.8 and are skipped):", ""]
        lines += [f"* {a} ~ {b}: r={r}" for r, a, b in sorted(close, reverse=True)]
    return lines


# --------------------------------------------------------------------------------------------
# main


def select_sources(which: str, small: bool) -> list[Source]:
    """Sources to scan, train first: ``--set heldout`` also scans train (for duplicates)."""
    sets = ("train",) if which == "train" else SETS
    return [s for s in (*TRAIN, *HELDOUT) if s.set in sets and (s.small or not small)]


def build_params(args: argparse.Namespace, max_seconds: float) -> dict:
    """The parameters recorded in (and compared with) the build stamp."""
    config = json.dumps([[s.config() for s in (*TRAIN, *HELDOUT)], SR, MIN_TRACK_S,
                         SMALL_TRACKS, ENV_HOP_S, ENV_DETREND_S, ENV_BANDS, NEAR_DUP_R,
                         r"[^a-z0-9._-]+"])
    return {"builder": "music_tracks", "version": BUILD_VERSION, "set": args.set,
            "small": args.small, "max_seconds": max_seconds, "seed": args.seed,
            "config_md5": hashlib.md5(config.encode()).hexdigest()}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser, default_seed=1234)
    parser.add_argument("--set", choices=("train", "heldout", "all"), default="all",
                        help="which set to write (default all)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help=f"cut tracks to this length (default {MAX_SECONDS:.0f}, "
                             f"{SMALL_MAX_SECONDS:.0f} with --small)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    out: Path = args.out_dir
    cache = args.cache_dir or default_cache_dir()
    max_s = args.max_seconds or (SMALL_MAX_SECONDS if args.small else MAX_SECONDS)
    params = build_params(args, max_s)
    if check_stamp(out, params, args.overwrite):
        log(f"{out}: up to date")
        return 0
    write_sets = SETS if args.set == "all" else (args.set,)
    build = Build(out, write_sets, max_s)
    limit = SMALL_TRACKS if args.small else None
    for source in select_sources(args.set, args.small):
        try:
            pkg = fetch_package(source.package, cache, debian_roots=args.debian_root,
                                licence=source.licence, **source.fetch)
        except SourceUnavailable as exc:
            log(f"SKIPPED: {exc}")
            abandon(out)
            return EXIT_SKIPPED
        build.scan(source, pkg, limit, args.seed)
    if not build.tracks:
        log("SKIPPED: no tracks could be made")
        abandon(out)
        return EXIT_SKIPPED
    per = package_summary(build.tracks)
    counts = set_totals(build.tracks, write_sets)
    write_tracks_csv(out, build.tracks)
    build.manifest.write(out, summary_notes(per, counts, build.dedupe.close))
    finish_stamp(out, params, {"tracks_minutes_per_set": counts, "packages": per,
                               "skipped_sources": len(build.manifest.skipped),
                               "seconds": round(time.time() - t0, 1)})
    log(f"{out}: {len(build.tracks)} tracks {counts} ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
