"""Track embeddings: a unit vector per segment of a recording, and one for the whole file.

A recording is cut into the model's patches (as `zoo.tag` does: 3 s, non-overlapping by
default), each patch goes through the model with ``include_top=False`` (the feature
``get_architecture(...).taps(...)[1]`` names, e.g. musicnn's 200-d ``penultimate``). Each patch
vector, L2-normalised, is a **segment**; the file vector is the mean of the raw patch vectors,
L2-normalised. Files are decoded and patched in a stream (`zoo.inference.tagging`), so memory
is bounded by a few batches of audio plus one vector per patch.

TensorFlow is imported only when a model is loaded, so `ModelInfo` and `model_info` stay light.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import AudioError, PresetError

DEFAULT_MODEL = "musicnn_msd_whitened_chroma_rhythm"
"""The default model of `zoo index`: the preset that found the same track best on music from
packages no model was trained on (docs/search.md)."""

DEFAULT_HOP_SECONDS = 3.0
DEFAULT_TAIL = "end"


@dataclass(frozen=True)
class ModelInfo:
    """Which model made an index's vectors; stored in the manifest, checked on every reuse.

    Attributes:
        preset: what `zoo.load` is given to get the model back: a built-in name, an absolute
            preset directory, or an ``hf://`` address.
        name: the preset's own name (``config.name``).
        weights_sha256: sha256 of the weights file.
        architecture: the model family (``musicnn``, ``vgg``, ...).
        embedding: the feature used (what ``include_top=False`` returns).
        hop_seconds: hop between patches.
        tail: tail policy of the patching (see `zoo.tag`).
        patch_seconds: duration of one patch (a segment); None in format-1 indexes, which did
            not record it.
        precision: the inference precision of the vectors (``"float32"``, or ``"bfloat16"``:
            `zoo.inference.precision`); indexes made before it was recorded are float32.
    """

    preset: str
    name: str
    weights_sha256: str | None
    architecture: str
    embedding: str
    hop_seconds: float = DEFAULT_HOP_SECONDS
    tail: str = DEFAULT_TAIL
    patch_seconds: float | None = None
    precision: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        return cls(**data)

    def identity(self) -> tuple:
        """What must be equal for two sets of vectors to be comparable."""
        return (self.name, self.weights_sha256, self.architecture, self.embedding,
                float(self.hop_seconds), self.tail, self.precision)

    def describe(self) -> str:
        sha = (self.weights_sha256 or "unknown")[:12]
        precision = "" if self.precision == "float32" else f", {self.precision}"
        return (f"{self.preset} (weights sha256 {sha}..., feature {self.embedding!r}"
                f"{precision})")


def preset_spec(preset: str | os.PathLike) -> str:
    """A stable string for a preset: a directory becomes absolute, names stay as they are."""
    text = os.fspath(preset)
    path = Path(text).expanduser()
    if not text.startswith("hf://") and path.is_dir():
        return str(path.resolve())
    return text


def model_info(preset: str | os.PathLike, *, hop_seconds: float = DEFAULT_HOP_SECONDS,
               tail: str = DEFAULT_TAIL, precision: str = "float32") -> ModelInfo:
    """`ModelInfo` of a preset from its config alone (no model is built).

    Raises:
        PresetError: unknown preset (for the default, the message says what to use instead).
        WeightsError: the weights' sha256 is not recorded and the file cannot be found.
    """
    from zoo.hub import resolve_config, resolve_weights
    from zoo.hub.cache import file_sha256
    from zoo.inference.precision import check_precision
    from zoo.models.registry import get_architecture

    check_precision(precision)
    spec = preset_spec(preset)
    try:
        config = resolve_config(spec)
    except PresetError as err:
        if spec == DEFAULT_MODEL:
            raise PresetError(
                f"{err}. The default search model {DEFAULT_MODEL!r} is not available in this "
                "version of zoo: pass a model explicitly, e.g. --model musicnn_msd "
                "(Python: model='musicnn_msd')") from err
        raise
    _, embedding = get_architecture(config.architecture).taps(config.architecture_config)
    sha = config.weights.sha256
    if sha is None and config.weights.file is not None:
        sha = file_sha256(resolve_weights(config))
    return ModelInfo(preset=spec, name=config.name, weights_sha256=sha,
                     architecture=config.architecture, embedding=embedding,
                     hop_seconds=float(hop_seconds), tail=tail,
                     patch_seconds=float(config.preprocessing.patch_seconds),
                     precision=precision)


@dataclass(frozen=True)
class Segments:
    """The segment vectors of one recording (`TrackEmbedder.embed_segments`).

    Attributes:
        vectors: ``(segments, dim)`` float32 unit vectors, one per patch, in time order.
        starts: ``(segments,)`` float32 start of each patch, seconds.
        mean: ``(dim,)`` float32 unit vector: the file-level vector (mean of the raw patch
            embeddings, normalised).
        notes: why these vectors may mean little (silence, near-silence, audio shorter than
            one patch), as `zoo.tag` warns (`zoo.inference.tagging.doubts`); empty if none.
    """

    vectors: np.ndarray
    starts: np.ndarray
    mean: np.ndarray
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.vectors)


class TrackEmbedder:
    """Turns recordings into unit vectors with one preset's embedding.

    Args:
        preset: a built-in preset name, a preset directory or an ``hf://`` address.
        hop_seconds: hop between patches (default 3 s: non-overlapping patches).
        tail: ``"end"`` also embeds a last patch aligned with the end of the file (`zoo.tag`).
        batch_size: patches per model call.

    Example:
        >>> embedder = TrackEmbedder("musicnn_msd")
        >>> v = embedder.embed("song.mp3")   # (200,) float32, unit norm
    """

    def __init__(self, preset: str | os.PathLike, *, hop_seconds: float = DEFAULT_HOP_SECONDS,
                 tail: str = DEFAULT_TAIL, batch_size: int = 8, precision: str = "float32"):
        self.info = model_info(preset, hop_seconds=hop_seconds, tail=tail, precision=precision)
        self.batch_size = int(batch_size)
        self._model = None

    @property
    def model(self) -> Any:
        """The Keras model (waveform patch -> embedding), loaded on first use."""
        if self._model is None:
            from zoo.models.loading import resolve

            self._model = resolve(self.info.preset, include_top=False)  # once per process
        return self._model

    @property
    def dim(self) -> int:
        """Length of the vectors."""
        return int(np.prod(self.model.output_shape[1:]))

    def embed(self, audio_or_path: Any, *, source_sr: int | None = None) -> np.ndarray:
        """The unit-norm mean embedding of a whole recording (the file-level vector).

        Args:
            audio_or_path: a file path, encoded bytes, or a float waveform (give ``source_sr``).
            source_sr: sample rate of an array input.

        Returns:
            ``(dim,)`` float32 with L2 norm 1.

        Raises:
            AudioError: unreadable, truncated or empty audio, or an embedding that is zero or
                not finite (nothing to compare by cosine).
        """
        return self.embed_segments(audio_or_path, source_sr=source_sr).mean

    def embed_segments(self, audio_or_path: Any, *, source_sr: int | None = None,
                       hop_seconds: float | None = None) -> Segments:
        """Unit vectors of every segment (patch) of a recording, their times, and the file vector.

        Args:
            audio_or_path: a file path, encoded bytes, or a float waveform (give ``source_sr``).
            source_sr: sample rate of an array input.
            hop_seconds: hop between segments (default: the index's ``info.hop_seconds``); a
                query may use a shorter hop than the catalogue.

        Returns:
            A `Segments`.

        Raises:
            AudioError: unreadable, truncated or empty audio, or an embedding that is zero or
                not finite (nothing to compare by cosine).

        Example:
            >>> seg = TrackEmbedder("musicnn_msd").embed_segments("song.mp3")
            >>> seg.vectors.shape, seg.starts[:3]     # 10 s of audio: 3 patches + the end
            ((4, 200), array([0., 3., 6.]))
        """
        from zoo.inference.tagging import describe_source, doubts, run_model

        hop = self.info.hop_seconds if hop_seconds is None else float(hop_seconds)
        run = run_model(audio_or_path, self.model, hop, self.batch_size, source_sr,
                        self.info.tail, self.info.precision)
        patches = np.concatenate([np.reshape(o, (len(o), -1)) for o in run.outputs], axis=0)
        segments = segments_from_patches(patches, run.times, describe_source(audio_or_path))
        return replace(segments, notes=tuple(doubts(run)))


def segments_from_patches(patches: np.ndarray, times: np.ndarray, what: str) -> Segments:
    """`Segments` from the model's raw per-patch embeddings (what every index stores).

    Args:
        patches: ``(patches, dim)`` raw embeddings, in time order.
        times: ``(patches,)`` start of each patch, seconds.
        what: how errors name the recording.

    Raises:
        AudioError: an embedding that is zero or not finite (nothing to compare by cosine).
    """
    patches = np.asarray(patches).reshape(len(patches), -1).astype(np.float64)
    if not np.all(np.isfinite(patches)):
        raise AudioError(what, "the model's embedding is not finite")
    mean = patches.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    norms = np.linalg.norm(patches, axis=1, keepdims=True)
    if norm < 1e-12 or np.any(norms < 1e-12):
        raise AudioError(what, "the model's embedding is all zeros: nothing to compare")
    return Segments(vectors=(patches / norms).astype(np.float32),
                    starts=np.asarray(times, np.float32),
                    mean=(mean / norm).astype(np.float32))
