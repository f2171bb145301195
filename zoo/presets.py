"""The preset registry: every pretrained model, with the preprocessing it was trained with.

A preset is a JSON document (``weights/<name>.json`` for the shipped ones, ``config.json`` in a
directory written by `zoo.save_preset`). It names the architecture and its arguments, the exact
front-end (sample rate, mel settings, log variant, patch length), the tag names, and where its
weights are and their sha256; so a model can only be fed the way its weights expect.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from zoo.errors import PresetError

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Preprocessing:
    """How audio becomes model input: resampling, STFT, mel, log compression, patching.

    Args:
        sample_rate: rate the model expects; audio is resampled to it.
        n_fft, hop_length, win_length, window, power: STFT settings (librosa's meaning).
        n_mels, fmin, fmax, htk, norm: mel filterbank settings (librosa's meaning).
        compression: the log layer: ``"log10_scaled"``, ``"log_eps"``, ``"log_learn"``,
            ``"power_to_db"`` or ``"pcen"``; ``compression_config`` holds its arguments.
        pad_mode: padding of the whole signal before framing (``"reflect"``: librosa <= 0.8 and the
            musicnn weights; ``"constant"``: later librosa).
        patch_frames: frames per model input patch.
        compression_weights: trained variables of a trainable compression (``LogLearn``:
            ``a``, ``b``; ``PCEN``: ``log_alpha``, ...) by name, assigned after it is built;
            empty: the layer's initial values (see `zoo.models.pipeline.compression_weights`).
    """

    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 256
    win_length: int | None = None
    window: str = "hann"
    power: float = 2.0
    n_mels: int = 96
    fmin: float = 0.0
    fmax: float | None = 8000.0
    htk: bool = False
    norm: str | None = "slaney"
    compression: str = "log10_scaled"
    compression_config: dict[str, Any] = field(default_factory=dict)
    pad_mode: str = "reflect"
    patch_frames: int = 187
    compression_weights: dict[str, Any] = field(default_factory=dict)

    @property
    def patch_samples(self) -> int:
        """Waveform samples of one patch (frames are taken without centring inside it)."""
        return (self.patch_frames - 1) * self.hop_length + self.n_fft

    @property
    def patch_hop_samples(self) -> int:
        """Hop between patches that tiles the frames of one whole-file STFT exactly."""
        return self.patch_frames * self.hop_length

    @property
    def edge_padding(self) -> int:
        """Samples padded at each end of a file, as a centred STFT does."""
        return self.n_fft // 2

    @property
    def patch_seconds(self) -> float:
        return self.patch_frames * self.hop_length / self.sample_rate


@dataclass(frozen=True)
class WeightsRef:
    """Where a preset's weights are: a file name (shipped or in a preset dir) and its sha256.

    ``hub`` (``repo_id``, ``filename``, ``revision``) says where to download them from.
    ``file=None`` means no weights are published for this preset.
    """

    file: str | None
    sha256: str | None = None
    hub: dict[str, str] | None = None


@dataclass(frozen=True)
class PresetConfig:
    """Everything needed to rebuild a pretrained model and feed it correctly."""

    name: str
    description: str
    architecture: str
    architecture_config: dict[str, Any]
    preprocessing: Preprocessing
    tags: tuple[str, ...]
    weights: WeightsRef
    license: str = ""
    source: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    # Directory the config was read from (a user preset); None for shipped presets.
    root: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("root")
        data["tags"] = list(self.tags)
        # Written only when set, so presets without a trained front-end keep their exact JSON.
        if not data["preprocessing"]["compression_weights"]:
            del data["preprocessing"]["compression_weights"]
        return {"schema_version": SCHEMA_VERSION, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any], root: str | None = None) -> PresetConfig:
        data = dict(data)
        version = data.pop("schema_version", SCHEMA_VERSION)
        if version > SCHEMA_VERSION:
            raise PresetError(f"preset {data.get('name')!r} uses schema {version}; this zoo reads "
                              f"up to {SCHEMA_VERSION}: upgrade zoo")
        try:
            return cls(
                preprocessing=Preprocessing(**data.pop("preprocessing")),
                weights=WeightsRef(**data.pop("weights")),
                tags=tuple(data.pop("tags")),
                root=root,
                **data,
            )
        except (KeyError, TypeError) as err:
            raise PresetError(f"invalid preset config {data.get('name')!r}: {err}") from err

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json_file(cls, path: str | os.PathLike, root: str | None = None) -> PresetConfig:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise PresetError(f"cannot read preset config {os.fspath(path)}: {err}") from err
        return cls.from_dict(data, root=root)


def shipped_dir() -> Path:
    """The folder of shipped presets (the repo's ``weights/``, installed as ``zoo.weights``)."""
    return Path(str(resources.files("zoo.weights")))


def _shipped_configs() -> dict[str, Path]:
    return {p.stem: p for p in sorted(shipped_dir().glob("*.json"))}


def presets() -> dict[str, str]:
    """Names of the built-in presets and a one-line description of each.

    Example:
        >>> "musicnn_msd" in zoo.presets()
        True
    """
    return {name: get_preset(name).description for name in _shipped_configs()}


def get_preset(name: str) -> PresetConfig:
    """The config of a built-in preset.

    Raises:
        PresetError: unknown name (the message lists the known ones).
    """
    configs = _shipped_configs()
    if name not in configs:
        known = ", ".join(configs) or "(none installed)"
        raise PresetError(f"unknown preset {name!r}; known presets: {known}")
    return PresetConfig.from_json_file(configs[name])
