"""The bad-input corpus (``tests/data/bad``, made by ``scripts/make_bad_corpus.py``).

Every broken, odd or hostile file goes through `zoo.audio.load`, one ``zoo tag`` batch and one
``zoo index`` run, mixed with good files. Each must give a clear `zoo.AudioError` naming the
file and the reason, or a warning; never a Python traceback, never NaN/inf in an output; and
the good files are always done. The CLI runs are subprocesses (what a user sees on stderr),
started once per module because each pays TensorFlow's start-up.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tracemalloc
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from script_modules import load_script

import zoo.search
from zoo import audio
from zoo.errors import AudioError, AudioWarning
from zoo.hub import resolve_config
from zoo.inference.tagging import patch_grid, patch_windows
from zoo.search.build import AUDIO_EXTENSIONS

corpus_script = load_script("make_bad_corpus")
Case = corpus_script.Case

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "data" / "bad"
CLIPS = REPO / "tests" / "data" / "clips"
GOOD = ("synth_music.flac", "real_rock_hedgewars.flac")
TAG_MODEL = "musicnn_mtt"
INDEX_MODEL = "musicnn_msd"
CLI_TIMEOUT = 600
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
ENCODER_DEPENDENT = (".opus",)  # made by the bundled libopus: not byte-stable across versions
# Python's own formatting of an uncaught exception or of a warning (file:line: Category: ...).
PYTHON_LEAKS = re.compile(r"Traceback \(most recent call last\)|\.py:\d+: \w*(Warning|Error)")

CORPUS_CASES = [Case(**c) for c in json.loads((CORPUS / corpus_script.MANIFEST).read_text(
    encoding="utf-8"))]
# Cases that cannot be committed: made in the temporary catalogue by the `catalogue` fixture.
LOOP = Case("live/loop.wav", "a symbolic link loop (loop.wav -> partner -> loop.wav)", "error",
            "symbolic link loop")
DANGLING = Case("live/dangling.flac", "a symbolic link to a file that does not exist", "error",
                "broken symbolic link (its target 'gone.flac' does not exist)")
UNREADABLE = Case("live/unreadable.wav", "a WAV without read permission (chmod 000)", "error",
                  "cannot read the file (Permission denied)")
# Root reads a chmod 000 file anyway: there is no failure to see, so that case is skipped.
LIVE_CASES = [LOOP, DANGLING] + ([] if IS_ROOT else [UNREADABLE])
CASES = CORPUS_CASES + LIVE_CASES  # what the CLI runs are given
PARAMS = [pytest.param(c, id=c.file) for c in CORPUS_CASES + [LOOP, DANGLING]] + [
    pytest.param(UNREADABLE, id=UNREADABLE.file,
                 marks=pytest.mark.skipif(IS_ROOT, reason="root reads a chmod 000 file"))]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"JSON output holds {name}")


def _read_json(path: Path) -> Any:
    """JSON, refusing NaN / Infinity (which json.dumps writes and json.loads accepts)."""
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)


def _zoo(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, "-m", "zoo.cli", *args], capture_output=True,
                          encoding="utf-8", errors="replace", env=env, cwd=REPO,
                          timeout=CLI_TIMEOUT, check=False)


@dataclass
class Run:
    """One CLI run: its exit status and stderr, and its outputs by file."""

    returncode: int
    stderr: str
    done: dict[str, Any]  # file -> its JSON entry / index position
    failed: dict[str, str]  # file -> error text


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory) -> Path:
    """The corpus, the live cases and the good clips in one folder (the good ones in good/)."""
    root = tmp_path_factory.mktemp("catalogue") / "bad music"
    shutil.copytree(CORPUS, root)  # cases.json comes along: not an audio name, to be ignored
    live = root / "live"
    live.mkdir()
    (live / "partner").symlink_to("loop.wav")
    (live / "loop.wav").symlink_to("partner")
    (live / "dangling.flac").symlink_to("gone.flac")
    if not IS_ROOT:
        shutil.copy(CLIPS / "synth_noise.flac", live / "unreadable.wav")
        (live / "unreadable.wav").chmod(0)
    (root / "good").mkdir()
    for name in GOOD:
        shutil.copy(CLIPS / name, root / "good" / name)
    yield root
    if not IS_ROOT:
        (live / "unreadable.wav").chmod(0o644)  # so that pytest can clean up


@pytest.fixture(scope="module")
def tag_run(catalogue, tmp_path_factory) -> Run:
    """``zoo tag`` over every case and the good clips, in one batch, with ``--json``."""
    out = tmp_path_factory.mktemp("tag") / "tags.json"
    files = [str(catalogue / c.file) for c in CASES] + [str(catalogue / "good" / g) for g in GOOD]
    proc = _zoo("tag", *files, "--model", TAG_MODEL, "--json", str(out))
    assert out.is_file(), proc.stderr[-3000:]
    doc = _read_json(out)
    return Run(proc.returncode, proc.stderr, {f["source"]: f for f in doc["files"]},
               {f["file"]: f["error"] for f in doc["failed"]})


@pytest.fixture(scope="module")
def index_run(catalogue, tmp_path_factory) -> Run:
    """``zoo index`` over the whole catalogue folder."""
    out = tmp_path_factory.mktemp("index") / "bad.idx"
    proc = _zoo("index", str(catalogue), "--out", str(out), "--model", INDEX_MODEL, "-q")
    assert (out / "manifest.json").is_file(), proc.stderr[-3000:]
    manifest = _read_json(out / "manifest.json")
    index = zoo.search.load_index(out)
    assert np.isfinite(np.asarray(index.vectors)).all()
    assert index.segments is not None and np.isfinite(np.asarray(index.segments)).all()
    return Run(proc.returncode, proc.stderr, {f.path: i for i, f in enumerate(index.files)},
               {f["path"]: f["error"] for f in manifest["failed"]})


def _load(path: Path, case: Case) -> list[str]:
    """`zoo.audio.load` as the case says; returns the AudioWarnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if case.load == "error":
            with pytest.raises(AudioError) as excinfo:
                audio.load(path)
            err = excinfo.value
            assert type(err) is AudioError and err.source == str(path), str(err)
            assert case.reason in err.reason, str(err)
            if os.path.lexists(path):  # libsndfile's "File does not exist" misleads here
                assert "not exist or is not a regular file" not in err.reason
        else:
            y = audio.load(path)
            assert y.dtype == np.float32 and y.ndim == 1 and len(y) > 0
            assert np.isfinite(y).all() and np.abs(y).max() <= 1.0
    return [str(w.message) for w in caught if issubclass(w.category, AudioWarning)]


@pytest.mark.parametrize("case", PARAMS)
def test_each_case_through_load_tag_and_index(case, catalogue, tag_run, index_run):
    path = catalogue / case.file
    rel = Path(case.file).as_posix()

    # 1. zoo.audio.load
    messages = _load(path, case)
    if case.load == "warn":
        assert any(m.startswith(f"{path}: ") and case.reason in m for m in messages), messages
    else:
        assert messages == [], messages

    # 2. zoo tag (one batch with the good files)
    if case.load == "error":
        assert str(path) not in tag_run.done
        error = tag_run.failed[str(path)]
        assert error.startswith(f"{path}: ") and case.reason in error, error
        assert f"zoo: FAILED {path}: " in tag_run.stderr
    else:
        assert str(path) not in tag_run.failed, tag_run.failed.get(str(path))
        entry = tag_run.done[str(path)]
        probabilities = np.asarray(entry["probabilities"], dtype=np.float64)
        assert probabilities.ndim == 2 and probabilities.shape[0] >= 1
        assert np.isfinite(probabilities).all()
        assert ((probabilities >= 0) & (probabilities <= 1)).all()
        # The Taggram's own doubts (silent, shorter than one patch) and the decoder's warning
        expected = [case.tag_warning] if case.tag_warning else []
        expected += [case.reason] if case.load == "warn" else []
        assert len(entry["warnings"]) == len(expected), entry["warnings"]
        assert all(any(e in w for w in entry["warnings"]) for e in expected), entry["warnings"]
        if case.load == "warn":  # the decoder's warning, printed as one line
            assert any(ln.startswith(f"zoo: warning: {path}: ") and case.reason in ln
                       for ln in tag_run.stderr.splitlines())

    # 3. zoo index over the whole folder (which names files by their resolved path)
    path = catalogue.resolve() / case.file
    if case.load == "error":
        assert rel not in index_run.done
        assert case.reason in index_run.failed[rel], index_run.failed[rel]
        assert f"zoo: FAILED {path}: " in index_run.stderr
    else:
        assert rel not in index_run.failed, index_run.failed.get(rel)
        assert rel in index_run.done
        for expected in (case.reason if case.load == "warn" else None, case.tag_warning):
            if expected:
                lines = [ln for ln in index_run.stderr.splitlines()
                         if ln.startswith(f"zoo: warning: {path}: ")]
                assert any(expected in ln for ln in lines), lines


def test_batches_finish_good_files_without_tracebacks(tag_run, index_run, catalogue):
    for run in (tag_run, index_run):
        assert run.returncode == 1, run.stderr[-3000:]  # some failed: status 1, not a crash
        assert not PYTHON_LEAKS.search(run.stderr), PYTHON_LEAKS.search(run.stderr)
    for name in GOOD:
        entry = tag_run.done[str(catalogue / "good" / name)]
        assert entry["warnings"] == [] and len(entry["probabilities"]) >= 3
        assert f"good/{name}" in index_run.done
    # Exactly the cases that must fail did, in both runs (cases.json, not audio, is ignored).
    failing = {c.file for c in CASES if c.load == "error"}
    assert set(index_run.failed) == failing
    assert set(tag_run.failed) == {str(catalogue / f) for f in failing}
    assert len(index_run.done) == len(CASES) - len(failing) + len(GOOD)


def test_corpus_is_what_the_script_makes(tmp_path):
    def digest(folder: Path) -> dict[str, str]:
        return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    cases = corpus_script.build(tmp_path / "bad")
    made, committed = digest(tmp_path / "bad"), digest(CORPUS)
    assert made.keys() == committed.keys()
    # Opus bytes depend on the libopus that soundfile's wheel bundles (they changed between
    # soundfile 0.13 and 0.14): there, the rebuilt file must fail or warn as the case says.
    differ = sorted(name for name in made if made[name] != committed[name])
    assert all(name.endswith(ENCODER_DEPENDENT) for name in differ), differ
    by_file = {c.file: c for c in cases}
    for name in differ:
        case = by_file[name]
        messages = _load(tmp_path / "bad" / name, case)
        if case.load == "warn":
            assert any(case.reason in m for m in messages), (name, messages)
    assert [c.file for c in cases] == [c.file for c in CORPUS_CASES]
    assert tuple(sorted(AUDIO_EXTENSIONS)) == corpus_script.AUDIO_EXTENSIONS
    assert sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file()) < 600 * 1024
    assert {c.load for c in cases} == {"error", "warn", "ok"}
    assert all(c.reason for c in cases if c.load != "ok")


def test_two_hours_are_decoded_and_patched_in_bounded_memory(tmp_path):
    """2 h at 8 kHz, 16-bit FLAC: 440 MiB once decoded at the model's 16 kHz (float32). Decoding
    and patching it as zoo.tag does must hold only a few blocks and patches at a time."""
    sr, seconds = 8000, 7200
    path = tmp_path / "two hours.flac"
    piece = (0.3 * np.sin(2 * np.pi * 440 * np.arange(10 * sr) / sr)).astype(np.float32)
    with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as f:
        for _ in range(seconds // 10):
            f.write(piece)
    decoded = seconds * 16000 * 4
    config = resolve_config(TAG_MODEL)
    grid = patch_grid(config.preprocessing, 3.0)

    tracemalloc.start()
    try:
        total = 0
        for block in audio.stream(path, sr=16000, block_samples=16000 * 30):
            assert np.isfinite(block).all()
            total += len(block)
        _, stream_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        starts = []
        for start, window, _ in patch_windows(path, config, grid):
            assert np.isfinite(window).all()
            starts.append(start)
        _, patch_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(total - seconds * 16000) <= 1
    assert starts == grid.start_frames(seconds * 16000)
    for peak in (stream_peak, patch_peak):
        assert peak < 32 * 2**20 and peak < decoded / 10, f"peak {peak / 2**20:.1f} MiB"
