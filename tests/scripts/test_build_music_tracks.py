"""scripts/datasets/build_music_tracks.py without apt: track ids and variants, DEP-5 licence
lookup, trimming, duplicate detection and the written layout, on synthetic packages."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf
from script_modules import load_script

SR = 16000


@pytest.fixture(scope="module")
def mt():
    return load_script("datasets/build_music_tracks")


def music(seconds: float, seed: int) -> np.ndarray:
    """Noise with a random note-like loudness pattern (4 notes a second), at 16 kHz."""
    rng = np.random.default_rng(seed)
    notes = rng.uniform(0.05, 0.5, int(seconds * 4) + 1)
    env = np.repeat(notes, SR // 4)[: int(seconds * SR)]
    tone = np.sin(2 * np.pi * rng.uniform(100, 800) * np.arange(env.size) / SR)
    return (env * (0.6 * tone + 0.4 * rng.standard_normal(env.size))).astype(np.float32) * 0.5


def fake_package(mt, tmp_path, files: dict[str, np.ndarray], copyright_text: str = ""):
    root = tmp_path / "pkg"
    for rel, x in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, x, SR, subtype="PCM_16")
    doc = root / "usr/share/doc/fake-music/copyright"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(copyright_text)
    return mt.Package("fake-music", "1.0-1", root, "GPL-2+")


def test_track_ids_and_variants(mt):
    assert mt.track_id("Frantic-old") == "frantic"  # build_music_styles' rule
    assert mt.track_id("track3_enhanced") == "track3"
    assert mt.track_id("celtic_fast", r"_f(ast)?$") == "celtic"
    assert mt.track_id("farm_f", r"_f(ast)?$") == "farm"
    assert mt.track_id("Olivier_Militon.-.Apnee") == "olivier_militon.-.apnee"
    assert mt.track_id("A New Journey") == "a_new_journey"
    groups = mt.group_variants([mt.Path(p) for p in ("a/cave.ogg", "b/cave_old.ogg",
                                                     "a/airship_2.ogg", "a/forest2.ogg")],
                               r"(_2|_remix|_old)$")
    assert sorted(groups) == ["airship", "cave", "forest2"]
    assert [p.name for p in groups["cave"]] == ["cave.ogg", "cave_old.ogg"]


def test_sources_are_disjoint_and_small_subset(mt):
    train = {s.package for s in mt.TRAIN}
    held = {s.package for s in mt.HELDOUT}
    assert len(train) == 7 and not train & held and 8 <= len(held) <= 12
    assert all(s.style and s.set == "heldout" for s in mt.HELDOUT)
    assert [s.set for s in mt.select_sources("heldout", False)][:7] == ["train"] * 7
    assert {s.set for s in mt.select_sources("train", False)} == {"train"}
    small = mt.select_sources("all", True)
    assert [s.set for s in small].count("train") == 2 and len(small) == 4
    order = mt.small_order(["a", "b", "c", "d"], 1, "x")
    assert sorted(order) == ["a", "b", "c", "d"] and order == mt.small_order("abcd", 1, "x")


COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: someone
License: GPL-2+

Files: data/music/*
Copyright: composer
License: CC-BY-SA-3.0

Files: base/music/special.ogg
       base/music/other*.ogg
Copyright: another
License: CC-BY-3.0

Files: data/images/*
License: CC0
"""


def test_dep5_licence_lookup(mt):
    rules = mt.copyright_rules(COPYRIGHT)
    assert [lic for _, lic in rules] == ["GPL-2+", "CC-BY-SA-3.0", "CC-BY-3.0", "CC0"]
    assert mt.file_licence(rules, "usr/share/games/x/music/a.ogg") == "CC-BY-SA-3.0"
    assert mt.file_licence(rules, "usr/share/x/base/0music.pk3:music/special.ogg") == "CC-BY-3.0"
    assert mt.file_licence(rules, "usr/share/x/music/other2.ogg") == "CC-BY-3.0"
    assert mt.file_licence(rules, "usr/share/x/sounds/a.ogg") == "GPL-2+"
    assert mt.file_licence(mt.copyright_rules("not DEP-5 at all"), "a/b.ogg") is None


def test_trim_rules(mt):
    x = np.concatenate([np.zeros(2 * SR), music(50, 0), np.zeros(3 * SR)])
    a, b, dur, why = mt.trim(x, 600)
    assert why == "" and abs(a - 2 * SR) < SR // 50 and abs(dur - 50) < 0.1
    a, b, dur, why = mt.trim(x, 46)
    assert (b - a) == 46 * SR and dur > 46
    assert "shorter than 45 s" in mt.trim(music(40, 1), 600)[3]
    assert mt.trim(np.zeros(60 * SR, np.float32), 600)[3] == "silent"


def test_copies_of_one_recording_are_found(mt):
    x = music(90, 2)
    same = mt.match_score(mt.envelope(x), mt.envelope(x[5 * SR: 80 * SR] * 0.7))
    noisy = x + 0.01 * np.random.default_rng(3).standard_normal(x.size).astype(np.float32)
    other = mt.match_score(mt.envelope(x), mt.envelope(music(90, 4)))
    assert same > 0.95 and mt.match_score(mt.envelope(x), mt.envelope(noisy)) > 0.9
    assert other < 0.5
    d = mt.Dedupe()
    d.add("p:a", ["md5a"], x, mt.envelope(x))
    assert d.why_copy("p:b", "md5a", x, mt.envelope(x)).startswith("byte-identical to p:a")
    assert d.why_copy("p:b", "md5b", x, mt.envelope(x)).startswith("decoded audio identical")
    assert d.why_copy("p:b", "md5b", noisy, mt.envelope(noisy)).startswith("copy or same-timing")
    y = music(60, 5)
    assert d.why_copy("p:c", "md5c", y, mt.envelope(y)) == ""


def test_scan_writes_the_layout(mt, tmp_path):
    base = music(70, 10)
    files = {
        "usr/share/games/fake/music/theme.wav": base,
        "usr/share/games/fake/music/theme_fast.wav": base[: 50 * SR],  # shorter variant
        "usr/share/games/fake/music/theme_copy.wav": base * 0.9,  # same recording
        "usr/share/games/fake/music/jingle.wav": music(20, 11),
        "usr/share/games/fake/music/silence.wav": np.zeros(50 * SR, np.float32),
        "usr/share/games/fake/music/battle.wav": np.concatenate([np.zeros(SR), music(80, 12)]),
        "usr/share/games/fake/sounds/boom.wav": music(50, 13),  # not music: not selected
    }
    pkg = fake_package(mt, tmp_path, files, COPYRIGHT)
    source = mt.Source("fake-music", "heldout", "testing", r"/music/[^/]+\.wav$", "GPL-2+",
                       variants=r"_fast$")
    out = tmp_path / "out"
    build = mt.Build(out, ("heldout",), 60.0)
    assert build.scan(source, pkg, None, 0) == 2
    mt.write_tracks_csv(out, build.tracks)
    with open(out / "tracks.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == mt.COLUMNS
    assert [r["track"] for r in rows] == ["fake-music:battle", "fake-music:theme"]
    r = rows[1]
    assert r["path"] == "audio/fake-music/theme.wav" and r["set"] == "heldout"
    assert r["style"] == "testing" and r["version"] == "1.0-1"
    assert r["source"] == "usr/share/games/fake/music/theme.wav"
    assert r["licence"] == "CC-BY-SA-3.0" and float(r["duration_s"]) == 60.0
    info = sf.info(out / r["path"])
    assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
    assert abs(build.tracks[0].start_s - 1.0) < 0.05  # battle's silent second trimmed
    why = {src.rsplit("/", 1)[1]: reason for _, src, reason in build.manifest.skipped}
    assert why["theme_fast.wav"].startswith("variant of fake-music:theme")
    assert why["theme_copy.wav"].startswith("copy or same-timing variant of fake-music:theme")
    assert why["jingle.wav"].startswith("shorter than 45 s")
    assert why["silence.wav"] == "silent"
    per = mt.package_summary(build.tracks)
    assert per["fake-music"]["tracks"] == 2 and per["fake-music"]["minutes"] == 2.0
    assert per["fake-music"]["licences"] == ["CC-BY-SA-3.0"]
    totals = mt.set_totals(build.tracks, ["heldout"])
    assert totals == {"heldout": [2, 2.0]}
    notes = "\n".join(mt.summary_notes(per, totals, [(0.6, "a:x", "b:y")]))
    assert "| heldout | fake-music | testing | 1.0-1 | CC-BY-SA-3.0 | 2 | 2.0 |" in notes
    assert "heldout: 1 packages, 2 tracks, 2.0 minutes." in notes and "a:x ~ b:y" in notes


def test_small_limit_and_unwritten_sets(mt, tmp_path):
    files = {f"usr/share/fake/music/t{i}.wav": music(50, 20 + i) for i in range(5)}
    pkg = fake_package(mt, tmp_path, files)
    source = mt.Source("fake-music", "train", "testing", r"/music/[^/]+\.wav$", "GPL-2+")
    build = mt.Build(tmp_path / "out", ("heldout",), 60.0)
    assert build.scan(source, pkg, 3, 7) == 3  # a train package scanned only for duplicates
    assert build.tracks == [] and not (tmp_path / "out").exists()
    assert len(build.dedupe.envs) == 3
