"""Find a preset's weights file and verify it before anything loads it.

Resolution order: the preset's own directory (user presets) or the shipped ``weights/`` folder;
every file is checked against the sha256 its config records.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from zoo.errors import WeightsError
from zoo.presets import PresetConfig, shipped_dir

_CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike, expected: str | None, what: str) -> None:
    """Raise `WeightsError` unless the file's sha256 is ``expected`` (skipped if None)."""
    if expected is None:
        return
    actual = file_sha256(path)
    if actual != expected.lower():
        raise WeightsError(
            f"{what}: {os.fspath(path)} has sha256 {actual}, expected {expected}; the file is "
            "corrupted or not the published one: refusing to load it"
        )


def resolve_weights(config: PresetConfig) -> Path:
    """Path of a verified weights file for ``config``.

    Raises:
        WeightsError: no weights are published for the preset, the file is missing, or its
            sha256 does not match.
    """
    ref = config.weights
    if ref.file is None:
        raise WeightsError(
            f"no pretrained weights are available for preset {config.name!r}: "
            f"{config.source.get('checkpoint', 'they were not published')}. If you have the "
            f"original TF1 checkpoint folder, pass it: zoo.load({config.name!r}, "
            "checkpoint='/path/to/checkpoint_dir/')"
        )
    folder = Path(config.root) if config.root else shipped_dir()
    path = folder / ref.file
    if not path.is_file():
        raise WeightsError(f"weights of preset {config.name!r} not found at {path}")
    verify_sha256(path, ref.sha256, f"preset {config.name!r}")
    return path
