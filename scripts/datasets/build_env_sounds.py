"""Build a small environmental-sound dataset in the ESC-50 (or UrbanSound8K) layout.

Real recorded sounds from Debian packages (game sound sets, tuxpaint's stamp sounds, drum kits)
are sorted into classes by file-name rules (:data:`RULES`), cut into clips and split into folds.

* ESC-50 layout (default): ``OUT/audio/<fold>-<src_file>-<take>-<target>.wav`` (44.1 kHz mono
  16-bit, exactly 5 s: short events are trimmed of leading silence and zero-padded at the end,
  long ambiences give up to 6 evenly spaced 5 s windows), ``OUT/meta/esc50.csv`` with the columns
  ``filename,fold,target,category,esc10,src_file,take``, 5 folds.
* UrbanSound8K layout (``--layout us8k``): the same sources and offsets, cut to at most 4 s and
  not padded, in ``OUT/audio/fold<N>/<fsID>-<classID>-<occurrence>-<slice>.wav`` with
  ``OUT/metadata/UrbanSound8K.csv`` (``slice_file_name,fsID,start,end,salience,fold,classID,
  class``), 10 folds.

A *group* (``src_file`` / ``fsID``) is one recording and its takes: files of one folder whose
names differ only by a trailing number or velocity word (``cattle_01`` ... ``cattle_07``,
``PearlSnare-Soft`` ... ``-Hardest``), every hit of one instrument in one drum kit, every window of
one long ambience. A group never spans two folds. Byte-identical files and identical decoded clips
are kept once. Classes with fewer than 20 clips or 5 groups are dropped (listed in ``SOURCES.md``).

Usage::

    python scripts/datasets/build_env_sounds.py OUT_DIR [--layout us8k] [--small] [--seed N]
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
from dataclasses import dataclass, field
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
    file_md5,
    finish_stamp,
    load_audio,
    log,
    oad_fetch_options,
    rms_db,
    silence_bounds,
    write_wav,
    zip_post,
)

SR = 44100
CLIP_S = 5.0  # ESC-50 clip length; US8K slices are the first US8K_S seconds of the same window
US8K_S = 4.0
MAX_PER_CLASS = 40  # like ESC-50
MIN_PER_CLASS = 20
MIN_GROUPS = 5
MAX_TAKES_PER_FILE = 6
MAX_PER_GROUP = 10
SILENT_PEAK_DB = -50.0  # an event whose peak stays below this is treated as silence
SILENT_RMS_DB = -60.0  # a window of a long recording below this RMS level is dropped
BUILD_VERSION = 1

OA_PK3 = "usr/share/games/openarena/baseoa/pak0.pk3"

# package -> fetch options
PACKAGES: dict[str, dict] = {
    "0ad-data": oad_fetch_options(),
    "tuxpaint-stamps-default": {"members": ["./usr/share/tuxpaint/stamps/*.ogg"]},
    "megaglest-data": {"members": ["./usr/share/games/megaglest/techs/*/sounds/*",
                                   "./usr/share/games/megaglest/tilesets/*/sounds/*"]},
    "wesnoth-1.16-data": {"members": ["./usr/share/games/wesnoth/1.16/data/core/sounds/*"]},
    "openarena-data": {"members": [f"./{OA_PK3}"], "post": zip_post(OA_PK3, ["sound/*"]),
                       "post_id": "pak0.pk3:sound/*"},
    "lincity-ng-data": {"members": ["./usr/share/games/lincity-ng/sounds/*"]},
    "hydrogen-drumkits": {"members": ["./usr/share/hydrogen/data/drumkits/*"]},
    "lmms-common": {},
    "sonic-pi-samples": {},
}
SMALL_PACKAGES = ("lmms-common", "sonic-pi-samples")

LICENCES = {
    "0ad-data": "CC-BY-SA-3.0",
    "tuxpaint-stamps-default": "GPL-2",
    "megaglest-data": "CC-BY-SA-3.0",
    "wesnoth-1.16-data": "GPL-2+",
    "openarena-data": "GPL-2+",
    "lincity-ng-data": "GPL-2+",
    "lmms-common": "GPL-2+",
}
HYDROGEN_LICENCES = {  # per kit, from debian/copyright
    "Audiophob": "CC0", "BJA_Pacific": "CC-BY-SA-3.0-us",
    "ColomboAcousticDrumkit": "GPL-2+ with composition exception",
    "ElectricEmpireKit": "GPL-2+", "HardElectro1": "GPL-2+", "VariBreaks": "GPL-2+",
    "ForzeeStereo": "GPL-2", "Gimme A Hand 1.0": "GPL-2", "The Black Pearl 1.0": "GPL-2",
    "Millo-Drums_v.1": "GPL-2", "Millo_MultiLayered2": "GPL-2", "Millo_MultiLayered3": "GPL-2",
    "circAfrique v4": "CC-BY-SA-3.0", "rumpf_kit_z01_h2": "CC-BY-3.0",
}

# (class, package, regex on the lower-case path inside the package, group mode)
# group mode "stem": folder + file stem without trailing numbers/velocity words;
# "dir": folder + class (every hit of one drum kit is one group).
HY = "hydrogen-drumkits"
LM = "lmms-common"
SP = "sonic-pi-samples"
TX = "tuxpaint-stamps-default"
MG = "megaglest-data"
WN = "wesnoth-1.16-data"
OA = "openarena-data"
OAD = "0ad-data"
LC = "lincity-ng-data"
RULES: list[tuple[str, str, str, str]] = [
    # farm animals
    ("cow", OAD, r"fauna/animal/cattle_\d+\.ogg$", "stem"),
    ("cow", MG, r"commondata/sounds/cow_(ack|die|select)\d+\.wav$", "stem"),
    ("cow", MG, r"units/bull/sounds/bull_(ack|die|select)\d+\.wav$", "stem"),
    ("cow", MG, r"sounds/mudchute_cow_\d+\.ogg$", "stem"),
    ("cow", TX, r"bovines/(cow|cow_white|bull|bison)\.ogg$", "stem"),
    ("pig", OAD, r"fauna/animal/pig_(\d+|death|squeal_move)\.ogg$", "stem"),
    ("pig", MG, r"commondata/sounds/pig_(ack|die|select)\d+\.wav$", "stem"),
    ("pig", TX, r"mammals/pig(_golden\d?)?\.ogg$", "stem"),
    ("sheep", OAD, r"fauna/animal/sheep_\d+\.ogg$", "stem"),
    ("sheep", MG, r"units/sheep/sounds/sheep(\d+|_die\d+)\.wav$", "stem"),
    ("sheep", TX, r"bovines/(sheep|sheep_lamb|ram|goat|mountaingoat)\.ogg$", "stem"),
    ("sheep", OAD, r"fauna/death/goat_\d+\.ogg$", "stem"),
    ("horse", OAD, r"fauna/animal/horse_(select|attack|idle|death)?\d+\.ogg$", "stem"),
    ("horse", OAD, r"/death/death_horse_\d+\.ogg$", "stem"),
    ("horse", WN, r"sounds/horse-(hit-\d|die|canter|elf-canter)\.(ogg|wav)$", "stem"),
    ("horse", TX, r"equines/horse\.ogg$", "stem"),
    ("chicken", OAD, r"fauna/animal/chicken_\d+\.ogg$", "stem"),
    ("chicken", MG, r"units/chicken/sounds/chicken_\w+?\d+\.wav$", "stem"),
    ("chicken", MG, r"tilesets/[^/]+/sounds/(chicken\.wav|rooster\.ogg)$", "stem"),
    ("chicken", TX, r"birds/(hen|rooster)\.ogg$", "stem"),
    ("bird", WN, r"ambient/birds\d\.ogg$", "stem"),
    ("bird", TX, r"birds/(blackbird|crow|cuckoo|lark|owl|seagull|tucan|quetzal|vulture|nandou|"
                 r"duck|drake|gander|turkey|penguin|heron_greatblue_flying)"
                 r"\.ogg$", "stem"),
    ("bird", MG, r"tilesets/[^/]+/sounds/(owl|hawk)\.ogg$", "stem"),
    ("bird", OAD, r"fauna/animal/(peacock_call_\d+|flamingo_\d+)\.ogg$", "stem"),
    ("elephant", OAD, r"fauna/animal/elephant_[a-z]+\d\.ogg$", "stem"),
    ("elephant", MG, r"units/elephant/sounds/ele(attack)?\d\.wav$", "stem"),
    ("elephant", TX, r"mammals/elephant\.ogg$", "stem"),
    # nature
    ("rain", OAD, r"ambient/weather/rain_\d+\.ogg$", "stem"),
    ("rain", MG, r"tilesets/[^/]+/sounds/rain\.(ogg|wav)$", "stem"),
    ("wind", OAD, r"ambient/weather/(wind|windgust|windleaves|windstorm|snowstorm)_\d+\.ogg$",
     "stem"),
    ("wind", MG, r"tilesets/[^/]+/sounds/wind\.ogg$", "stem"),
    ("wind", OA, r"sound/world/(wind\d|demonwind\d+)\.wav$", "stem"),
    ("flowing_water", OAD, r"ambient/water/(river_\w+|waterfall|wave|wavecrash|waverocky)_\d+"
                           r"\.ogg$", "stem"),
    ("flowing_water", OA, r"sound/world/waterfall\.wav$", "stem"),
    ("flowing_water", LC, r"sounds/(water|parklandlake)\d\.wav$", "stem"),
    ("crackling_fire", OAD, r"attack/fire/[a-z]+_?\d+\.ogg$", "stem"),
    ("crackling_fire", OA, r"sound/world/(fire\d|firesoft)\.wav$", "stem"),
    ("crackling_fire", WN, r"(ambient/campfire\.ogg|sounds/fire\.wav)$", "stem"),
    ("crackling_fire", LC, r"sounds/fire(wasteland)?\d\.wav$", "stem"),
    # people
    ("footsteps", OAD, r"actor/singlesteps/fs_[a-z]+_?\d+\.ogg$", "stem"),
    ("footsteps", OAD, r"human/movement/(footsteps/[^/]+|hstep_[a-z_]+_\d+)\.ogg$", "stem"),
    ("footsteps", OA, r"sound/player/footsteps/(boot|step|clank|splash)\d\.wav$", "stem"),
    ("scream", OAD, r"actor/human/death/(male_death|female_death|death)_\d+\.ogg$", "stem"),
    ("scream", WN, r"sounds/human-(female-|old-)?die-\d\.ogg$", "stem"),
    ("scream", MG, r"commondata/sounds/(archer|axe_thrower|guard|horseman|swordman|technician"
                   r"|worker)_die\d+\.wav$", "stem"),
    ("scream", MG, r"factions/[a-z]+/units/(archer|fire_archer|horseman|spearman|stickfighter|"
                   r"swordman|battlemage|initiate|summoner|princess|valkyrie|cudgel_lady)/"
                   r"sounds/[a-z_]+_die\d+\.wav$", "stem"),
    # percussion (drum kits: every hit of one instrument in one kit is one group)
    ("kick_drum", HY, r"/(bd_\d+|bd\d|bassdrum-[^/]*|ee_kick_[^/]*|kick-\d|hardhse_k_[^/]*|"
                      r"powr_bd_\d|pearlkick-[^/]*|vp kick \d)\.(wav|flac|aiff)$", "dir"),
    ("kick_drum", LM, r"drums/(kick|bassdrum)[a-z_]*\d+\.ogg$", "stem"),
    ("kick_drum", SP, r"samples/(bd_[a-z0-9]+|drum_heavy_kick|drum_bass_(hard|soft)|"
                      r"elec_(hollow|soft)_kick)\.flac$", "stem"),
    ("snare_drum", HY, r"/(sn\d?_\d+|snare-[^/]*|ee_snare_[^/]*|snare(off)?-\d|powr_sn_\d|"
                       r"snare\d|[jr]snare_\d+|sd_\d+|pearlsnare-[^/]*|vp snare \d|"
                       r"[^/]*snare[^/]*)\.(wav|flac|aiff)$", "dir"),
    ("snare_drum", LM, r"drums/snare[a-z_]*\d+\.ogg$", "stem"),
    ("snare_drum", SP, r"samples/(sn_[a-z]+|drum_snare_(hard|soft)|elec_[a-z]*_?snare)\.flac$",
     "stem"),
    ("hi_hat", HY, r"/(hh\d?_\d+|hihat-[^/]*|ee_hat_[^/]*|hihat[a-z]*-\d|c?hh_\d|fx_chh_\d+|"
                   r"hard_chh_\d+|hard_hse_ohh_\d|powr_hh_\d|closehihat\d|openhat\d|pedalhihat|"
                   r"hh(closed|open|pedal)_\d+|h[ho]_\d+|hh_p|sabianhat[^/]*|vp hat [^/]*|"
                   r"[^/]*hhat[^/]*|[^/]*hat-light)\.(wav|flac|aiff)$", "dir"),
    ("hi_hat", LM, r"drums/hihat_[a-z_]+\d+\.ogg$", "stem"),
    ("hi_hat", SP, r"samples/drum_cymbal_(closed|open|pedal)\.flac$", "stem"),
    ("cymbal", HY, r"/(rd\d?_\d+|crash[^/]*|china-\d|ride(bell|bow)?-\d|splash\d+-\d|cra_rock_a|"
                   r"ride\d|crash_\d+|ride_\d+|cc_\d+|rc_\d+|paisteride-[^/]*|sabiancrash-[^/]*|"
                   r"zildjiansplash-[^/]*)\.(wav|flac|aiff)$", "dir"),
    ("cymbal", LM, r"drums/(crash|ride)\d+\.ogg$", "stem"),
    ("cymbal", SP, r"samples/(drum_splash_(hard|soft)|drum_cymbal_(hard|soft)|elec_cymbal)"
                   r"\.flac$", "stem"),
    ("tom_drum", HY, r"/(tm\d?_\d+|tom-[^/]*|tom(high|low|mid)-\d|tom\d_[a-z0-9]+|"
                     r"(floor)?tom_\d+|(ft|t1|t2)_\d+|pearltom[^/]*|vp tom [^/]*|"
                     r"[^/]*__tom[^/]*)\.(wav|flac|aiff)$", "dir"),
    ("tom_drum", LM, r"drums/tom(_[a-z]+)?\d+\.ogg$", "stem"),
    ("tom_drum", SP, r"samples/drum_tom_[a-z]+_(hard|soft)\.flac$", "stem"),
    ("hand_clap", HY, r"/(handclap[^/]*|ee_clap[^/]*|(amp_)?clap_\d|clap_dry_c|clap_\d+)"
                      r"\.(wav|flac|aiff)$", "dir"),
    ("hand_clap", LM, r"(drums/clap\d+|misc/applause\d+)\.ogg$", "stem"),
    ("cowbell", HY, r"/(cowbell-[^/]*|cb2?_\d+|misc_cowbell|mc_cb)\.(wav|flac|aiff)$", "dir"),
    ("cowbell", SP, r"samples/drum_cowbell\.flac$", "stem"),
]
AMBIENT = {"rain", "wind", "flowing_water", "crackling_fire"}  # US8K salience 2 (background)
# the esc10 column: a 10-class subset of the non-percussion classes (not ESC-10's classes)
ESC10 = ("bird", "chicken", "cow", "crackling_fire", "flowing_water", "footsteps", "horse",
         "rain", "sheep", "wind")
SMALL_CLASSES = ("kick_drum", "snare_drum", "hi_hat", "cymbal")

_TRAIL = re.compile(r"[-_ .]*(\d+|hardest|hard|medium|med|softest|soft)$")


def group_stem(stem: str) -> str:
    """A file stem without trailing take numbers and velocity words."""
    s = stem.lower()
    while True:
        t = _TRAIL.sub("", s)
        if t == s or not t:
            return s
        s = t


@dataclass
class Candidate:
    """A source file matched by a rule."""

    cls: str
    pkg: Package
    path: Path
    group: str
    licence: str
    segments: list[tuple[float, float]] = field(default_factory=list)  # (start s, length s)


def licence_for(pkg: Package, rel: str) -> str:
    """The licence of one file (per drum kit for hydrogen, per sample for sonic-pi)."""
    if pkg.name == HY:
        kit = rel.split("drumkits/", 1)[1].split("/", 1)[0]
        return HYDROGEN_LICENCES.get(kit, "GPL-2")
    if pkg.name == SP:
        copyright_file = pkg.root / "usr/share/doc/sonic-pi-samples/copyright"
        text = copyright_file.read_text(errors="replace") if copyright_file.exists() else ""
        return "CC0" if f"etc/samples/{Path(rel).name}" in text else "MIT (debian/copyright *)"
    return LICENCES[pkg.name]


def collect(pkgs: list[Package], classes: set[str] | None,
            manifest: Manifest) -> list[Candidate]:
    """Match every audio file of the packages against :data:`RULES`; drop byte duplicates."""
    compiled = [(c, p, re.compile(rx), mode) for c, p, rx, mode in RULES
                if classes is None or c in classes]
    out: list[Candidate] = []
    seen: dict[str, str] = {}
    for pkg in pkgs:
        files = sorted(f for f in pkg.root.rglob("*")
                       if f.suffix.lower() in (".wav", ".ogg", ".flac", ".aiff") and f.is_file())
        for f in files:
            rel = pkg.rel(f)
            low = rel.lower()
            for cls, pname, rx, mode in compiled:
                if pname != pkg.name or not rx.search(low):
                    continue
                md5 = file_md5(f)
                if md5 in seen:
                    manifest.skip(pkg.name, rel, f"byte-identical to {seen[md5]}")
                    break
                seen[md5] = f"{pkg.name}:{rel}"
                folder = str(Path(rel).parent)
                key = (f"{pkg.name}:{folder}:{cls}" if mode == "dir"
                       else f"{pkg.name}:{folder}:{group_stem(f.stem)}")
                out.append(Candidate(cls, pkg, f, key, licence_for(pkg, rel)))
                break
    return out


def plan_segments(x: np.ndarray) -> list[tuple[float, float]]:
    """Where to cut clips from one decoded file: one trimmed event, or up to
    :data:`MAX_TAKES_PER_FILE` evenly spaced non-silent windows of a long recording."""
    dur = x.size / SR
    if dur <= CLIP_S + 0.5:
        a, b = silence_bounds(x, SR, rel_db=50.0, floor_db=-70.0)
        peak = float(np.max(np.abs(x[a:b]))) if b > a else 0.0
        if b - a < 0.03 * SR or peak < 10 ** (SILENT_PEAK_DB / 20):
            return []
        return [(a / SR, min(CLIP_S, (b - a) / SR))]
    n = int(min(MAX_TAKES_PER_FILE, dur // CLIP_S))
    starts = np.linspace(0.0, dur - CLIP_S, n) if n > 1 else np.array([(dur - CLIP_S) / 2])
    segs = []
    for s in starts:
        a = int(round(s * SR))
        if rms_db(x[a:a + int(CLIP_S * SR)]) >= SILENT_RMS_DB:
            segs.append((float(s), CLIP_S))
    return segs


def analyse(cands: list[Candidate], manifest: Manifest) -> list[Candidate]:
    """Decode every candidate once, plan its clips, drop undecodable/silent files and
    duplicated decoded audio."""
    kept = []
    seen: dict[str, str] = {}
    for c in tqdm(cands, desc="analyse sources", unit="file"):
        rel = c.pkg.rel(c.path)
        try:
            x = load_audio(c.path, SR)
        except DecodeError as exc:
            manifest.skip(c.pkg.name, rel, f"undecodable: {str(exc)[-120:]}")
            continue
        c.segments = plan_segments(x)
        if not c.segments:
            manifest.skip(c.pkg.name, rel, "silent or too short")
            continue
        h = hashlib.md5(np.round(x * 32767).astype(np.int16).tobytes()).hexdigest()
        if h in seen:
            manifest.skip(c.pkg.name, rel, f"same decoded audio as {seen[h]}")
            continue
        seen[h] = f"{c.pkg.name}:{rel}"
        kept.append(c)
    return kept


@dataclass
class Clip:
    """One planned output clip."""

    cls: str
    group: str
    cand: Candidate
    file_idx: int  # index of the file inside its group
    seg_idx: int  # index of the window inside its file
    start: float
    length: float


def select(cands: list[Candidate], seed: int, per_class: int, per_group: int
           ) -> dict[str, dict[str, list[Clip]]]:
    """Pick up to ``per_class`` clips per class, round-robin over the class's groups (seeded
    order) so that as many recordings as possible are represented; ``{class: {group: clips}}``."""
    by_group: dict[str, list[Candidate]] = defaultdict(list)
    for c in cands:
        by_group[c.group].append(c)
    pool: dict[str, dict[str, list[Clip]]] = defaultdict(dict)
    for g, cs in sorted(by_group.items()):
        clips = []
        for fi, c in enumerate(cs):
            for si, (s, ln) in enumerate(c.segments):
                clips.append(Clip(c.cls, g, c, fi, si, s, ln))
        clips.sort(key=lambda k: (k.seg_idx, k.file_idx))  # first one window of every file
        pool[cs[0].cls][g] = clips[:per_group]
    rng = np.random.default_rng(seed)
    chosen: dict[str, dict[str, list[Clip]]] = {}
    for cls in sorted(pool):
        groups = sorted(pool[cls])
        groups = [groups[i] for i in rng.permutation(len(groups))]
        picked: dict[str, list[Clip]] = defaultdict(list)
        n, r = 0, 0
        while n < per_class and any(r < len(pool[cls][g]) for g in groups):
            for g in groups:
                if r < len(pool[cls][g]) and n < per_class:
                    picked[g].append(pool[cls][g][r])
                    n += 1
            r += 1
        chosen[cls] = dict(picked)
    return chosen


def assign_folds(groups: dict[str, list[Clip]], n_folds: int, seed: int, cls: str
                 ) -> dict[str, int]:
    """Greedy stratified group folds: biggest groups first, each to the fold with the fewest
    clips of this class so far (ties broken by a seeded random order)."""
    rng = np.random.default_rng([seed, int(hashlib.md5(cls.encode()).hexdigest()[:8], 16)])
    names = sorted(groups)
    tiebreak = {g: float(v) for g, v in zip(names, rng.random(len(names)), strict=True)}
    order = sorted(names, key=lambda g: (-len(groups[g]), tiebreak[g]))
    load = [0] * n_folds
    fold_rank = list(rng.permutation(n_folds))
    out = {}
    for g in order:
        f = min(range(n_folds), key=lambda i: (load[i], fold_rank[i]))
        out[g] = f + 1
        load[f] += len(groups[g])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser, default_seed=50)
    parser.add_argument("--layout", choices=("esc50", "us8k"), default="esc50")
    args = parser.parse_args(argv)
    t0 = time.time()
    out: Path = args.out_dir
    cache = args.cache_dir or default_cache_dir()
    small = args.small
    n_folds = 5 if args.layout == "esc50" else 10
    config = json.dumps([RULES, CLIP_S, US8K_S, MAX_PER_CLASS, MIN_PER_CLASS, MIN_GROUPS,
                         MAX_TAKES_PER_FILE, MAX_PER_GROUP, SILENT_PEAK_DB, SILENT_RMS_DB,
                         ESC10, sorted(AMBIENT)])
    params = {"builder": "env_sounds", "version": BUILD_VERSION, "layout": args.layout,
              "small": small, "seed": args.seed,
              "config_md5": hashlib.md5(config.encode()).hexdigest()}
    if check_stamp(out, params, args.overwrite):
        log(f"{out}: up to date (delete it or pass --overwrite with other options to rebuild)")
        return 0

    names = SMALL_PACKAGES if small else tuple(PACKAGES)
    pkgs = []
    for name in names:
        opts = PACKAGES[name]
        try:
            pkgs.append(fetch_package(name, cache, debian_roots=args.debian_root,
                                      licence=LICENCES.get(name, ""), **opts))
        except SourceUnavailable as exc:
            log(f"SKIPPED: {exc}")
            abandon(out)
            return EXIT_SKIPPED
    manifest = Manifest("Environmental sounds (" + ("ESC-50" if n_folds == 5 else "UrbanSound8K")
                        + " layout)")
    cands = collect(pkgs, set(SMALL_CLASSES) if small else None, manifest)
    log(f"{len(cands)} candidate files in {len({c.group for c in cands})} groups")
    cands = analyse(cands, manifest)
    per_class, per_group = (3, 1) if small else (MAX_PER_CLASS, MAX_PER_GROUP)
    chosen = select(cands, args.seed, per_class, per_group)
    dropped = {}
    for cls in list(chosen):
        n = sum(len(v) for v in chosen[cls].values())
        if not small and (n < MIN_PER_CLASS or len(chosen[cls]) < MIN_GROUPS):
            dropped[cls] = f"{n} clips in {len(chosen[cls])} groups"
            del chosen[cls]
    classes = sorted(chosen)
    target = {c: i for i, c in enumerate(classes)}
    src_id = {g: i + 1 for i, g in enumerate(sorted(g for c in classes for g in chosen[c]))}

    rows, jobs = [], []
    for cls in classes:
        folds = assign_folds(chosen[cls], n_folds, args.seed, cls)
        for g, clips in sorted(chosen[cls].items()):
            for take, clip in enumerate(clips):
                sid = src_id[g]
                if args.layout == "esc50":
                    letter = chr(ord("A") + take)
                    name = f"audio/{folds[g]}-{sid}-{letter}-{target[cls]}.wav"
                    rows.append({"filename": Path(name).name, "fold": folds[g],
                                 "target": target[cls], "category": cls,
                                 "esc10": str(cls in ESC10), "src_file": sid, "take": letter})
                else:
                    ln = min(US8K_S, clip.length)
                    name = (f"audio/fold{folds[g]}/{sid}-{target[cls]}-{clip.file_idx}-"
                            f"{clip.seg_idx}.wav")
                    rows.append({"slice_file_name": Path(name).name, "fsID": sid,
                                 "start": round(clip.start, 6),
                                 "end": round(clip.start + ln, 6),
                                 "salience": 2 if cls in AMBIENT else 1, "fold": folds[g],
                                 "classID": target[cls], "class": cls})
                jobs.append((name, clip))

    by_file: dict[Path, list[tuple[str, Clip]]] = defaultdict(list)
    for name, clip in jobs:
        by_file[clip.cand.path].append((name, clip))
    bar = tqdm(total=len(jobs), desc="write clips", unit="clip")
    for path, items in sorted(by_file.items()):
        todo = [(n, c) for n, c in items if not (out / n).exists()]
        x = load_audio(path, SR) if todo else None
        for name, clip in items:
            c = clip.cand
            if x is not None and not (out / name).exists():
                a = int(round(clip.start * SR))
                seg = x[a:a + int(round(clip.length * SR))]
                if args.layout == "esc50":
                    y = np.zeros(int(CLIP_S * SR), np.float32)
                    y[:seg.size] = seg[:y.size]
                else:
                    y = seg[:int(US8K_S * SR)]
                write_wav(out / name, y, SR)
            manifest.add(SourceRow(name, c.pkg.name, c.pkg.version, c.pkg.rel(c.path), c.licence,
                                   round(clip.start, 4), round(clip.length, 4),
                                   f"class={clip.cls}; group={clip.group}"))
            bar.update(1)
    bar.close()

    if args.layout == "esc50":
        meta = out / "meta" / "esc50.csv"
        cols = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    else:
        meta = out / "metadata" / "UrbanSound8K.csv"
        cols = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
    meta.parent.mkdir(parents=True, exist_ok=True)
    rows.sort(key=lambda r: r[cols[0]])
    with open(meta, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    with open(meta.parent / "groups.csv", "w", newline="") as f:
        w2 = csv.writer(f)
        w2.writerow(["src_file", "group", "category", "clips"])
        for g, sid in sorted(src_id.items(), key=lambda kv: kv[1]):
            cls = next(c for c in classes if g in chosen[c])
            w2.writerow([sid, g, cls, len(chosen[cls][g])])

    counts = {c: sum(len(v) for v in chosen[c].values()) for c in classes}
    n_groups = {c: len(chosen[c]) for c in classes}
    fold_counts: dict[int, int] = defaultdict(int)
    for r in rows:
        fold_counts[int(r["fold"])] += 1
    notes = [f"Classes ({len(classes)}): " + ", ".join(f"{c} {counts[c]} clips/{n_groups[c]} "
                                                        "groups" for c in classes),
             "", f"Dropped classes (fewer than {MIN_PER_CLASS} clips or {MIN_GROUPS} groups): "
             + (json.dumps(dropped) if dropped else "none"),
             "", "Clips per fold: " + json.dumps(dict(sorted(fold_counts.items())))]
    manifest.write(out, notes)
    finish_stamp(out, params, {"clips": len(rows), "classes": counts, "groups": n_groups,
                               "dropped_classes": dropped, "folds": dict(fold_counts),
                               "skipped_sources": len(manifest.skipped),
                               "seconds": round(time.time() - t0, 1)})
    log(f"{out}: {len(rows)} clips, {len(classes)} classes, {n_folds} folds "
        f"({time.time() - t0:.0f} s); dropped classes: {dropped or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
