"""Readers for the standard labelled-audio layouts, and a tf.data pipeline of model patches.

Every reader returns a `ClipDataset`: the clips (path, label, fold or split, optional crop), the
class names in a fixed order, and the problems found while reading (listed files that are missing:
reported and skipped). Audio is decoded with `zoo.audio` when it is used, resampled to the model's
rate, and cut into patches by `zoo.inference.patching` on the grid `zoo.tag` uses, so training sees
exactly what inference sees. A file that cannot be decoded is reported and skipped there too.

Example:
    >>> data = read_esc50("/data/ESC-50")
    >>> data.classes[:3], len(data.clips), data.folds
    (('dog', 'rooster', 'pig'), 2000, (1, 2, 3, 4, 5))
"""

from __future__ import annotations

import csv
import dataclasses
import os
import random
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo import audio
from zoo.errors import AudioError
from zoo.inference.patching import iter_patches
from zoo.presets import Preprocessing

SPLITS = ("train", "valid", "test")
AUDIO_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
SPEECH_COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN, SILENCE = "unknown", "silence"
BACKGROUND_DIR = "_background_noise_"
# A silence clip without background-noise files: digital silence of this path.
DIGITAL_SILENCE = "<silence>"


@dataclass(frozen=True)
class Clip:
    """One labelled clip.

    Attributes:
        path: the audio file (or `DIGITAL_SILENCE`).
        label: class name.
        fold: cross-validation fold (ESC-50, UrbanSound8K), else None.
        split: ``"train"``, ``"valid"`` or ``"test"`` (GTZAN, Speech Commands), else None.
        offset: start (s) of the crop of ``path`` to use.
        duration: length (s) of the crop; None: to the end.
        gain_db: gain applied after decoding (silence crops at many levels), dB.
    """

    path: str
    label: str
    fold: int | None = None
    split: str | None = None
    offset: float = 0.0
    duration: float | None = None
    gain_db: float = 0.0

    @property
    def key(self) -> str:
        """Identifies the clip's audio (a crop of a file is its own clip)."""
        key = self.path
        if self.offset or self.duration is not None:
            key = f"{key}@{self.offset:.3f}+{self.duration}"
        if self.gain_db:
            key = f"{key}{self.gain_db:+.1f}dB"
        return key


@dataclass
class ClipDataset:
    """Clips of one dataset with their class names (index = label id).

    Attributes:
        name: the layout (``gtzan``, ``esc50``, ``urbansound8k``, ``speech_commands``).
        clips: the clips.
        classes: class names; a clip's label id is its index here.
        problems: ``(path, reason)`` of listed files that were skipped.
        noise_files: background-noise recordings for augmentation (Speech Commands).
    """

    name: str
    clips: list[Clip]
    classes: tuple[str, ...]
    problems: list[tuple[str, str]] = field(default_factory=list)
    noise_files: list[str] = field(default_factory=list)

    @property
    def folds(self) -> tuple[int, ...]:
        """The folds present (empty for split datasets)."""
        return tuple(sorted({c.fold for c in self.clips if c.fold is not None}))

    def label_ids(self, clips: Sequence[Clip]) -> np.ndarray:
        index = {name: i for i, name in enumerate(self.classes)}
        return np.array([index[c.label] for c in clips], np.int64)

    def split(self, name: str) -> list[Clip]:
        return [c for c in self.clips if c.split == name]

    def fold(self, fold: int, exclude: bool = False) -> list[Clip]:
        return [c for c in self.clips if (c.fold == fold) != exclude]


def report_problem(path: str, reason: str) -> None:
    """Tell the user about a skipped file (stderr), without stopping the run."""
    print(f"zoo: skipped {path}: {reason}", file=sys.stderr)


def _listed(root: Path, path: Path, problems: list) -> bool:
    if path.is_file():
        return True
    problems.append((str(path), "listed in the metadata but missing"))
    report_problem(str(path), "listed in the metadata but missing")
    return False


def stratified_split(clips: Sequence[Clip], fractions: Sequence[float] = (0.6, 0.2, 0.2),
                     seed: int = 1234, names: Sequence[str] = SPLITS) -> list[Clip]:
    """Assign splits per class in the given proportions, shuffled with a fixed seed.

    Returns:
        The clips with ``split`` set (same order as given).
    """
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, clip in enumerate(clips):
        by_label[clip.label].append(i)
    rng = random.Random(seed)
    assigned: dict[int, str] = {}
    for label in sorted(by_label):
        members = sorted(by_label[label], key=lambda i: clips[i].path)
        rng.shuffle(members)
        bounds = np.round(np.cumsum(fractions) / sum(fractions) * len(members)).astype(int)
        start = 0
        for name, end in zip(names, bounds, strict=True):
            for i in members[start:end]:
                assigned[i] = name
            start = end
    return [Clip(c.path, c.label, c.fold, assigned[i], c.offset, c.duration)
            for i, c in enumerate(clips)]


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def read_gtzan(root: str | os.PathLike, split_dir: str | os.PathLike | None = None,
               seed: int = 1234, fractions: Sequence[float] = (0.6, 0.2, 0.2)) -> ClipDataset:
    """GTZAN layout: ``root/genres/<label>/*.{wav,au}``.

    Splits come from ``train.txt``, ``valid.txt``, ``test.txt`` in ``split_dir`` (default
    ``root``) when they exist (e.g. the fault-filtered lists; lines are paths relative to ``root``
    or to ``genres/``; a listed ``.wav`` also matches the ``.au`` of the same name; files in no
    list are left out); otherwise a stratified split with a fixed seed.

    Args:
        root: the folder that holds ``genres/``.
        split_dir: where the split lists are.
        seed: seed of the stratified split.
        fractions: train/valid/test proportions of the stratified split.

    Returns:
        A `ClipDataset` with ``split`` set.

    Raises:
        FileNotFoundError: no ``genres/`` folder.
    """
    root = Path(root)
    genres = root / "genres"
    if not genres.is_dir():
        raise FileNotFoundError(f"{genres}: no genres/ folder (GTZAN layout: genres/<label>/*.wav)")
    labels = sorted(p.name for p in genres.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = {p.resolve(): label for label in labels for p in _audio_files(genres / label)}
    problems: list[tuple[str, str]] = []
    lists_dir = Path(split_dir) if split_dir is not None else root
    lists = {name: lists_dir / f"{name}.txt" for name in SPLITS}
    if all(p.is_file() for p in lists.values()):
        by_stem = {(p.parent.name, p.stem): p for p in files}
        clips = []
        for name, list_path in lists.items():
            for line in list_path.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if not line:
                    continue
                rel = Path(line)
                candidates = [root / rel, genres / rel]
                found = next((p.resolve() for p in candidates if p.is_file()), None)
                if found is None:
                    found = by_stem.get((rel.parent.name, rel.stem))
                if found is None or found not in files:
                    problems.append((line, f"listed in {list_path.name} but missing"))
                    report_problem(line, f"listed in {list_path.name} but missing")
                    continue
                clips.append(Clip(str(found), files[found], split=name))
    else:
        clips = stratified_split([Clip(str(p), label) for p, label in sorted(files.items())],
                                 fractions, seed)
    return ClipDataset("gtzan", clips, tuple(labels), problems)


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: metadata file not found")
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _classes_by_id(rows: list[dict[str, str]], id_key: str, name_key: str) -> tuple[str, ...]:
    names = {int(r[id_key]): r[name_key] for r in rows}
    return tuple(names[i] for i in sorted(names))


def read_esc50(root: str | os.PathLike) -> ClipDataset:
    """ESC-50 layout: ``root/audio/*.wav`` + ``root/meta/esc50.csv`` (filename, fold, target,
    category); classes ordered by ``target``; 5 folds for cross-validation.

    Raises:
        FileNotFoundError: no ``meta/esc50.csv``.
    """
    root = Path(root)
    rows = _read_csv(root / "meta" / "esc50.csv")
    problems: list[tuple[str, str]] = []
    clips = [Clip(str(root / "audio" / r["filename"]), r["category"], fold=int(r["fold"]))
             for r in rows if _listed(root, root / "audio" / r["filename"], problems)]
    return ClipDataset("esc50", clips, _classes_by_id(rows, "target", "category"), problems)


def read_urbansound8k(root: str | os.PathLike) -> ClipDataset:
    """UrbanSound8K layout: ``root/audio/fold<N>/*.wav`` + ``root/metadata/UrbanSound8K.csv``;
    classes ordered by ``classID``; 10 folds.

    Raises:
        FileNotFoundError: no ``metadata/UrbanSound8K.csv``.
    """
    root = Path(root)
    rows = _read_csv(root / "metadata" / "UrbanSound8K.csv")
    problems: list[tuple[str, str]] = []
    clips = []
    for r in rows:
        path = root / "audio" / f"fold{int(r['fold'])}" / r["slice_file_name"]
        if _listed(root, path, problems):
            clips.append(Clip(str(path), r["class"], fold=int(r["fold"])))
    return ClipDataset("urbansound8k", clips, _classes_by_id(rows, "classID", "class"), problems)


def _read_list(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def read_speech_commands(root: str | os.PathLike, task: str = "12", seed: int = 2017,
                         unknown_ratio: float = 1.0, silence_ratio: float = 1.0) -> ClipDataset:
    """Speech Commands v0.02 layout: ``root/<word>/*.wav``, ``validation_list.txt``,
    ``testing_list.txt`` (``<word>/<file>`` lines; everything else is training) and
    ``_background_noise_/``.

    Args:
        root: the dataset folder.
        task: ``"12"``: the 10 command words + ``unknown`` (every other word, subsampled per
            split to ``unknown_ratio`` x the mean count of a command word) + ``silence`` (1-s
            crops of the background-noise files, ``silence_ratio`` x that count);
            ``"35"``: every word is a class, plus ``silence`` (``silence_ratio`` x the mean
            count of a word; ``silence_ratio=0`` for the words only): 1-s crops of the
            background-noise files at levels from -100 dB to 0 dB of the file's own, one crop in
            ten digital silence, and the noise *files* held out by split (every fifth file
            validates, the next tests), so the test's noise is noise the model never heard.
        seed: seed of the subsampling and of the silence crops.
        unknown_ratio: see ``task``.
        silence_ratio: see ``task``.

    Returns:
        A `ClipDataset` with ``split`` set and ``noise_files`` for augmentation.

    Raises:
        ValueError: unknown task. FileNotFoundError: no word folders.
    """
    if task not in ("12", "35"):
        raise ValueError(f"task must be '12' or '35', got {task!r}")
    root = Path(root)
    words = sorted(p.name for p in root.iterdir()
                   if p.is_dir() and not p.name.startswith((".", "_")) and _audio_files(p))
    if not words:
        raise FileNotFoundError(f"{root}: no <word>/*.wav folders (Speech Commands layout)")
    valid, test = _read_list(root / "validation_list.txt"), _read_list(root / "testing_list.txt")
    noise_dir = root / BACKGROUND_DIR
    noise = [str(p) for p in _audio_files(noise_dir)] if noise_dir.is_dir() else []
    clips = []
    for word in words:
        for path in _audio_files(root / word):
            rel = f"{word}/{path.name}"
            split = "valid" if rel in valid else "test" if rel in test else "train"
            clips.append(Clip(str(path), word, split=split))
    if task == "35":
        if silence_ratio <= 0:
            return ClipDataset("speech_commands", clips, tuple(words), [], noise)
        rng = random.Random(seed)
        held_out = held_out_noise(noise)
        for split in SPLITS:
            per_word = sum(c.split == split for c in clips) / len(words)
            clips += _silence_clips(held_out[split], round(silence_ratio * per_word), split,
                                    rng, levels=True)
        return ClipDataset("speech_commands", clips, (*words, SILENCE), [], noise)

    rng = random.Random(seed)
    out: list[Clip] = []
    for split in SPLITS:
        members = [c for c in clips if c.split == split]
        known = [c for c in members if c.label in SPEECH_COMMANDS]
        others = [Clip(c.path, UNKNOWN, split=split) for c in members
                  if c.label not in SPEECH_COMMANDS]
        per_word = len(known) / max(1, len({c.label for c in known}))
        n_unknown = min(len(others), round(unknown_ratio * per_word))
        out += known + rng.sample(others, n_unknown)
        out += _silence_clips(noise, round(silence_ratio * per_word), split, rng)
    present = [w for w in SPEECH_COMMANDS if w in words]
    return ClipDataset("speech_commands", out, (*present, UNKNOWN, SILENCE), [], noise)


def held_out_noise(noise: Sequence[str]) -> dict[str, list[str]]:
    """Background-noise files per split: sorted, every fifth (from the fourth) validates and
    every fifth (from the fifth) tests, so no split hears another's noise; with fewer than
    three files all splits share them."""
    files = sorted(noise)
    if len(files) < 3:
        return {split: files for split in SPLITS}
    out: dict[str, list[str]] = {split: [] for split in SPLITS}
    for i, path in enumerate(files):
        out[{3: "valid", 4: "test"}.get(i % 5, "train")].append(path)
    for split in ("valid", "test"):  # three or four files: one each from training
        if not out[split]:
            out[split].append(out["train"].pop())
    return out


def _silence_clips(noise: list[str], n: int, split: str, rng: random.Random,
                   levels: bool = False) -> list[Clip]:
    """``n`` random 1-s crops of the background-noise files (digital silence if none); with
    ``levels``, at random gains from -100 to 0 dB, one in ten digital silence instead."""
    if levels:
        out = []
        for crop in _silence_clips(noise, n, split, rng):
            if crop.path != DIGITAL_SILENCE and rng.random() < 0.1:
                crop = Clip(DIGITAL_SILENCE, SILENCE, split=split, duration=1.0)
            elif crop.path != DIGITAL_SILENCE:
                crop = dataclasses.replace(crop, gain_db=round(rng.uniform(-100.0, 0.0), 1))
            out.append(crop)
        return out
    if not noise:
        return [Clip(DIGITAL_SILENCE, SILENCE, split=split, duration=1.0) for _ in range(n)]
    lengths = []
    for path in noise:
        try:
            lengths.append(audio.info(path).duration)
        except AudioError as err:
            report_problem(path, str(err))
            lengths.append(0.0)
    usable = [(p, d) for p, d in zip(noise, lengths, strict=True) if d > 1.0]
    if not usable:
        return [Clip(DIGITAL_SILENCE, SILENCE, split=split, duration=1.0) for _ in range(n)]
    crops = []
    for _ in range(n):
        path, dur = rng.choice(usable)
        crops.append(Clip(path, SILENCE, split=split,
                          offset=round(rng.uniform(0.0, dur - 1.0), 3), duration=1.0))
    return crops


def decode_clip(clip: Clip, sample_rate: int) -> np.ndarray:
    """The clip's audio, mono float32 at ``sample_rate``.

    Raises:
        AudioError: the file cannot be decoded or is empty.
    """
    if clip.path == DIGITAL_SILENCE:
        return np.zeros(round((clip.duration or 1.0) * sample_rate), np.float32)
    signal = audio.load(clip.path, sr=sample_rate, offset=clip.offset, duration=clip.duration)
    if clip.gain_db:
        signal = (signal * np.float32(10.0 ** (clip.gain_db / 20.0))).astype(np.float32)
    return signal


def clip_patches(signal: np.ndarray, prep: Preprocessing, hop_seconds: float,
                 short_clips: str = "tile") -> np.ndarray:
    """Cut a decoded signal into model patches, exactly as `zoo.tag` does with a preset whose
    rule for clips shorter than a patch is ``short_clips`` (`zoo.presets.Application`: the
    fine-tuned preset's own rule, so training sees what application will).

    Returns:
        ``(patches, patch_samples)`` float32.

    Raises:
        AudioError: empty signal.
    """
    from zoo.inference.tagging import patch_grid

    grid = patch_grid(prep, hop_seconds, short_clips=short_clips)
    windows = [w for _, w, _ in iter_patches([signal], grid)]
    if not windows:
        raise AudioError("<clip>", "no audio samples")
    return np.stack(windows)


def iter_clip_patches(clips: Sequence[Clip], prep: Preprocessing, hop_seconds: float,
                      on_error: Callable[[Clip, str], None] | None = None,
                      short_clips: str = "tile") -> Iterator[tuple[int, np.ndarray]]:
    """``(clip index, patches)`` for every clip that decodes (`clip_patches`); the others go to
    ``on_error`` (default: `report_problem`) and are skipped."""
    for i, clip in enumerate(clips):
        try:
            patches = clip_patches(decode_clip(clip, prep.sample_rate), prep, hop_seconds,
                                   short_clips)
        except (AudioError, OSError, ValueError) as err:
            (on_error or (lambda c, r: report_problem(c.path, r)))(clip, str(err))
            continue
        yield i, patches


def load_noise(paths: Sequence[str], sample_rate: int) -> list[np.ndarray]:
    """Decode background-noise recordings once (bad ones reported and skipped)."""
    noise = []
    for path in paths:
        try:
            signal = audio.load(path, sr=sample_rate)
        except AudioError as err:
            report_problem(path, str(err))
            continue
        if signal.size:
            noise.append(signal)
    return noise


def mix_noise(patch: np.ndarray, noise: Sequence[np.ndarray], rng: np.random.Generator,
              probability: float = 0.8, max_gain: float = 0.1) -> np.ndarray:
    """Add a random crop of a random noise recording, at a random gain up to ``max_gain``, with
    the given probability (the augmentation of the Speech Commands baselines)."""
    if not noise or rng.random() >= probability:
        return patch
    source = noise[rng.integers(len(noise))]
    if source.size < patch.size:
        source = np.resize(source, patch.size)
    start = rng.integers(source.size - patch.size + 1)
    mixed = patch + rng.uniform(0.0, max_gain) * source[start:start + patch.size]
    return np.clip(mixed, -1.0, 1.0).astype(np.float32)


def count_patches(clips: Sequence[Clip], prep: Preprocessing, hop_seconds: float) -> int:
    """Patches the clips give on `zoo.tag`'s grid, from their headers (no decoding); clips
    whose header cannot be read count 0 (they are reported when decoded)."""
    from zoo.inference.tagging import patch_grid

    grid = patch_grid(prep, hop_seconds)
    total = 0
    for clip in clips:
        seconds = clip.duration
        if seconds is None:
            try:
                seconds = audio.info(clip.path).duration - clip.offset
            except (AudioError, OSError):
                continue
        n = round(seconds * prep.sample_rate)
        total += 1 if n < grid.min_samples() else len(grid.start_frames(n))
    return total


def patch_dataset(clips: Sequence[Clip], labels: np.ndarray, prep: Preprocessing,
                  hop_seconds: float, batch_size: int = 32, shuffle: bool = True, seed: int = 0,
                  noise: Sequence[np.ndarray] = (), noise_probability: float = 0.8,
                  max_noise_gain: float = 0.1, short_clips: str = "tile"):
    """A ``tf.data.Dataset`` of ``(waveform patch, label id)`` batches for end-to-end training.

    Clips are decoded and patched in Python (`zoo.audio`, `zoo.inference.patching`) on every pass,
    so memory stays bounded; each patch carries its clip's label. Unreadable clips are reported
    once and skipped. The dataset repeats forever (a new shuffle every pass): give Keras the
    returned steps per epoch.

    Args:
        clips: the clips.
        labels: their label ids.
        prep: the model's preprocessing.
        hop_seconds: hop between patches.
        batch_size: patches per batch.
        shuffle: shuffle the clip order every pass (and patches in a buffer).
        seed: seed of the shuffles and of the noise mixing.
        noise: decoded background noise to mix into training patches (`load_noise`).
        noise_probability: share of patches that get noise.
        max_noise_gain: largest noise gain.

    Returns:
        ``(dataset, steps)``: a batched, prefetching, repeating ``tf.data.Dataset`` and the
        batches of one pass over the clips.
    """
    import tensorflow as tf

    reported: set[str] = set()
    passes = [0]

    def on_error(clip: Clip, reason: str) -> None:
        if clip.key not in reported:
            reported.add(clip.key)
            report_problem(clip.path, reason)

    def generate():
        while True:  # one pass per loop; Keras cuts epochs by steps
            rng = np.random.default_rng(seed + passes[0])
            passes[0] += 1
            order = rng.permutation(len(clips)) if shuffle else np.arange(len(clips))
            ordered = [clips[i] for i in order]
            produced = False
            for j, patches in iter_clip_patches(ordered, prep, hop_seconds, on_error,
                                                short_clips):
                label = labels[order[j]]
                for patch in patches:
                    produced = True
                    yield mix_noise(patch, noise, rng, noise_probability, max_noise_gain), label
            if not produced:
                return

    signature = (tf.TensorSpec((prep.patch_samples,), tf.float32), tf.TensorSpec((), tf.int64))
    ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
    if shuffle:
        ds = ds.shuffle(8 * batch_size, seed=seed)
    steps = max(1, -(-count_patches(clips, prep, hop_seconds) // batch_size))
    return ds.batch(batch_size).prefetch(2), steps


READERS: dict[str, Callable[..., ClipDataset]] = {
    "genre": read_gtzan,
    "esc50": read_esc50,
    "urbansound8k": read_urbansound8k,
    "speech_commands": read_speech_commands,
}
