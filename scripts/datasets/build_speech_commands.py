"""Build a synthetic keyword-spotting dataset in the Speech Commands v0.02 layout.

The 35 words of Speech Commands v0.02 (the 10 commands ``yes no up down left right on off stop
go`` and the 25 auxiliary words) are spoken by Debian's speech synthesisers:

* ``espeak-ng``: 8 English accents x voice variants, each pseudo-speaker with its own variant,
  pitch and rate. Variants are parameter changes of one formant voice, not people: the split
  holds out whole accents AND a disjoint set of variants.
* ``flite``: voices kal, kal16, awb, rms, slt; ``festival``: kal_diphone, ked_diphone,
  cmu_us_slt_arctic_hts. Behind them stand five recorded people (kal, ked, slt, awb, rms; kal and
  slt appear in both engines). Pseudo-speakers vary duration stretch, F0 (flite) and a small
  tape-speed factor; the split is by PERSON.

Each utterance is resampled to 16 kHz mono, trimmed by energy, peak-normalised to a random
level between -9 and -1 dBFS and placed at a random offset in an exactly 1.000 s window
(16-bit wav). Words longer than 1 s after trimming are dropped. With ``pocketsphinx``
installed every clip is decoded with a grammar restricted to the 35 words: ``--asr-filter
report`` (the default when pocketsphinx is installed) writes what it heard to ``asr.csv`` and
the recognition rate per engine to ``SOURCES.md`` but keeps every clip; ``--asr-filter on``
drops the clips where it does not hear the intended word. pocketsphinx's US-English model
misrecognises many correct espeak-ng words (about half of the default ``en-us`` voice's words,
more for other accents), so ``on`` mostly removes espeak-ng accents rather than unintelligible
clips.

Output (the v0.02 layout): ``OUT/<word>/<speaker>_nohash_0.wav``, ``OUT/validation_list.txt``
and ``OUT/testing_list.txt`` (``<word>/<file>`` lines; everything else is training),
``OUT/_background_noise_/*.wav`` (white and pink noise, plus rain, wind, river and market
ambience from 0ad-data), ``OUT/speakers.csv`` (speaker id, split group, engine, voice,
parameters, split). A speaker id is ``<group>-<engine><nn>``: the part before the first ``-`` is
the split group (a person such as ``kal``, or an espeak accent such as ``esenus``).

Usage::

    python scripts/datasets/build_speech_commands.py OUT_DIR [--small] [--seed N]
        [--asr-filter auto|report|on|off] [--no-ambience]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    EXIT_SKIPPED,
    DecodeError,
    Manifest,
    SourceRow,
    SourceUnavailable,
    add_common_args,
    check_stamp,
    default_cache_dir,
    fetch_package,
    finish_stamp,
    load_audio,
    log,
    oad_fetch_options,
    silence_bounds,
    write_wav,
)

SR = 16000
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
AUXILIARY = ("bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin",
             "nine", "one", "seven", "sheila", "six", "three", "tree", "two", "wow", "zero",
             "backward", "forward", "follow", "learn", "visual")
WORDS = COMMANDS + AUXILIARY
BUILD_VERSION = 1

# espeak-ng accent -> (split group, split)
ESPEAK_ACCENTS = {
    "en-gb": ("esengb", "train"), "en-us": ("esenus", "train"),
    "en-gb-scotland": ("esengbscotland", "train"), "en-gb-x-gbclan": ("esengbxgbclan", "train"),
    "en-gb-x-rp": ("esengbxrp", "train"), "en-us-nyc": ("esenusnyc", "train"),
    "en-gb-x-gbcwmd": ("esengbxgbcwmd", "validation"), "en-029": ("esen029", "testing"),
}
# human-sounding espeak-ng variants (robotic, whispering, croaking and novelty ones left out)
ESPEAK_VARIANTS = (
    "adam", "Alex", "Alicia", "Andrea", "Andy", "Annie", "antonio", "aunty", "belinda",
    "benjamin", "boris", "caleb", "david", "Denis", "Diogo", "ed", "edward", "edward2", "Gene",
    "Gene2", "gustave", "Henrique", "Hugo", "iven", "iven2", "iven3", "iven4", "Jacky", "john",
    "Lee", "linda", "marcelo", "Marco", "Mario", "max", "Michael", "michel", "miguel", "Mike",
    "Nguyen", "pablo", "paul", "pedro", "quincy", "rob", "robert", "steph", "steph2", "steph3",
    "Storm", "travis", "victor", "zac", "anika", "AnxiousAndy", "f1", "f2", "f3", "f4", "f5",
    "grandpa", "grandma", "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6", "m1", "m2",
    "m3", "m4", "m5", "m6", "m7", "m8", "norbert", "sandro", "shelby",
)
VARIANT_SPLIT = (("train", 0.8), ("validation", 0.1), ("testing", 0.1))
# recorded people behind flite / festival voices -> split
# (ked is only in festival, awb and rms only in flite: each evaluation split gets one engine's
# held-out person)
PERSON_SPLIT = {"kal": "train", "slt": "train", "rms": "train", "ked": "validation",
                "awb": "testing"}
FLITE_VOICES = {"kal": "kal", "kal16": "kal", "awb": "awb", "rms": "rms", "slt": "slt"}
FESTIVAL_VOICES = {"kal_diphone": ("kal", "festvox-kallpc16k"),
                   "ked_diphone": ("ked", "festvox-kdlpc16k"),
                   "cmu_us_slt_arctic_hts": ("slt", "festvox-us-slt-hts")}
FEMALE = {"slt"}
LICENCES = {"espeak-ng": "GPL-3+", "flite": "flite licence (BSD-like, CMU/Edinburgh)",
            "festvox-kallpc16k": "festvox diphone licence (BSD-like)",
            "festvox-kdlpc16k": "festvox diphone licence (BSD-like)",
            "festvox-us-slt-hts": "BSD-3-clause-like (CMU ARCTIC / HTS)"}
PER_ACCENT = 24  # espeak pseudo-speakers per accent
PER_VOICE = 16  # flite / festival pseudo-speakers per voice
MAX_WORD_S = 1.0
AMBIENCE = (  # (output name, file inside 0ad-data's public.zip, offset s, seconds)
    ("rain.wav", "audio/ambient/weather/rain_11.ogg", 0.0, 60.0),
    ("wind.wav", "audio/ambient/weather/wind_11.ogg", 30.0, 60.0),
    ("running_river.wav", "audio/ambient/water/river_fast_21.ogg", 0.0, 23.0),
    ("market_crowd.wav", "audio/ambient/building/amb_trade_11.ogg", 0.0, 20.0),
)


@dataclass(frozen=True)
class Speaker:
    """One pseudo-speaker: an engine, a voice and fixed prosody parameters."""

    sid: str
    group: str  # the split unit: a person or an espeak accent
    engine: str  # espeak-ng | flite | festival
    voice: str
    params: tuple[tuple[str, float | str], ...]
    split: str

    def param(self, key: str, default: float | str = 0.0) -> float | str:
        return dict(self.params).get(key, default)


def _seed(*parts: object) -> list[int]:
    return [int(hashlib.md5(str(p).encode()).hexdigest()[:8], 16) for p in parts]


def _voices_available() -> dict[str, bool]:
    have = {"espeak-ng": shutil.which("espeak-ng") is not None,
            "flite": shutil.which("flite") is not None,
            "festival": shutil.which("festival") is not None}
    return have


def _flite_voices() -> set[str]:
    res = subprocess.run(["flite", "-lv"], capture_output=True, text=True, check=False)
    return set(res.stdout.split(":", 1)[-1].split())


def _festival_voice_ok(voice: str) -> bool:
    return any(Path("/usr/share/festival/voices").glob(f"*/{voice}"))


def plan_speakers(seed: int, small: bool, engines: dict[str, bool]) -> list[Speaker]:
    """All pseudo-speakers, deterministic given the seed."""
    out: list[Speaker] = []
    rng = np.random.default_rng(_seed(seed, "variants"))
    variants = list(ESPEAK_VARIANTS)
    order = rng.permutation(len(variants))
    pools: dict[str, list[str]] = {}
    pos = 0
    for i, (name, frac) in enumerate(VARIANT_SPLIT):
        n = len(variants) - pos if i == len(VARIANT_SPLIT) - 1 else round(frac * len(variants))
        pools[name] = [variants[j] for j in order[pos:pos + n]]
        pos += n
    if engines.get("espeak-ng"):
        accents = ESPEAK_ACCENTS
        if small:
            accents = {k: v for k, v in ESPEAK_ACCENTS.items()
                       if k in ("en-us", "en-gb-x-gbcwmd", "en-029")}
        for accent, (group, split) in accents.items():
            r = np.random.default_rng(_seed(seed, accent))
            pool = pools[split]
            picks = [pool[j % len(pool)] for j in r.permutation(max(len(pool), PER_ACCENT))]
            for k in range(2 if small else PER_ACCENT):
                out.append(Speaker(f"{group}-espeak{k:02d}", group, "espeak-ng",
                                   f"{accent}+{picks[k]}",
                                   (("pitch", int(r.integers(25, 76))),
                                    ("rate", int(r.integers(135, 186)))), split))
    if small:
        return out
    if engines.get("flite"):
        have = _flite_voices()
        for voice, person in FLITE_VOICES.items():
            if voice not in have:
                continue
            r = np.random.default_rng(_seed(seed, "flite", voice))
            lo, hi = (150, 215) if person in FEMALE else (80, 130)
            for k in range(PER_VOICE):
                out.append(Speaker(f"{person}-flite{voice.removeprefix(person)}{k:02d}", person,
                                   "flite", voice,
                                   (("stretch", round(float(r.uniform(0.85, 1.3)), 3)),
                                    ("f0", int(r.integers(lo, hi + 1))),
                                    ("tape", round(float(r.uniform(0.93, 1.07)), 3))),
                                   PERSON_SPLIT[person]))
    if engines.get("festival"):
        for voice, (person, _pkg) in FESTIVAL_VOICES.items():
            if not _festival_voice_ok(voice):
                continue
            r = np.random.default_rng(_seed(seed, "festival", voice))
            for k in range(PER_VOICE):
                out.append(Speaker(f"{person}-festival{k:02d}", person, "festival", voice,
                                   (("stretch", round(float(r.uniform(0.85, 1.3)), 3)),
                                    ("tape", round(float(r.uniform(0.9, 1.1)), 3))),
                                   PERSON_SPLIT[person]))
    return out


def synthesise(sp: Speaker, words: tuple[str, ...], tmp: Path) -> dict[str, Path]:
    """Speak every word with one pseudo-speaker; returns word -> wav file (missing on failure)."""
    out: dict[str, Path] = {}
    if sp.engine == "festival":
        lines = [f"(voice_{sp.voice})", f"(Parameter.set 'Duration_Stretch {sp.param('stretch')})"]
        for w in words:
            lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{w}")) '
                         f'"{tmp / (w + ".wav")}" \'riff)')
        script = tmp / "synth.scm"
        script.write_text("\n".join(lines) + "\n")
        subprocess.run(["festival", "-b", str(script)], capture_output=True, check=False,
                       timeout=600)
        return {w: tmp / f"{w}.wav" for w in words if (tmp / f"{w}.wav").exists()}
    for w in words:
        f = tmp / f"{w}.wav"
        if sp.engine == "espeak-ng":
            cmd = ["espeak-ng", "-v", sp.voice, "-p", str(sp.param("pitch")),
                   "-s", str(sp.param("rate")), "-w", str(f), w]
        else:
            cmd = ["flite", "-voice", sp.voice, "--setf", f"duration_stretch={sp.param('stretch')}",
                   "--setf", f"int_f0_target_mean={sp.param('f0')}", "-t", w, "-o", str(f)]
        subprocess.run(cmd, capture_output=True, check=False, timeout=60)
        if f.exists() and f.stat().st_size > 44:
            out[w] = f
    return out


def place(x: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """Energy-trim a 16 kHz utterance and put it at a random offset in a 1 s window, peak
    normalised to a random level; None if it is empty or longer than 1 s."""
    a, b = silence_bounds(x, SR, rel_db=40.0, floor_db=-60.0)
    y = x[a:b]
    if y.size < 0.05 * SR or y.size > MAX_WORD_S * SR:
        return None
    peak = float(np.max(np.abs(y)))
    if peak <= 0:
        return None
    y = y / peak * 10 ** (rng.uniform(-9.0, -1.0) / 20)
    out = np.zeros(SR, np.float32)
    off = int(rng.integers(0, SR - y.size + 1))
    out[off:off + y.size] = y
    return out


class AsrFilter:
    """pocketsphinx with a grammar of the 35 words: does it hear the intended word?"""

    def __init__(self, tmp: Path) -> None:
        from pocketsphinx import Decoder

        gram = tmp / "words.gram"
        gram.write_text("#JSGF V1.0;\ngrammar words;\npublic <w> = " + " | ".join(WORDS)
                        + " ;\n")
        self.decoder = Decoder(samprate=SR, jsgf=str(gram), lm=None, loglevel="FATAL")

    def heard(self, clip: np.ndarray) -> str:
        pad = np.zeros(SR // 4, np.float32)
        pcm = np.clip(np.concatenate([pad, clip, pad]) * 32767, -32768, 32767).astype(np.int16)
        self.decoder.start_utt()
        self.decoder.process_raw(pcm.tobytes(), full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr.strip() if hyp is not None else ""


def dpkg_version(pkg: str) -> str:
    """Installed version of a Debian package ("unknown" if dpkg does not know it)."""
    res = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True,
                         text=True, check=False)
    return res.stdout.strip() if res.returncode == 0 and res.stdout.strip() else "unknown"


def engine_package(sp: Speaker) -> str:
    """The Debian package holding the voice data of a speaker."""
    if sp.engine == "festival":
        return FESTIVAL_VOICES[sp.voice][1]
    return sp.engine


def noise(kind: str, seconds: float, seed: int) -> np.ndarray:
    """White or pink (1/f power) noise at about -20 dBFS RMS."""
    rng = np.random.default_rng(_seed(seed, kind))
    n = int(seconds * SR)
    x = rng.standard_normal(n)
    if kind == "pink":
        spec = np.fft.rfft(x)
        f = np.fft.rfftfreq(n, 1 / SR)
        spec[1:] /= np.sqrt(f[1:] / f[1])
        spec[0] = 0
        x = np.fft.irfft(spec, n)
    return (0.1 * x / np.sqrt(np.mean(x**2))).astype(np.float32)


def write_background(out: Path, args: argparse.Namespace, manifest: Manifest) -> None:
    """``_background_noise_``: generated white/pink noise plus real 0ad ambiences."""
    bg = out / "_background_noise_"
    for kind in ("white", "pink"):
        path = bg / f"{kind}_noise.wav"
        if not path.exists():
            write_wav(path, noise(kind, 60.0, args.seed), SR)
        manifest.add(SourceRow(f"_background_noise_/{kind}_noise.wav", "(generated)", "-",
                               f"numpy {kind} noise, seed {args.seed}", "CC0", 0.0, 60.0))
    if args.small or args.no_ambience:
        return
    try:
        pkg = fetch_package("0ad-data", args.cache_dir or default_cache_dir(),
                            debian_roots=args.debian_root, licence="CC-BY-SA-3.0",
                            **oad_fetch_options())
    except SourceUnavailable as exc:
        log(f"ambience skipped: {exc}")
        manifest.skip("0ad-data", "(ambience)", str(exc))
        return
    zdir = next(pkg.root.rglob("public.zip.d"))
    for name, rel, off, secs in AMBIENCE:
        src = zdir / rel
        try:
            x = load_audio(src, SR)
        except DecodeError as exc:
            manifest.skip(pkg.name, pkg.rel(src), f"undecodable: {exc}")
            continue
        a = int(off * SR)
        y = x[a:a + int(secs * SR)]
        if not (bg / name).exists():
            write_wav(bg / name, y, SR)
        manifest.add(SourceRow(f"_background_noise_/{name}", pkg.name, pkg.version,
                               pkg.rel(src), pkg.licence, off, round(y.size / SR, 3)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser, default_seed=2017)
    parser.add_argument("--asr-filter", choices=("auto", "report", "on", "off"), default="auto",
                        help="pocketsphinx check: 'report' records what it hears, 'on' also "
                             "drops clips it does not recognise; auto = report if installed "
                             "(off in --small)")
    parser.add_argument("--no-ambience", action="store_true",
                        help="only generated noise in _background_noise_ (no 0ad-data)")
    args = parser.parse_args(argv)
    t0 = time.time()
    out: Path = args.out_dir
    engines = _voices_available()
    if not (engines["espeak-ng"] if args.small else any(engines.values())):
        log("SKIPPED: no speech synthesiser found (apt-get install espeak-ng flite festival "
            "festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts)")
        return EXIT_SKIPPED
    try:
        import pocketsphinx  # noqa: F401

        have_asr = True
    except ImportError:
        have_asr = False
    asr_mode = args.asr_filter
    if asr_mode == "auto":
        asr_mode = "report" if have_asr and not args.small else "off"
    use_asr = asr_mode != "off"
    if use_asr and not have_asr:
        parser.error(f"--asr-filter {asr_mode} needs pocketsphinx (pip install pocketsphinx)")
    words = COMMANDS + AUXILIARY[:2] if args.small else WORDS
    speakers = plan_speakers(args.seed, args.small, engines)
    config = json.dumps([ESPEAK_ACCENTS, ESPEAK_VARIANTS, VARIANT_SPLIT, PERSON_SPLIT,
                         PER_ACCENT, PER_VOICE, MAX_WORD_S, words, AMBIENCE])
    params = {"builder": "speech_commands", "version": BUILD_VERSION, "small": args.small,
              "seed": args.seed, "asr_filter": asr_mode, "no_ambience": args.no_ambience,
              "engines": sorted(k for k, v in engines.items() if v),
              "speakers": len(speakers),
              "config_md5": hashlib.md5(config.encode()).hexdigest()}
    if check_stamp(out, params, args.overwrite):
        log(f"{out}: up to date")
        return 0
    log(f"{len(speakers)} pseudo-speakers x {len(words)} words; engines: "
        + ", ".join(k for k, v in engines.items() if v) + f"; ASR filter: {asr_mode}")

    manifest = Manifest("Synthetic speech commands (Speech Commands v0.02 layout)")
    progress_path = out / ".progress.jsonl"
    done: dict[str, dict[str, list[str]]] = {}
    if progress_path.exists():
        for line in progress_path.read_text().splitlines():
            rec = json.loads(line)
            done[rec["speaker"]] = rec["status"]
    versions = {p: dpkg_version(p) for p in
                ("espeak-ng", "flite", *(v[1] for v in FESTIVAL_VOICES.values()))}
    with tempfile.TemporaryDirectory(prefix="zoo-speech-") as tmpd:
        tmp = Path(tmpd)
        asr = AsrFilter(tmp) if use_asr else None
        bar = tqdm(total=len(speakers) * len(words), desc="synthesise", unit="clip")
        with open(progress_path, "a") as prog:
            for sp in speakers:
                status = done.get(sp.sid)
                if status is None:
                    status = _build_speaker(sp, words, out, tmp, asr, asr_mode == "on",
                                            args.seed)
                    prog.write(json.dumps({"speaker": sp.sid, "status": status}) + "\n")
                    prog.flush()
                    done[sp.sid] = status
                bar.update(len(words))
        bar.close()

    stats: dict[str, Counter] = defaultdict(Counter)
    val, test, asr_rows = [], [], []
    for sp in speakers:
        pkg = engine_package(sp)
        for w in words:
            st, heard = done[sp.sid].get(w, ["missing", ""])
            stats[sp.engine][st] += 1
            if use_asr and heard != "":
                stats[sp.engine]["asr checked"] += 1
                stats[sp.engine]["asr correct"] += heard == w
                asr_rows.append([f"{w}/{sp.sid}_nohash_0.wav", sp.engine, sp.group, w,
                                 heard, int(heard == w), st])
            if st != "kept":
                if st != "missing":
                    manifest.skip(pkg, f"{sp.sid}:{w}", st)
                continue
            rel = f"{w}/{sp.sid}_nohash_0.wav"
            if sp.split == "validation":
                val.append(rel)
            elif sp.split == "testing":
                test.append(rel)
            desc = (f"{sp.engine} voice {sp.voice} "
                    + " ".join(f"{k}={v}" for k, v in sp.params) + f': "{w}"')
            manifest.add(SourceRow(rel, pkg, versions.get(pkg, "unknown"), desc,
                                   LICENCES[pkg], 0.0, 1.0,
                                   f"speaker group={sp.group}; split={sp.split}"))
    (out / "validation_list.txt").write_text("".join(p + "\n" for p in sorted(val)))
    (out / "testing_list.txt").write_text("".join(p + "\n" for p in sorted(test)))
    with open(out / "speakers.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["speaker", "group", "engine", "voice", "params", "split"])
        for sp in speakers:
            wr.writerow([sp.sid, sp.group, sp.engine, sp.voice,
                         " ".join(f"{k}={v}" for k, v in sp.params), sp.split])
    write_background(out, args, manifest)

    if use_asr:
        with open(out / "asr.csv", "w", newline="") as f:
            wr = csv.writer(f)
            wr.writerow(["clip", "engine", "group", "word", "heard", "correct", "status"])
            wr.writerows(sorted(asr_rows))
    per_word = Counter(r.clip.split("/")[0] for r in manifest.rows
                       if not r.clip.startswith("_background"))
    per_split = Counter(sp.split for sp in speakers for w in words
                        if done[sp.sid].get(w, [""])[0] == "kept")
    notes = [f"ASR mode: {asr_mode}. Clips per engine: kept; dropped by the ASR filter "
             "(only with `--asr-filter on`); dropped as longer than 1 s or empty after "
             "trimming; no audio from the synthesiser; and pocketsphinx's top-1 recognition "
             "rate over all checked clips (a rough intelligibility proxy, biased against "
             "non-US accents and formant synthesis).", "",
             "| engine | kept | asr-dropped | too long/empty | no audio | pocketsphinx correct |",
             "|---|---|---|---|---|---|"]
    for eng, c in sorted(stats.items()):
        asr_n = sum(v for k, v in c.items() if k.startswith("asr:"))
        rate = (f"{c['asr correct']}/{c['asr checked']} "
                f"({100 * c['asr correct'] / max(1, c['asr checked']):.0f}%)"
                if c["asr checked"] else "-")
        notes.append(f"| {eng} | {c['kept']} | {asr_n} | {c['too long or empty']} | "
                     f"{c['no audio'] + c['missing']} | {rate} |")
    if use_asr:
        by_group: dict[str, Counter] = defaultdict(Counter)
        for row in asr_rows:
            by_group[row[2]]["n"] += 1
            by_group[row[2]]["ok"] += row[5]
        notes += ["", "pocketsphinx top-1 recognition per speaker group: " + ", ".join(
            f"{g} {100 * c['ok'] / c['n']:.0f}%" for g, c in sorted(by_group.items()))]
    notes += ["", "Clips per split: " + json.dumps(dict(sorted(per_split.items()))),
              "", "Clips per word: " + json.dumps(dict(sorted(per_word.items())))]
    manifest.write(out, notes)
    finish_stamp(out, params, {
        "clips": sum(per_split.values()), "per_split": dict(per_split),
        "per_word": dict(per_word),
        "per_engine": {e: dict(c) for e, c in stats.items()},
        "seconds": round(time.time() - t0, 1)})
    log(f"{out}: {sum(per_split.values())} clips ({dict(per_split)}), "
        f"{time.time() - t0:.0f} s")
    return 0


def _build_speaker(sp: Speaker, words: tuple[str, ...], out: Path, tmp: Path,
                   asr: AsrFilter | None, drop: bool, seed: int) -> dict[str, list[str]]:
    """Synthesise, place, check and write one speaker's words; returns word -> [status, what
    the recogniser heard ("" if not checked, "-" for nothing)]."""
    work = tmp / sp.sid
    work.mkdir(parents=True, exist_ok=True)
    status: dict[str, list[str]] = {}
    files = synthesise(sp, words, work)
    for w in words:
        if w not in files:
            status[w] = ["no audio", ""]
            continue
        try:
            x = load_audio(files[w], int(round(SR * float(sp.param("tape", 1.0)))))
        except DecodeError:
            status[w] = ["no audio", ""]
            continue
        # decoding at SR * tape and reading the result as SR shifts pitch, formants and
        # duration together by the tape factor
        clip = place(x, np.random.default_rng(_seed(seed, sp.sid, w)))
        if clip is None:
            status[w] = ["too long or empty", ""]
            continue
        heard = (asr.heard(clip) or "-") if asr is not None else ""
        if drop and heard != w:
            status[w] = [f"asr:{heard}", heard]
            continue
        write_wav(out / w / f"{sp.sid}_nohash_0.wav", clip, SR)
        status[w] = ["kept", heard]
    shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
