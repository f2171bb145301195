"""Build a small music-style dataset in the GTZAN layout from Debian game soundtracks.

Every label is one package (one soundtrack, mostly one composer or team), so the labels are
style proxies, not genre annotations:

=============  ======================  =======================================================
label          package                 content
=============  ======================  =======================================================
orchestral     wesnoth-1.16-music      orchestral fantasy score (Ogg Vorbis)
world          0ad-data                ``public.zip:audio/music``: world / folk / orchestral
electronic     warzone2100-music       electronic / ambient soundtrack (Opus)
techno         nexuiz-music            techno / electronic (Vorbis inside ``music.pk3``)
rock           hedgewars-data          ``Data/Music``: mixed themes, some rock
piano          drascula-music          piano, jazzy and ambient cues of an adventure game
tracker        pingus-data             ``.it`` / ``.s3m`` tracker modules (decoded by ffmpeg)
=============  ======================  =======================================================

Output: ``OUT/genres/<label>/<label>.NNNNN.wav`` (22050 Hz mono 16-bit, 30 s excerpts like
GTZAN; a track shorter than 30 s gives one excerpt of its whole length if that is at least
10 s), up to 100 excerpts per label, spread evenly over the tracks (round-robin, non-overlapping
windows at evenly spaced positions, silent windows skipped). ``OUT/train.txt``, ``valid.txt``
and ``test.txt`` (paths relative to OUT) split by TRACK, stratified per label (about 60/20/20
of the excerpts, seeded): no track has excerpts on two sides. Variants of one composition
(``frantic`` / ``frantic-old``, ``track3`` / ``track3_enhanced``, ``Olympics`` / ``olympics_sd``,
``victory`` / ``victory2``) count as one track. ``tracks.csv`` lists every excerpt's track and
split; ``sources.csv`` / ``SOURCES.md`` its package, version, file, offset and licence.

Usage::

    python scripts/datasets/build_music_styles.py OUT_DIR [--small] [--seed N]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
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
    finish_stamp,
    load_audio,
    log,
    oad_fetch_options,
    rms_db,
    silence_bounds,
    write_wav,
    zip_post,
)

SR = 22050
EXCERPT_S = 30.0
MIN_EXCERPT_S = 10.0
PER_LABEL = 100
SPLIT = (("train", 0.6), ("valid", 0.2), ("test", 0.2))
SILENT_RMS_DB = -50.0
BUILD_VERSION = 1
NEXUIZ_PK3 = "usr/share/games/nexuiz/data/music.pk3"

# label -> (package, fetch options, regex on the path inside the package, licence)
LABELS: dict[str, tuple[str, dict, str, str]] = {
    "orchestral": ("wesnoth-1.16-music", {}, r"/music/[^/]+\.ogg$", "GPL-2+"),
    "world": ("0ad-data", oad_fetch_options(), r"audio/music/(?!0_8bit)[^/]+\.ogg$",
              "CC-BY-SA-3.0"),
    "electronic": ("warzone2100-music", {}, r"/music/.*\.opus$",
                   "GPL-2+ (Aftermath album: CC-BY-SA-3.0 or GPL-2+)"),
    "techno": ("nexuiz-music", {"post": zip_post(NEXUIZ_PK3, ["sound/cdtracks/*.ogg"]),
                                "post_id": "music.pk3:sound/cdtracks/*.ogg"},
               r"cdtracks/(?!thunder\.)[^/]+\.ogg$", "GPL-2+"),
    "rock": ("hedgewars-data", {"members": ["./usr/share/games/hedgewars/Data/Music/*"]},
             r"data/music/[^/]+\.ogg$", "GPL-2"),
    "piano": ("drascula-music", {}, r"audio/track\d+\.ogg$", "Drascula-License (freeware)"),
    "tracker": ("pingus-data", {}, r"data/music/[^/]+\.(it|s3m)$", "GPL-2+"),
}
SMALL_LABELS = ("piano", "tracker")
# variants of one composition share a track id (checked on the lower-case stem)
_VARIANT = re.compile(r"(-old|_enhanced|_sd|(?<=victory)2|(?<=defeat)2)$")


def track_id(stem: str) -> str:
    """The composition a file belongs to (variants and remasters map to one id)."""
    return _VARIANT.sub("", stem.lower())


@dataclass
class Excerpt:
    """One planned 30 s (or shorter) excerpt."""

    label: str
    track: str  # package:track id
    pkg: Package
    path: Path
    start: float
    length: float


def plan_track(x: np.ndarray) -> list[tuple[float, float]]:
    """All candidate windows of one decoded track, in preference order.

    Windows are non-overlapping ``EXCERPT_S`` slots of the track without its silent head and
    tail, centred; the preference order spreads the first picks over the whole track
    (middle, then quarters, ...). Silent windows are dropped.
    """
    a, b = silence_bounds(x, SR, rel_db=50.0, floor_db=-70.0)
    dur = (b - a) / SR
    if dur < MIN_EXCERPT_S:
        return []
    if dur < EXCERPT_S:
        return [(a / SR, dur)]
    n = int(dur // EXCERPT_S)
    pad = (dur - n * EXCERPT_S) / 2
    slots = [a / SR + pad + i * EXCERPT_S for i in range(n)]
    order = _spread_order(n)
    out = []
    for i in order:
        s = slots[i]
        k = int(round(s * SR))
        if rms_db(x[k:k + int(EXCERPT_S * SR)]) >= SILENT_RMS_DB:
            out.append((s, EXCERPT_S))
    return out


def _spread_order(n: int) -> list[int]:
    """Indices 0..n-1 ordered so that every prefix is spread evenly (middle first)."""
    order: list[int] = []
    k = 1
    while len(order) < n:
        for j in range(k):
            i = int((2 * j + 1) * n // (2 * k))
            if i not in order:
                order.append(i)
        k *= 2
    return order[:n]


Window = tuple[Path, tuple[float, float]]  # file, (start s, length s)


def allocate(windows: dict[str, list[Window]], per_label: int) -> dict[str, list[Window]]:
    """Round-robin over a label's tracks: one more window per track per round."""
    picked: dict[str, list[Window]] = {t: [] for t in windows}
    n, r = 0, 0
    while n < per_label and any(r < len(w) for w in windows.values()):
        for t in sorted(windows):
            if r < len(windows[t]) and n < per_label:
                picked[t].append(windows[t][r])
                n += 1
        r += 1
    return picked


def split_tracks(counts: dict[str, int], seed: int, label: str) -> dict[str, str]:
    """Assign tracks to splits in a seeded random order, each to the split furthest below its
    share of the excerpts assigned so far; the first three tracks seed train/valid/test."""
    rng = np.random.default_rng([seed, int(hashlib.md5(label.encode()).hexdigest()[:8], 16)])
    tracks = sorted(t for t in counts if counts[t] > 0)
    tracks = [tracks[i] for i in rng.permutation(len(tracks))]
    names = [s for s, _ in SPLIT]
    frac = dict(SPLIT)
    have = dict.fromkeys(names, 0)
    out = {}
    for i, t in enumerate(tracks):
        if i < len(names) and len(tracks) >= len(names):
            s = names[[2, 1, 0][i]]  # smallest parts first so that none stays empty
        else:
            done = sum(have.values()) + counts[t]
            s = max(names, key=lambda k: frac[k] * done - have[k])
        out[t] = s
        have[s] += counts[t]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser, default_seed=1234)
    args = parser.parse_args(argv)
    t0 = time.time()
    out: Path = args.out_dir
    cache = args.cache_dir or default_cache_dir()
    labels = SMALL_LABELS if args.small else tuple(LABELS)
    per_label, max_tracks = (3, 3) if args.small else (PER_LABEL, 10**6)
    label_cfg = [(lb, p, o.get("members"), o.get("post_id"), rx, lic)
                 for lb, (p, o, rx, lic) in sorted(LABELS.items())]
    config = json.dumps([label_cfg, EXCERPT_S, MIN_EXCERPT_S, PER_LABEL, SPLIT, SILENT_RMS_DB,
                         _VARIANT.pattern])
    params = {"builder": "music_styles", "version": BUILD_VERSION, "small": args.small,
              "seed": args.seed, "config_md5": hashlib.md5(config.encode()).hexdigest()}
    if check_stamp(out, params, args.overwrite):
        log(f"{out}: up to date")
        return 0

    manifest = Manifest("Music styles (GTZAN layout)")
    excerpts: list[Excerpt] = []
    for label in labels:
        pname, opts, rx, licence = LABELS[label]
        try:
            pkg = fetch_package(pname, cache, debian_roots=args.debian_root, licence=licence,
                                **opts)
        except SourceUnavailable as exc:
            log(f"SKIPPED: {exc}")
            abandon(out)
            return EXIT_SKIPPED
        pat = re.compile(rx)
        files = sorted(f for f in pkg.root.rglob("*")
                       if f.is_file() and pat.search(pkg.rel(f).lower()))[:max_tracks]
        windows: dict[str, list[Window]] = {}
        where: dict[str, list[tuple[Path, list[tuple[float, float]]]]] = defaultdict(list)
        for f in tqdm(files, desc=f"scan {label}", unit="track"):
            try:
                x = load_audio(f, SR)
            except DecodeError as exc:
                manifest.skip(pname, pkg.rel(f), f"undecodable: {str(exc)[-120:]}")
                continue
            w = plan_track(x)
            if not w:
                manifest.skip(pname, pkg.rel(f),
                              f"shorter than {MIN_EXCERPT_S:.0f} s or silent as decoded")
                continue
            tid = f"{pname}:{track_id(f.stem)}"
            where[tid].append((f, w))
        for tid, items in where.items():  # variants: interleave their windows
            merged: list[Window] = []
            for r in range(max(len(w) for _, w in items)):
                merged += [(f, w[r]) for f, w in items if r < len(w)]
            windows[tid] = merged
        picked = allocate(windows, per_label)
        for tid in sorted(picked):
            for f, (s, ln) in picked[tid]:
                excerpts.append(Excerpt(label, tid, pkg, f, s, ln))
    if not excerpts:
        log("SKIPPED: no excerpts could be made")
        abandon(out)
        return EXIT_SKIPPED

    by_label: dict[str, list[Excerpt]] = defaultdict(list)
    for e in excerpts:
        by_label[e.label].append(e)
    split_of: dict[str, str] = {}
    names: dict[int, str] = {}
    for label, items in sorted(by_label.items()):
        items.sort(key=lambda e: (e.track, e.path.name, e.start))
        counts: dict[str, int] = defaultdict(int)
        for e in items:
            counts[e.track] += 1
        split_of.update(split_tracks(counts, args.seed, label))
        for i, e in enumerate(items):
            names[id(e)] = f"genres/{label}/{label}.{i:05d}.wav"

    by_file: dict[Path, list[Excerpt]] = defaultdict(list)
    for e in excerpts:
        by_file[e.path].append(e)
    bar = tqdm(total=len(excerpts), desc="write excerpts", unit="clip")
    for path, items in sorted(by_file.items()):
        x = None
        for e in items:
            name = names[id(e)]
            if not (out / name).exists():
                if x is None:
                    x = load_audio(path, SR)
                a = int(round(e.start * SR))
                write_wav(out / name, x[a:a + int(round(e.length * SR))], SR)
            manifest.add(SourceRow(name, e.pkg.name, e.pkg.version, e.pkg.rel(e.path),
                                   e.pkg.licence, round(e.start, 3), round(e.length, 3),
                                   f"label={e.label}; track={e.track}; split={split_of[e.track]}"))
            bar.update(1)
    bar.close()

    lists: dict[str, list[str]] = {s: [] for s, _ in SPLIT}
    rows = []
    for e in excerpts:
        lists[split_of[e.track]].append(names[id(e)])
        rows.append((names[id(e)], e.label, e.track, split_of[e.track]))
    for s, paths in lists.items():
        (out / f"{s}.txt").write_text("".join(p + "\n" for p in sorted(paths)))
    with open(out / "tracks.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "track", "split"])
        w.writerows(sorted(rows))

    summary: dict[str, dict[str, list[int]]] = {}
    for label, items in sorted(by_label.items()):
        summary[label] = {}
        for s, _ in SPLIT:
            tr = {e.track for e in items if split_of[e.track] == s}
            summary[label][s] = [len(tr), sum(split_of[e.track] == s for e in items)]
    notes = ["Per label and split: [tracks, excerpts]:", "",
             "| label | " + " | ".join(s for s, _ in SPLIT) + " |",
             "|---|" + "---|" * len(SPLIT)]
    notes += [f"| {lb} | " + " | ".join(str(v[s]) for s, _ in SPLIT) + " |"
              for lb, v in summary.items()]
    manifest.write(out, notes)
    finish_stamp(out, params, {"excerpts": len(excerpts), "per_label_split": summary,
                               "skipped_sources": len(manifest.skipped),
                               "seconds": round(time.time() - t0, 1)})
    log(f"{out}: {len(excerpts)} excerpts, {len(by_label)} labels ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
