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
FRONTENDS = ("mel", "waveform")
# Fields that only a mel front-end reads (left out of a waveform preset's JSON at their defaults).
_MEL_ONLY_FIELDS = ("win_length", "window", "power", "n_mels", "fmin", "fmax", "htk", "norm",
                    "compression", "compression_config", "pad_mode")


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
        patch_frames: frames per model input patch (samples, for a waveform front-end).
        compression_weights: trained variables of a trainable compression (``LogLearn``:
            ``a``, ``b``; ``PCEN``: ``log_alpha``, ...) by name, assigned after it is built;
            empty: the layer's initial values (see `zoo.models.pipeline.compression_weights`).
        frontend: ``"mel"`` (default: the in-graph mel spectrogram and ``compression`` feed the
            backbone) or ``"waveform"`` (no front-end layer: the backbone takes the raw patch,
            e.g. sampleCNN). A waveform front-end's frame is one sample: ``n_fft`` and
            ``hop_length`` are 1 and ``patch_frames`` is the patch length in samples, so the
            patching arithmetic is the same (no edge padding); the mel and compression fields
            are unused and left out of the JSON. Build one with `Preprocessing.waveform`.
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
    frontend: str = "mel"

    def __post_init__(self) -> None:
        if self.frontend not in FRONTENDS:
            raise ValueError(f"frontend must be one of {FRONTENDS}, got {self.frontend!r}")
        if self.frontend == "waveform" and (self.n_fft, self.hop_length) != (1, 1):
            raise ValueError("a waveform front-end counts in samples: n_fft and hop_length must "
                             f"be 1 (got {self.n_fft}, {self.hop_length}); use "
                             "Preprocessing.waveform(sample_rate, patch_samples)")

    @classmethod
    def waveform(cls, sample_rate: int, patch_samples: int) -> Preprocessing:
        """The preprocessing of a raw-waveform model: resampling and patching only.

        Example:
            >>> Preprocessing.waveform(16000, 59049).patch_seconds
            3.6905625
        """
        return cls(sample_rate=sample_rate, n_fft=1, hop_length=1, patch_frames=patch_samples,
                   frontend="waveform")

    def to_dict(self) -> dict[str, Any]:
        """The JSON fields: as `dataclasses.asdict`, less what a preset does not use (empty
        ``compression_weights``; ``frontend`` when it is ``"mel"``, so older presets keep their
        exact JSON; the mel/compression fields of a waveform front-end left at their
        defaults)."""
        data = dataclasses.asdict(self)
        if not data["compression_weights"]:
            del data["compression_weights"]
        if self.frontend == "mel":
            del data["frontend"]
        else:
            defaults = Preprocessing()
            for name in _MEL_ONLY_FIELDS:
                if data[name] == getattr(defaults, name):
                    del data[name]
        return data

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


SHORT_CLIPS = ("tile", "centre", "left")
AGGREGATIONS = ("mean", "max", "best_window")
TASKS = ("tagging", "classification")


@dataclass(frozen=True)
class Application:
    """How a preset is applied to recordings: its time grid, short clips, the clip answer.

    Args:
        hop_seconds: seconds between patches when the caller gives none (rounded down to whole
            frames); None: the patch length (patches side by side, no overlap).
        short_clips: how audio shorter than one patch fills it, as the preset's training data
            did: ``"tile"`` (repeat it, musicnn's training), ``"centre"`` (centred in
            silence: one spoken word in a second, Speech Commands), ``"left"`` (then silence).
        aggregate: how patches make the clip's answer: ``"mean"`` over patches, ``"max"``,
            or ``"best_window"`` (the one patch the model is surest of: keyword spotting).
        task: ``"tagging"`` (independent tags) or ``"classification"`` (one class per clip).
    """

    hop_seconds: float | None = None
    short_clips: str = "tile"
    aggregate: str = "mean"
    task: str = "tagging"

    def __post_init__(self) -> None:
        for name, value, allowed in (("short_clips", self.short_clips, SHORT_CLIPS),
                                     ("aggregate", self.aggregate, AGGREGATIONS),
                                     ("task", self.task, TASKS)):
            if value not in allowed:
                raise ValueError(f"application.{name} must be one of {allowed}, got {value!r}")
        if self.hop_seconds is not None and not self.hop_seconds > 0:
            raise ValueError(f"application.hop_seconds must be > 0, got {self.hop_seconds}")

    def hop_for(self, prep: Preprocessing) -> float:
        """The default hop in seconds for a preset with preprocessing ``prep``."""
        return self.hop_seconds if self.hop_seconds is not None else prep.patch_seconds


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
    application: Application = field(default_factory=Application)
    # Directory the config was read from (a user preset); None for shipped presets.
    root: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("root")
        data["tags"] = list(self.tags)
        # Only the fields that differ from the defaults (presets before it keep their JSON).
        defaults = dataclasses.asdict(Application())
        data["application"] = {k: v for k, v in data["application"].items() if v != defaults[k]}
        if not data["application"]:
            del data["application"]
        # Only the fields in use, so presets without a trained front-end keep their exact JSON.
        data["preprocessing"] = self.preprocessing.to_dict()
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
                application=Application(**data.pop("application", {})),
                root=root,
                **data,
            )
        except (KeyError, TypeError, ValueError) as err:
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
