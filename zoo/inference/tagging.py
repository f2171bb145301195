"""Whole-file inference: audio of any length -> batched patches -> Taggram or features.

Decoding and patching run in a background thread while the compiled model works on the previous
batch, so a long file streams through with bounded memory (a few batches of patches at a time).
"""

from __future__ import annotations

import math
import os
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import keras
import numpy as np

from zoo import audio
from zoo.errors import AudioError, AudioWarning, PresetError
from zoo.inference.batching import run_batches
from zoo.inference.compiled import inference_function
from zoo.inference.patching import PatchGrid, iter_patches
from zoo.inference.precision import bfloat16_function, check_precision
from zoo.models.loading import resolve
from zoo.models.pipeline import inference_model
from zoo.models.registry import get_architecture
from zoo.presets import PresetConfig

DEFAULT_BATCH_SIZE = 8  # as fast as larger batches on 2 cores, and bounds peak memory
MIN_TAIL_SECONDS = 1.0  # a shorter remainder is not worth a mostly-overlapping extra patch
# ... unless patches are short (a 1 s keyword model): then a third of a patch is enough, so a word
# in the last second of a recording is not left out. Patches of 3 s and longer keep the 1 s rule.
MIN_TAIL_PATCH_FRACTION = 1 / 3
_STREAM_BLOCK_PATCHES = 8  # decode this many patch hops of audio per read

AudioInput = str | os.PathLike | bytes | np.ndarray


@dataclass
class Taggram:
    """Tag probabilities over time.

    Attributes:
        probabilities: ``(patches, tags)`` float32.
        tags: tag names, one per column.
        times: start time (s) of every patch; with the default hop, row ``i`` is the original
            musicnn's patch ``i``.
        source: the file (or a description of in-memory audio).
        patch_seconds: duration of one patch.
        repeat_padded: the audio was shorter than one patch and was tiled to fill it.
        warnings: what makes these tags doubtful: silence, near-silence, audio shorter than a
            patch (also issued as `zoo.errors.AudioWarning`).
        aggregate: how the patches make the clip's answer (`clip`): ``"mean"``, ``"max"`` or
            ``"best_window"`` (the preset's `zoo.presets.Application`).
        task: ``"tagging"`` or ``"classification"`` (one class per clip: `predicted`).
    """

    probabilities: np.ndarray
    tags: tuple[str, ...]
    times: np.ndarray
    source: str = "<audio>"
    patch_seconds: float = 3.0
    repeat_padded: bool = False
    warnings: tuple[str, ...] = ()
    aggregate: str = "mean"
    task: str = "tagging"

    @property
    def mean(self) -> np.ndarray:
        """Mean probability of every tag over the patches."""
        return self.probabilities.mean(axis=0)

    @property
    def best_window(self) -> int:
        """The patch the model is surest of (highest top probability)."""
        return int(np.argmax(self.probabilities.max(axis=1)))

    @property
    def clip(self) -> np.ndarray:
        """The clip's answer per tag: the patches' mean, max, or the best window's row."""
        if self.aggregate == "max":
            return self.probabilities.max(axis=0)
        if self.aggregate == "best_window":
            return self.probabilities[self.best_window]
        return self.mean

    def predicted(self) -> tuple[str, float]:
        """The clip's class and its probability (the best of `clip`)."""
        clip = self.clip
        best = int(np.argmax(clip))
        return self.tags[best], float(clip[best])

    def top(self, n: int = 5, threshold: float | None = None) -> list[tuple[str, float]]:
        """The ``n`` tags with the highest clip probability (`clip`: the mean over patches
        unless the preset aggregates otherwise), best first; with ``threshold``, only those
        whose probability is at least ``threshold`` (so possibly none)."""
        mean = self.clip
        order = np.argsort(-mean, kind="stable")[:n]
        return [(self.tags[i], float(mean[i])) for i in order
                if threshold is None or mean[i] >= threshold]

    def to_dict(self, top: int | None = None,
                threshold: float | None = None) -> dict[str, Any]:
        data = {
            "source": self.source,
            "tags": list(self.tags),
            "times": [round(float(t), 4) for t in self.times],
            "probabilities": np.round(self.probabilities, 6).tolist(),
            "repeat_padded": self.repeat_padded,
            "warnings": list(self.warnings),
        }
        if (self.aggregate, self.task) != ("mean", "tagging"):
            data["aggregate"], data["task"] = self.aggregate, self.task
        if self.task == "classification":
            label, p = self.predicted()
            data["predicted"] = {"class": label, "probability": round(p, 6)}
        if top:
            data["top"] = [{"tag": t, "probability": round(p, 6)}
                           for t, p in self.top(top, threshold)]
        return data

    def plot(self, path: str | os.PathLike, title: str | None = None) -> None:
        """Write a PNG of the taggram (tags x time), like musicnn's figure."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        n_tags = len(self.tags)
        fig, ax = plt.subplots(figsize=(max(6.0, 0.25 * len(self.times) + 3), 0.22 * n_tags + 1.5))
        # Scaled to this taggram's own range (most tags sit far below 1: a fixed 0..1 scale
        # leaves them black), with a colour bar that says what the colours mean.
        low, high = float(self.probabilities.min()), float(self.probabilities.max())
        high = max(high, low + 1e-6)
        image = ax.imshow(self.probabilities.T, aspect="auto", origin="upper", vmin=low,
                          vmax=high, interpolation="nearest", cmap="viridis")
        fig.colorbar(image, ax=ax, fraction=0.03, pad=0.01, label="probability")
        ax.set_yticks(range(n_tags), self.tags, fontsize=7)
        step = max(1, len(self.times) // 12)
        ticks = range(0, len(self.times), step)
        ax.set_xticks(list(ticks), [f"{self.times[i]:.0f}" for i in ticks], fontsize=7)
        ax.set_xlabel("time (s)")
        ax.set_title((title or f"Taggram: {os.path.basename(self.source)}")
                     + f" (colour scale {low:.3f}-{high:.3f})", fontsize=9)
        fig.tight_layout()
        fig.savefig(os.fspath(path), dpi=120)
        plt.close(fig)


@dataclass(eq=False)
class Features(Mapping):
    """Named intermediate features per patch: a read-only mapping, ``features[name]`` is
    ``(patches, ...)``; ``keys()``, ``items()``, ``in`` and ``len`` work as on a dict.

    Attributes:
        features: name -> array (read-only view).
        times: start time (s) of every patch.
        tags: the model's tag names (when ``tags`` is one of the features).
        source: the file (or a description of in-memory audio).
        repeat_padded: the audio was shorter than one patch and was tiled to fill it.
        names: the feature names, in the model's order.

    Example:
        >>> feats = zoo.extract("song.wav")
        >>> "penultimate" in feats, feats["penultimate"].shape
        (True, (10, 200))
        >>> feats
        Features('song.wav', 10 patches: timbral (10, 187, 408) float32, ...)
    """

    features: Mapping[str, np.ndarray]
    times: np.ndarray
    tags: tuple[str, ...] = ()
    source: str = "<audio>"
    repeat_padded: bool = False
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.features = MappingProxyType(dict(self.features))
        self.names = tuple(self.features)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.features[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.features)

    def __len__(self) -> int:
        return len(self.features)

    def __repr__(self) -> str:  # names, shapes and dtypes: never the arrays (MBs for a song)
        parts = ", ".join(f"{name} {tuple(a.shape)} {a.dtype}" for name, a in self.features.items())
        return f"Features({self.source!r}, {len(self.times)} patches: {parts})"


# One compiled function per model object, so repeated calls never retrace or rebuild.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled_inference(model: keras.Model, precision: str = "float32"
                       ) -> Callable[[np.ndarray], Any]:
    """The model as one compiled function of a ``(patches, samples)`` batch, cached per model
    and precision: the family's inference graph where it has one.

    ``precision="float32"`` shares the model's variables; ``"bfloat16"``
    (`zoo.inference.precision`) is a frozen bfloat16 copy of the weights as they are now.

    Raises:
        ValueError: an unknown precision. RuntimeError: bfloat16 on a CPU without bfloat16
            units.
    """
    check_precision(precision)
    compiled = _COMPILED.setdefault(model, {})
    fn = compiled.get(precision)
    if fn is None:
        n = model.input_shape[-1]
        # The family's inference graph (musicnn: ~1.5x faster), sharing the model's variables.
        twin = inference_model(model) if hasattr(model, "zoo_backbone") else model
        if precision == "bfloat16":
            fn = bfloat16_function(twin, n)
        else:
            fn = inference_function(twin, n)
        compiled[precision] = fn
    return fn


def resolve_model(model: Any, features: bool = False) -> keras.Model:
    """A waveform-in model with ``zoo_preset`` from a preset name, a directory, a ``.keras``
    file or a model (`zoo.models.loading.resolve`, with the tags unless ``features``)."""
    return resolve(model, include_top=True, features=features)


def preset_grid(config: PresetConfig, hop_seconds: float | None = None,
                tail: str = "end") -> PatchGrid:
    """The grid `zoo.tag` uses for a preset: its default hop unless ``hop_seconds`` is given,
    its short-clip rule (`zoo.presets.Application`)."""
    application = config.application
    hop = application.hop_for(config.preprocessing) if hop_seconds is None else hop_seconds
    return patch_grid(config.preprocessing, hop, tail, application.short_clips)


def patch_grid(prep, hop_seconds: float, tail: str = "end",
               short_clips: str = "tile") -> PatchGrid:
    """The grid of a preset for a patch hop in seconds.

    The hop is rounded down to whole frames, so 3.0 s (or musicnn's patch length, 2.992 s)
    gives musicnn's 187 frames and rows line up with the original's patches. ``short_clips``
    is the preset's rule for audio shorter than a patch (`zoo.presets.Application`).
    """
    if not hop_seconds > 0:
        raise ValueError(f"hop_seconds must be > 0, got {hop_seconds}")
    frames_per_second = prep.sample_rate / prep.hop_length
    hop_frames = max(1, math.floor(hop_seconds * frames_per_second + 1e-9))
    return PatchGrid(n_fft=prep.n_fft, hop_length=prep.hop_length,
                     patch_frames=prep.patch_frames, hop_frames=hop_frames,
                     pad_mode=prep.pad_mode, tail=tail,
                     min_tail_frames=min_tail_frames(prep.patch_frames, frames_per_second),
                     short_clips=short_clips)


def min_tail_frames(patch_frames: int, frames_per_second: float) -> int:
    """Uncovered frames at the end of a recording that earn it one more, end-aligned patch:
    `MIN_TAIL_SECONDS`, or a third of a patch when that is shorter."""
    return min(math.ceil(MIN_TAIL_SECONDS * frames_per_second),
               math.ceil(patch_frames * MIN_TAIL_PATCH_FRACTION - 1e-9))


def stream_blocks(source: AudioInput, config: PresetConfig, grid: PatchGrid,
                  source_sr: int | None = None) -> Iterator[np.ndarray]:
    """A recording as float32 mono blocks at the model's rate, a few patch hops each (an array
    input: one block); `zoo.inference.patching.iter_patches` cuts them into the model's windows."""
    sr = config.preprocessing.sample_rate
    if isinstance(source, np.ndarray):
        yield audio.load(source, sr=sr, source_sr=source_sr)
        return
    block = _STREAM_BLOCK_PATCHES * grid.hop_frames * grid.hop_length
    yield from audio.stream(source, sr=sr, block_samples=block)


def patch_windows(source: AudioInput, config: PresetConfig, grid: PatchGrid,
                  source_sr: int | None = None) -> Iterator[tuple[int, np.ndarray, bool]]:
    """The model's input windows of a recording, decoded in a stream: what `run_model` feeds it.

    Args:
        source: a file path, encoded bytes, a binary file object, or a float waveform (give
            ``source_sr``).
        config: the model's preset (its sample rate and patching).
        grid: the patch grid (`patch_grid`).
        source_sr: sample rate of an array input.

    Yields:
        ``(start_frame, window, repeat_padded)`` per patch, in time order; ``window`` is a
        float32 ``(samples,)`` array.

    Raises:
        AudioError: the audio cannot be read (from the call or while iterating).

    Example:
        >>> grid = patch_grid(config.preprocessing, 3.0)
        >>> [start for start, _, _ in patch_windows("song.wav", config, grid)][:3]
        [0, 187, 374]
    """
    yield from iter_patches(stream_blocks(source, config, grid, source_sr), grid)


@dataclass
class ModelRun:
    """A model's raw outputs over a whole recording (`run_model`).

    Attributes:
        config: the model's preset.
        outputs: one entry per model call, each the model's output for a batch of patches (an
            array, or a dict of arrays for a features model), in patch order.
        times: start of every patch, seconds.
        repeat_padded: the audio was shorter than one patch and was tiled to fill it.
        peak: the largest absolute sample the model saw.
    """

    config: PresetConfig
    outputs: list[Any]
    times: np.ndarray
    repeat_padded: bool
    peak: float = 1.0


def run_model(source: AudioInput, model: keras.Model, hop_seconds: float | None = None,
              batch_size: int = DEFAULT_BATCH_SIZE, source_sr: int | None = None,
              tail: str = "end", precision: str = "float32") -> ModelRun:
    """Run a `zoo.load` model over every patch of a recording, as `tag` and `extract` do.

    Decoding and patching run in a background thread while the model computes
    (`zoo.inference.batching.run_batches`); the model runs through its family's inference graph
    (`zoo.models.pipeline.inference_model`).

    Args:
        source: a file path, encoded bytes, or a float waveform (give ``source_sr``).
        model: a model from `zoo.load` (or `resolve_model`).
        hop_seconds, batch_size, source_sr, tail, precision: as `tag`.

    Returns:
        A `ModelRun`.

    Raises:
        AudioError: the audio cannot be read, or has no samples.

    Example:
        >>> run = run_model("song.wav", zoo.load("musicnn_msd", include_top=False))
        >>> np.concatenate(run.outputs).shape     # (patches, 200) embeddings
        (10, 200)
    """
    config: PresetConfig = model.zoo_preset
    grid = preset_grid(config, hop_seconds, tail)
    windows = (((start, was_padded), window) for start, window, was_padded
               in patch_windows(source, config, grid, source_sr))
    starts: list[int] = []
    outputs: list[Any] = []
    padded = False
    peak = 0.0
    for keys, batch, out in run_batches(compiled_inference(model, precision), windows,
                                        batch_size):
        outputs.append(out)
        starts.extend(start for start, _ in keys)
        padded |= any(was_padded for _, was_padded in keys)
        peak = max(peak, float(np.max(np.abs(batch))))
    if not outputs:
        raise AudioError(describe_source(source), "no audio samples to tag")
    prep = config.preprocessing
    times = np.asarray(starts, np.float64) * prep.hop_length / prep.sample_rate
    return ModelRun(config, outputs, times, padded, peak)


def describe_source(source: Any) -> str:
    """How errors and results name an input: its path, ``<array>`` or ``<bytes>``."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return "<array>" if isinstance(source, np.ndarray) else "<bytes>"


def tag(
    audio_or_path: AudioInput,
    model: str | os.PathLike | keras.Model = "musicnn_msd",
    hop_seconds: float | None = None,
    *,
    source_sr: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    tail: str = "end",
    precision: str = "float32",
) -> Taggram:
    """Tag a whole recording patch by patch.

    Args:
        audio_or_path: a file path, encoded bytes, or a float waveform (then give ``source_sr``).
        model: a preset name, a preset directory, or a model from `zoo.load`.
        hop_seconds: hop between patches (rounded down to whole STFT frames). Default: the
            preset's (``zoo_preset.application``): its patch length, which for the musicnn
            presets reproduces the original's non-overlapping 3 s patches.
        source_sr: sample rate of an array input (resampled to the model's rate).
        batch_size: patches per model call.
        tail: ``"end"`` adds a last patch aligned with the end of the audio when the regular
            patches leave out 1 s or more (a third of a patch, for patches shorter than 3 s);
            ``"drop"`` ignores that remainder like the original musicnn.
            Audio shorter than one patch fills it by the preset's rule (tiled for musicnn,
            centred in silence for a speech model: ``Taggram.repeat_padded``).
        precision: ``"float32"`` (default: exact) or ``"bfloat16"`` (about twice as fast on
            a CPU with AVX512-BF16 or AMX, probabilities within ~0.03:
            `zoo.inference.precision`).

    Returns:
        A `Taggram`.

    Raises:
        AudioError: the audio cannot be read or is empty/invalid.
        PresetError: the model has no tags (an embedding model such as
            ``siamese_musicnn_msd``: use `extract`).

    Example:
        >>> taggram = zoo.tag("song.mp3", model="musicnn_msd")
        >>> taggram.top(3)
        [('rock', 0.61), ('indie', 0.33), ('alternative', 0.31)]
    """
    model = resolve_model(model)
    if not model.zoo_preset.tags:
        embedding = get_architecture(model.zoo_preset.architecture).taps(
            model.zoo_preset.architecture_config)[1]
        raise PresetError(f"model {model.zoo_preset.name!r} has no tags: use zoo.extract (its "
                          f"embedding is the feature {embedding!r})")
    run = run_model(audio_or_path, model, hop_seconds, batch_size, source_sr, tail, precision)
    config = run.config
    probabilities = np.concatenate(run.outputs, axis=0).astype(np.float32, copy=False)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(config.tags):
        raise TypeError(f"model {config.name!r} does not output tag probabilities "
                        "(was it loaded with include_top=False?)")
    source = describe_source(audio_or_path)
    notes = doubts(run)
    for note in notes:
        warnings.warn(f"{source}: {note}", AudioWarning, stacklevel=2)
    return Taggram(probabilities, config.tags, run.times, source,
                   config.preprocessing.patch_seconds, run.repeat_padded, tuple(notes),
                   config.application.aggregate, config.application.task)


EMBEDDING = "embedding"
"""The name `embed` gives a model's own embedding (``include_top=False``'s output)."""


def embedding_features(model: str | os.PathLike | keras.Model) -> tuple[str, ...]:
    """The feature names `embed` accepts for ``model``: its taps, ``tags`` for a tagger (whose
    tag layer is kept), and ``embedding``."""
    view = resolve(model, include_top=True, features=True)
    return (*view.output.keys(), EMBEDDING)


def embed(
    audio_or_path: AudioInput,
    model: str | os.PathLike | keras.Model = "musicnn_msd",
    features: Sequence[str] | None = None,
    hop_seconds: float | None = None,
    *,
    source_sr: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    tail: str = "end",
    precision: str = "float32",
) -> Features:
    """Embeddings per patch of a whole recording: the model's embedding, or named features.

    Args:
        audio_or_path, model, hop_seconds, source_sr, batch_size, tail, precision: as `tag`.
        features: feature names to return (those of `extract`, plus ``"embedding"`` for the
            model's own embedding and ``"tags"`` for a tagger's probabilities); default
            ``("embedding",)``, which runs only the layers the embedding needs.

    Returns:
        `Features` holding the requested names, each ``(patches, ...)``.

    Raises:
        AudioError: the audio cannot be read or is empty.
        PresetError: a requested feature the model does not have (the message lists them).

    Example:
        >>> zoo.embed("song.wav", model="musicnn_msd")["embedding"].shape
        (10, 200)
        >>> zoo.embed("song.wav", features=["max_pool", "tags"]).names
        ('max_pool', 'tags')
    """
    names = tuple(dict.fromkeys(features or (EMBEDDING,)))
    if not names:
        raise PresetError("embed: ask for at least one feature")
    if names == (EMBEDDING,):
        view = resolve(model, include_top=False)
        run = run_model(audio_or_path, view, hop_seconds, batch_size, source_sr, tail,
                        precision)
        arrays = {EMBEDDING: np.concatenate(run.outputs, axis=0)}
    else:
        view = resolve(model, include_top=True, features=True)
        config = view.zoo_preset
        _, embedding_tap = get_architecture(config.architecture).taps(
            config.architecture_config)
        available = embedding_features(view)
        unknown = [name for name in names if name not in available]
        if unknown:
            raise PresetError(f"model {config.name!r} has no feature "
                              f"{', '.join(map(repr, unknown))}; it has: {', '.join(available)}")
        run = run_model(audio_or_path, view, hop_seconds, batch_size, source_sr, tail,
                        precision)
        arrays = {name: np.concatenate(
            [o[embedding_tap if name == EMBEDDING else name] for o in run.outputs], axis=0)
            for name in names}
    tags = run.config.tags if "tags" in arrays else ()
    return Features(arrays, run.times, tags, describe_source(audio_or_path), run.repeat_padded)


SILENT_PEAK_DBFS = -80.0
QUIET_PEAK_DBFS = -50.0


def doubts(run: ModelRun) -> list[str]:
    """Why a run's outputs may mean little: silence, near-silence, less than one patch."""
    notes = []
    peak_db = 20 * math.log10(run.peak) if run.peak > 0 else -math.inf
    if peak_db < SILENT_PEAK_DBFS:
        notes.append(f"silent (peak {peak_db:.0f} dBFS): its tags mean nothing")
    elif peak_db < QUIET_PEAK_DBFS:
        notes.append(f"very quiet (peak {peak_db:.0f} dBFS): its tags may mean little")
    # Centred or left-aligned in silence is how such presets were trained: nothing to say.
    if run.repeat_padded and run.config.application.short_clips == "tile":
        notes.append(f"shorter than one {run.config.preprocessing.patch_seconds:.1f} s patch: "
                     "tiled to fill it, so its tags are unreliable")
    return notes


def extract(
    audio_or_path: AudioInput,
    model: str | os.PathLike | keras.Model = "musicnn_msd",
    hop_seconds: float | None = None,
    *,
    source_sr: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    tail: str = "end",
    precision: str = "float32",
) -> Features:
    """Every named intermediate feature of a model, per patch, for a whole recording.

    musicnn: ``timbral, temporal, cnn1, cnn2, cnn3, mean_pool, max_pool, penultimate`` and
    ``tags``; vgg: ``pool1`` ... ``pool5`` and ``tags``. Unlike the original extractor (whose
    ``cnn1-3``/``penultimate`` repeat patch 0 for every later patch), each row is its own patch.
    Arguments as `tag`.

    Example:
        >>> feats = zoo.extract("song.wav", model="musicnn_msd")
        >>> feats["penultimate"].shape
        (10, 200)
    """
    model = resolve_model(model, features=True)
    run = run_model(audio_or_path, model, hop_seconds, batch_size, source_sr, tail, precision)
    features = {name: np.concatenate([o[name] for o in run.outputs], axis=0)
                for name in run.outputs[0]}
    return Features(features, run.times, run.config.tags, describe_source(audio_or_path),
                    run.repeat_padded)
