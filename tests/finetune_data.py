"""Tiny datasets in the standard layouts and a tiny random-weight preset, for the fine-tuning
tests (made with numpy and soundfile in a few milliseconds)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 8000


def tone(label_index: int, seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    """A class-dependent tone in noise: class ``i`` sits at ``300 * (i + 1)`` Hz."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 300 * (label_index + 1) * t) + 0.02 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def write(path: Path, x: np.ndarray, sr: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x, sr, subtype="PCM_16")
    return path


def write_esc50_meta(root: Path, rows: list[dict]) -> None:
    """``root/meta/esc50.csv`` from dict rows (their keys are the columns)."""
    (root / "meta").mkdir(parents=True, exist_ok=True)
    with open(root / "meta" / "esc50.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def make_gtzan(root: Path, labels=("jazz", "rock", "pop"), per_label: int = 5,
               split_lists: bool = False) -> Path:
    """``root/genres/<label>/<label>.0000N.wav`` (+ train/valid/test.txt: 3/1/1 per label)."""
    lists: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for i, label in enumerate(labels):
        for n in range(per_label):
            rel = f"genres/{label}/{label}.{n:05d}.wav"
            write(root / rel, tone(i, 1.5, 100 * i + n))
            lists["train" if n < per_label - 2 else "valid" if n == per_label - 2 else "test"
                  ].append(rel)
    if split_lists:
        for name, rels in lists.items():
            (root / f"{name}.txt").write_text("\n".join(rels) + "\n")
    return root


def make_esc50(root: Path, classes=("dog", "rain", "siren"), folds: int = 5) -> Path:
    """``root/audio/{fold}-{src}-A-{target}.wav`` + ``meta/esc50.csv``, one clip per class and
    fold."""
    rows = []
    for target, category in enumerate(classes):
        for fold in range(1, folds + 1):
            name = f"{fold}-{target}{fold}-A-{target}.wav"
            write(root / "audio" / name, tone(target, 1.0, 10 * target + fold))
            rows.append({"filename": name, "fold": fold, "target": target,
                         "category": category, "esc10": "False", "src_file": f"{target}{fold}",
                         "take": "A"})
    write_esc50_meta(root, rows)
    return root


def make_us8k(root: Path, classes=("car_horn", "drilling"), folds: int = 10) -> Path:
    """``root/audio/fold<N>/{fsID}-{classID}-0-0.wav`` + ``metadata/UrbanSound8K.csv``."""
    rows = []
    for class_id, name in enumerate(classes):
        for fold in range(1, folds + 1):
            fs_id = 100 * class_id + fold
            fname = f"{fs_id}-{class_id}-0-0.wav"
            write(root / "audio" / f"fold{fold}" / fname,
                  tone(class_id, 0.3 + 0.05 * fold, fs_id))
            rows.append({"slice_file_name": fname, "fsID": fs_id, "start": 0.0, "end": 0.5,
                         "salience": 1, "fold": fold, "classID": class_id, "class": name})
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    with open(root / "metadata" / "UrbanSound8K.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


def make_speech_commands(root: Path, words=("yes", "no", "up", "cat", "dog"),
                         speakers: int = 6) -> Path:
    """``root/<word>/<speaker>_nohash_0.wav`` (1 s at 16 kHz), list files (speaker 4 valid,
    speaker 5 test) and ``_background_noise_/white_noise.wav``."""
    valid, test = [], []
    for i, word in enumerate(words):
        for s in range(speakers):
            rel = f"{word}/spk{s}_nohash_0.wav"
            write(root / rel, tone(i, 1.0, 1000 * i + s, 16000), 16000)
            (valid if s == speakers - 2 else test if s == speakers - 1 else []).append(rel)
    (root / "validation_list.txt").write_text("\n".join(valid) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    noise = 0.05 * np.random.default_rng(0).standard_normal(3 * 16000)
    write(root / "_background_noise_" / "white_noise.wav", noise.astype(np.float32), 16000)
    return root


def make_tiny_preset(directory: Path, architecture: str = "musicnn") -> Path:
    """A random-weight musicnn (or vgg) preset small enough to train in a test (0.5-s
    patches)."""
    from zoo.hub.saving import save_preset
    from zoo.models.pipeline import build_backbone
    from zoo.models.zoo_model import ZooModel
    from zoo.presets import Preprocessing, PresetConfig, WeightsRef

    if architecture == "musicnn":
        prep = Preprocessing(sample_rate=8000, n_fft=256, hop_length=128, n_mels=24,
                             fmax=4000.0, patch_frames=32)
        arch_config = {"n_mels": 24, "n_frames": 32, "midend_filters": 8, "dense_units": 16}
    else:  # vgg's five poolings need >= 64 bands and 96 frames (1.5-s patches)
        prep = Preprocessing(sample_rate=8000, n_fft=512, hop_length=128, n_mels=64,
                             fmax=4000.0, patch_frames=96)
        arch_config = {"n_mels": 64, "n_frames": 96, "filters": 8}
    config = PresetConfig(
        name=f"tiny_{architecture}", description=f"tiny random {architecture} for tests",
        architecture=architecture, architecture_config=arch_config,
        preprocessing=prep, tags=("t0", "t1"), weights=WeightsRef(file=None))
    backbone = build_backbone(config)
    return save_preset(ZooModel(config, backbone=backbone), directory)
