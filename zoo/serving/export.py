"""`zoo.export`: a tagger for serving: a TF Serving SavedModel, or a TFLite or ONNX patch model.

The SavedModel needs nothing but core TensorFlow to run (stock TF Serving, or
``tf.saved_model.load`` in a process that has never imported ``zoo``): the front-end, the
whole-file patching (`zoo.serving.graph`) and WAV decoding are all core TF ops. Layout, as TF
Serving expects it::

    <base_dir>/<model_name>/<version>/saved_model.pb
                                      variables/
                                      assets/tags.txt          one tag name per line
                                      assets/zoo_preset.json   preset, preprocessing, patching

Signatures (all outputs are batch-major, so TF Serving's server-side batching can split them):

``serving_default(waveform)``
    ``waveform``: float32 ``[batch, samples]`` at the preset's sample rate, every row the same
    length. Returns ``probabilities [batch, patches, n_tags]``, ``mean_probabilities [batch,
    n_tags]``, ``embedding [batch, patches, dim]``, ``patch_times [batch, patches]`` (seconds),
    ``num_patches [batch]`` (int32), ``repeat_padded [batch]`` (bool) and ``tags [batch,
    n_tags]`` (string). Rows equal ``zoo.tag(row, tail=...)`` (default ``tail="end"``);
    rows shorter than one patch are tiled to one patch, as `zoo.tag` does.

``tag_wav(wav)``
    ``wav``: ``tf.string [batch]``, 16-bit PCM WAV files of any lengths and channel counts, at
    the preset's sample rate or any of ``wav_sample_rates`` (default
    `zoo.serving.graph.WAV_SAMPLE_RATES`, 8 to 192 kHz): the graph averages the channels and
    resamples to the preset's rate with soxr's own filters, as `zoo.tag` does; another rate is
    an error from the graph that names it. Same outputs; per-patch outputs are zero-padded to
    the file with the most patches, and ``num_patches`` says how many rows of each file are
    real.

A preset without tags (an embedding model such as ``siamese_musicnn_msd``) has the same two
signatures without the tag outputs: ``embedding [batch, patches, dim]``, ``mean_embedding
[batch, dim]`` (mean over the real patches; not re-normalised), ``patch_times``,
``num_patches`` and ``repeat_padded``.

The TFLite and ONNX exports (``format="tflite"`` / ``"onnx"``) are the patch model only,
front-end included: ``[batch, patch_samples]`` waveform windows in, ``probabilities`` (taggers
only) and ``embedding`` out. Patching a whole file is left to the caller
(`zoo.inference.patching` shows how); the ONNX model carries the serving document as its
``zoo_preset`` metadata too.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from zoo.inference.patching import PatchGrid
from zoo.layers.portability import tflite_builtin_ops
from zoo.models.pipeline import inference_view, layer_names_of
from zoo.models.registry import get_architecture
from zoo.presets import PresetConfig
from zoo.serving import graph as serving_graph

FORMATS = ("saved_model", "tflite", "onnx")
TAGS_ASSET = "tags.txt"
PRESET_ASSET = "zoo_preset.json"
TFLITE_FILE = "model.tflite"
ONNX_FILE = "model.onnx"
# The formats that hold the patch model only, and their file in the version folder.
PATCH_MODEL_FILES = {"tflite": TFLITE_FILE, "onnx": ONNX_FILE}
SIGNATURES = ("serving_default", "tag_wav")
# Patches per backbone call inside the graph: bounds activation memory (~0.5 GB for musicnn)
# whatever the request size or file length, and matches zoo.tag's default batch.
DEFAULT_MAX_PATCHES_PER_CALL = 16


def _resolve_model(model_or_preset: Any) -> keras.Model:
    """A waveform-in tagger carrying ``zoo_preset`` and ``zoo_backbone``
    (`zoo.models.loading.resolve`)."""
    from zoo.models.loading import resolve

    if not isinstance(model_or_preset, (keras.Model, str, os.PathLike, PresetConfig)):
        raise TypeError(f"cannot export {type(model_or_preset).__name__}: pass a preset name, "
                        "a preset directory, a .keras file or a model from zoo.load()")
    model = resolve(model_or_preset, include_top=True)
    if getattr(model, "zoo_backbone", None) is None:
        raise TypeError("export needs a model from zoo.load() (it carries its preprocessing "
                        "and backbone), a preset name or a preset directory")
    return model


def build_patch_model(model: keras.Model) -> keras.Model:
    """One waveform patch -> ``{"probabilities", "embedding"}``, sharing the model's layers.

    Uses the loaded model's own front-end layers (so a trained compression, e.g. ``log_learn``,
    keeps its weights; a waveform front-end has none) and its backbone's tag layer and embedding
    tap (musicnn: ``penultimate``; vgg: ``pool5``, flattened to one vector per patch; samplecnn:
    ``embedding``). A preset without tags (``siamese``: an
    embedding model) gives ``{"embedding"}`` only (siamese: the unit-length ``projection``).
    The backbone runs through its family's inference-only graph where it has one
    (`zoo.models.pipeline.inference_view`): inference only, never train the patch model.

    Args:
        model: a model from `zoo.load` (any ``include_top`` / ``features``).

    Returns:
        A Keras model, input float32 ``(batch, patch_samples)``.

    Raises:
        TypeError: the model does not come from `zoo.load`.

    Example:
        >>> patch_model = build_patch_model(zoo.load("musicnn_msd"))
        >>> {k: v.shape for k, v in patch_model(np.zeros((1, 48128), "float32")).items()}
        {'embedding': TensorShape([1, 200]), 'probabilities': TensorShape([1, 50])}
    """
    model = _resolve_model(model)
    config: PresetConfig = model.zoo_preset
    backbone: keras.Model = model.zoo_backbone
    features, embedding_name = get_architecture(config.architecture).taps(
        config.architecture_config)
    taps = {"embedding": features[embedding_name]}
    if config.tags:  # an embedding model (siamese) has no tag layer: its output is the embedding
        taps["probabilities"] = layer_names_of(backbone.outputs[0], backbone)
    # The family's inference-only graph where it has one (musicnn: ~1.5x faster, same numbers).
    view = inference_view(backbone, config, taps)
    if config.preprocessing.frontend == "waveform":  # the backbone takes the patch itself
        features_in = model.input
    else:
        try:
            features_in = model.get_layer("compression").output
        except ValueError:
            raise TypeError("the model has no 'compression' front-end layer: pass a model from "
                            "zoo.load()") from None
    outputs = dict(view(features_in))
    if len(outputs["embedding"].shape) > 2:
        outputs["embedding"] = keras.layers.Flatten(name="embedding_flatten")(outputs["embedding"])
    return keras.Model(model.input, outputs, name=f"{config.name}_patch")


def patch_grid_for(config: PresetConfig, tail: str = "end", hop_seconds: float | None = None
                   ) -> PatchGrid:
    """The patch grid `zoo.tag` uses for a preset (``hop_seconds`` and ``tail`` as there:
    default, the preset's own hop)."""
    from zoo.inference.tagging import preset_grid

    return preset_grid(config, hop_seconds, tail)


class ServingModule(tf.Module):
    """The exported object: the patch model plus the serving functions around it.

    Args:
        patch_model: from `build_patch_model`.
        config: the model's preset.
        grid: the patching to reproduce (`patch_grid_for`).
        max_patches_per_call: patches per backbone call inside the graph.
        asset_dir: a folder holding ``tags.txt`` and ``zoo_preset.json`` to ship as assets.
        wav_sample_rates: the WAV rates ``tag_wav`` resamples to the preset's rate; with none
            but the preset's own, ``tag_wav`` accepts that rate only and holds no filters.
    """

    def __init__(self, patch_model: keras.Model, config: PresetConfig, grid: PatchGrid,
                 max_patches_per_call: int, asset_dir: str | os.PathLike,
                 wav_sample_rates: Sequence[int] = serving_graph.WAV_SAMPLE_RATES):
        # Default module name: a preset name need not be a Python identifier (tf.Module's rule).
        super().__init__()
        self.patch_model = patch_model
        self.tags_file = tf.saved_model.Asset(os.path.join(asset_dir, TAGS_ASSET))
        self.preset_file = tf.saved_model.Asset(os.path.join(asset_dir, PRESET_ASSET))
        self._grid = grid
        self._sample_rate = config.preprocessing.sample_rate
        self._tags = tuple(config.tags)
        self._max_chunk = max_patches_per_call
        self._seconds_per_frame = config.preprocessing.hop_length / self._sample_rate
        # Tracked by the module: its filters are saved as variables of the SavedModel.
        self.wav_resampler = (
            serving_graph.WavResampler(self._sample_rate, wav_sample_rates)
            if set(wav_sample_rates) - {self._sample_rate} else None)
        dim = patch_model.output["embedding"].shape[-1]
        # A model without tags (an embedding model) has no "probabilities".
        self._row_signature = {
            "probabilities": tf.TensorSpec([len(self._tags)], tf.float32),
            "embedding": tf.TensorSpec([dim], tf.float32),
        } if self._tags else {"embedding": tf.TensorSpec([dim], tf.float32)}
        window = grid.window
        self.serving_default = tf.function(
            self._serve_waveform,
            input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform")])
        self.tag_wav = tf.function(
            self._serve_wav, input_signature=[tf.TensorSpec([None], tf.string, name="wav")])
        self.patch = tf.function(
            self._patch, input_signature=[tf.TensorSpec([None, window], tf.float32,
                                                        name="waveform")])

    def _patch(self, windows: tf.Tensor) -> dict[str, tf.Tensor]:
        out = self.patch_model(windows, training=False)
        return {name: out[name] for name in self._row_signature}

    def _patches(self, flat_windows: tf.Tensor) -> dict[str, tf.Tensor]:
        return serving_graph.run_in_chunks(self._patch, flat_windows, self._max_chunk,
                                           self._row_signature)

    def _outputs(self, probabilities, embedding, starts, num_patches, repeat_padded
                 ) -> dict[str, tf.Tensor]:
        """The common output dict; per-patch tensors are ``[batch, patches, ...]``.

        ``probabilities`` is None for a model without tags: the outputs are then the
        embeddings, their mean (``mean_embedding``), times and counts."""
        batch = tf.shape(num_patches)[0]
        mask = tf.sequence_mask(num_patches, tf.shape(embedding)[1], tf.float32)

        def mean_over_patches(t: tf.Tensor) -> tf.Tensor:
            # Mean over the real patches only (tag_wav pads shorter files with zero rows).
            total = tf.reduce_sum(t * mask[:, :, tf.newaxis], axis=1)
            return total / tf.cast(num_patches, tf.float32)[:, tf.newaxis]

        times = tf.cast(starts, tf.float32) * self._seconds_per_frame
        if probabilities is None:
            return {
                "embedding": embedding,
                "mean_embedding": mean_over_patches(embedding),
                "patch_times": times,
                "num_patches": num_patches,
                "repeat_padded": repeat_padded,
            }
        mean = mean_over_patches(probabilities)
        tags = tf.tile(tf.constant(list(self._tags))[tf.newaxis, :], tf.stack([batch, 1]))
        return {
            "probabilities": probabilities,
            "mean_probabilities": mean,
            "embedding": embedding,
            "patch_times": times,
            "num_patches": num_patches,
            "repeat_padded": repeat_padded,
            # Repeated per row: TF Serving's batching splits every output along axis 0.
            "tags": tags,
        }

    def _serve_waveform(self, waveform: tf.Tensor) -> dict[str, tf.Tensor]:
        windows, starts, short = serving_graph.patch_windows(waveform, self._grid)
        batch, patches = tf.shape(windows)[0], tf.shape(windows)[1]
        out = self._patches(tf.reshape(windows, [-1, self._grid.window]))

        def per_row(t: tf.Tensor) -> tf.Tensor:
            return tf.reshape(t, tf.concat([[batch, patches], tf.shape(t)[1:]], axis=0))

        probabilities = per_row(out["probabilities"]) if self._tags else None
        return self._outputs(probabilities, per_row(out["embedding"]),
                             tf.tile(starts[tf.newaxis, :], tf.stack([batch, 1])),
                             tf.fill([batch], patches), tf.fill([batch], short))

    def _serve_wav(self, wav: tf.Tensor) -> dict[str, tf.Tensor]:
        windows, starts, short = serving_graph.wav_windows(wav, self._grid, self._sample_rate,
                                                           self.wav_resampler)
        # Every patch of every file goes through the backbone together, in bounded chunks.
        out = self._patches(windows.flat_values)
        lengths = windows.row_lengths()

        def per_file(t: tf.Tensor) -> tf.Tensor:
            return tf.RaggedTensor.from_row_lengths(t, lengths).to_tensor()

        probabilities = per_file(out["probabilities"]) if self._tags else None
        return self._outputs(probabilities, per_file(out["embedding"]),
                             starts.to_tensor(), tf.cast(lengths, tf.int32), short)


def _preset_document(config: PresetConfig, grid: PatchGrid, max_patches_per_call: int,
                     version: int, format: str,  # noqa: A002
                     wav_sample_rates: tuple[int, ...]) -> dict[str, Any]:
    """What a serving client needs to feed the export correctly, as JSON."""
    from zoo import __version__

    prep = config.preprocessing
    document = {
        "preset": config.to_dict(),
        "serving": {
            "format": "saved_model",
            "model_version": version,
            "sample_rate": prep.sample_rate,
            "patch_samples": prep.patch_samples,
            "patch_hop_samples": grid.hop_frames * grid.hop_length,
            "edge_padding": grid.edge,
            "pad_mode": grid.pad_mode,
            "tail": grid.tail,
            "min_tail_frames": grid.min_tail_frames,
            "short_input": grid.short_clips,
            "max_patches_per_call": max_patches_per_call,
            "signatures": list(SIGNATURES),
            "wav_encoding": "16-bit PCM WAV, any channel count (averaged)",
            "wav_sample_rates": list(wav_sample_rates),
            "wav_resampling": (f"in the graph, soxr {serving_graph.RESAMPLING_QUALITY} "
                               "filters, as zoo.tag" if len(wav_sample_rates) > 1 else "none"),
            "zoo_version": __version__,
            "tensorflow_version": tf.__version__,
        },
    }
    if format in PATCH_MODEL_FILES:
        # The file holds the patch model only: the caller cuts the patches.
        serving = document["serving"]
        for key in ("max_patches_per_call", "wav_encoding", "wav_sample_rates",
                    "wav_resampling"):
            del serving[key]
        serving.update(format=format, file=PATCH_MODEL_FILES[format],
                       input="waveform: float32 [batch, patch_samples], one patch per row; "
                             "patching (pad_mode, edge_padding, hops, tail) is the caller's",
                       outputs=["probabilities", "embedding"] if config.tags else ["embedding"])
        if format == "onnx":
            from zoo.serving.onnx_export import ONNX_OPSET

            serving.update(opset=ONNX_OPSET)
        else:  # an ONNX model has no signatures; a TFLite flatbuffer has this one
            serving.update(signatures=["serving_default"])
    return document


def _check_rates(rates: Sequence[int]) -> tuple[int, ...]:
    """``wav_sample_rates`` as a tuple of ints, refused if a rate is not a whole number of Hz
    in zoo.audio's range."""
    from zoo.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

    if isinstance(rates, (str, bytes, int)):
        raise ValueError(f"wav_sample_rates must be a sequence of rates, got {rates!r}")
    rates = tuple(rates)
    for rate in rates:
        if (isinstance(rate, bool) or not isinstance(rate, int)
                or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE):
            raise ValueError(f"wav_sample_rates: {rate!r} is not a sample rate in Hz from "
                             f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE}")
    return rates


def _write_assets(folder: Path, document: dict[str, Any], tags: tuple[str, ...]) -> None:
    (folder / TAGS_ASSET).write_text("".join(f"{t}\n" for t in tags), encoding="utf-8")
    (folder / PRESET_ASSET).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n",
                                       encoding="utf-8")


def tflite_from_keras(model: keras.Model, input_name: str = "waveform") -> bytes:
    """Convert a single-input Keras model to a TFLite flatbuffer of builtin ops only.

    The variables are frozen into constants first: converted as they are (from the concrete
    function with a trackable, or from a SavedModel), Keras 3 weights stay TFLite resource
    variables that nothing initialises, and the interpreter then returns NaN (XNNPACK) or fails
    in ``READ_VARIABLE``. The frozen function is wrapped again so that the flatbuffer keeps a
    ``serving_default`` signature with named outputs.

    Args:
        model: a Keras model with one input; dict outputs keep their names, a single tensor
            output is named ``output``.
        input_name: the signature's input name.

    Returns:
        The ``.tflite`` bytes; the batch axis is resizable (``shape_signature`` -1).

    Raises:
        tf.lite converter errors (``ConverterError``) if an op has no builtin TFLite kernel.

    Example:
        >>> data = tflite_from_keras(build_patch_model(zoo.load("musicnn_msd")))
        >>> runner = tf.lite.Interpreter(model_content=data).get_signature_runner()
        >>> runner(waveform=np.zeros((2, 48128), "float32"))["probabilities"].shape
        (2, 50)
    """
    # Internal module, but the one the TFLite converter itself uses to freeze variables.
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32, name=input_name)

    def call(waveform: tf.Tensor) -> dict[str, tf.Tensor]:
        out = model(waveform, training=False)
        return dict(out) if isinstance(out, dict) else {"output": out}

    with tflite_builtin_ops():  # the front-end layers trace to ops TFLite has
        concrete = tf.function(call, input_signature=[spec]).get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    structure = concrete.structured_outputs

    def call_frozen(waveform: tf.Tensor) -> dict[str, tf.Tensor]:
        return tf.nest.pack_sequence_as(structure, frozen(waveform))

    wrapped = tf.function(call_frozen, input_signature=[spec]).get_concrete_function()
    # An (empty) trackable makes the converter write a SignatureDef with the output names.
    converter = tf.lite.TFLiteConverter.from_concrete_functions([wrapped], tf.Module())
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def export(
    model_or_preset: str | os.PathLike | PresetConfig | keras.Model,
    base_dir: str | os.PathLike,
    version: int = 1,
    format: str = "saved_model",  # noqa: A002 - the name the issue and the CLI use
    *,
    model_name: str | None = None,
    tail: str = "end",
    max_patches_per_call: int = DEFAULT_MAX_PATCHES_PER_CALL,
    overwrite: bool = False,
    wav_sample_rates: Sequence[int] = serving_graph.WAV_SAMPLE_RATES,
) -> Path:
    """Export a tagger for serving, in TF Serving's ``<base>/<name>/<version>/`` layout.

    The version folder is written under a temporary name and renamed into place at the end, so
    a TF Serving instance watching ``base_dir`` never loads a half-written version.

    Args:
        model_or_preset: a preset name (``"musicnn_msd"``), a preset directory, a
            `PresetConfig`, or a model from `zoo.load`.
        base_dir: the model base folder (TF Serving's ``--model_base_path`` is
            ``base_dir/<model_name>``).
        version: the version folder, a positive integer (TF Serving serves the highest).
        format: ``"saved_model"`` (both signatures, see the module docstring), ``"tflite"``
            (``model.tflite``: the patch model, front-end included) or ``"onnx"``
            (``model.onnx``, opset `zoo.serving.onnx_export.ONNX_OPSET`: the same patch
            model, for ONNX Runtime; needs ``zoo-audio[onnx]``).
        model_name: the folder under ``base_dir``; default the preset name.
        tail: the in-graph patching's tail policy, as `zoo.tag`'s ``tail``: ``"end"`` (default,
            an extra end-aligned patch when >= 1 s is left uncovered) or ``"drop"``.
        max_patches_per_call: patches per backbone call inside the graph (memory bound).
        overwrite: replace an existing version folder instead of refusing.
        wav_sample_rates: the WAV sample rates ``tag_wav`` accepts and resamples in its graph
            (the preset's own rate is always accepted; ``()`` for that one only, which leaves
            the filters out: ~8 MB for the default rates at 16 kHz).

    From a JAX or PyTorch session, the export runs on TensorFlow in a subprocess, from the same
    weights (`zoo.serving.on_tensorflow`).

    Returns:
        The version folder, ``base_dir/model_name/version``.

    Raises:
        ValueError: bad ``format``, ``version``, ``tail``, ``max_patches_per_call`` or
            ``wav_sample_rates``.
        FileExistsError: the version folder exists and ``overwrite`` is False (except a TFLite
            export into a version folder that holds only a SavedModel: it is added beside it).
        TypeError: ``model_or_preset`` is not a preset or a model from `zoo.load`.
        RuntimeError: the installed soxr cannot be reproduced by the in-graph resampler
            (`zoo.serving.graph.soxr_filter`).
        PresetError, WeightsError: as `zoo.load`.

    Example:
        >>> path = zoo.export("musicnn_msd", "models")   # models/musicnn_msd/1
        >>> sig = tf.saved_model.load(str(path)).signatures["serving_default"]
        >>> sig(waveform=tf.zeros([1, 48000]))["mean_probabilities"].shape
        TensorShape([1, 50])
    """
    if keras.backend.backend() != "tensorflow":  # the graph is TensorFlow's: export there
        from zoo.serving.on_tensorflow import export_on_tensorflow

        return export_on_tensorflow(
            model_or_preset, base_dir, version=version, format=format, model_name=model_name,
            tail=tail, max_patches_per_call=max_patches_per_call, overwrite=overwrite,
            wav_sample_rates=tuple(wav_sample_rates))
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer, got {version!r}")
    if tail not in ("end", "drop"):
        raise ValueError(f"tail must be 'end' or 'drop', got {tail!r}")
    if max_patches_per_call < 1:
        raise ValueError(f"max_patches_per_call must be >= 1, got {max_patches_per_call}")
    rates = _check_rates(wav_sample_rates)
    model = _resolve_model(model_or_preset)
    config: PresetConfig = model.zoo_preset
    rates = tuple(sorted(set(rates) | {config.preprocessing.sample_rate}))
    name = model_name or config.name
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise ValueError(f"model_name must be a plain folder name, got {name!r}")
    target = Path(os.fspath(base_dir)).expanduser() / name / str(version)
    # A TFLite or ONNX file may join a SavedModel of the same version (README: both exports,
    # one folder): its files sit beside saved_model.pb (whose own are under assets/). A second
    # patch file's document, where zoo_preset.json is taken, is written as <file>.json.
    patch_file = PATCH_MODEL_FILES.get(format)
    beside = (target.exists() and not overwrite and patch_file is not None
              and (target / "saved_model.pb").is_file() and not (target / patch_file).exists())
    if target.exists() and not overwrite and not beside:
        raise FileExistsError(f"{target} exists: pick another version (--version N; Python: "
                              "version=N) or replace it (--overwrite; Python: overwrite=True)")

    grid = patch_grid_for(config, tail)
    document = _preset_document(config, grid, max_patches_per_call, version, format, rates)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A dot-name is not a number, so TF Serving ignores it until the rename below.
    staging = target.parent / f".{version}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        if format == "saved_model":
            with tempfile.TemporaryDirectory(prefix="zoo-export-") as assets:
                _write_assets(Path(assets), document, config.tags)
                module = ServingModule(build_patch_model(model), config, grid,
                                       max_patches_per_call, assets, rates)
                if module.wav_resampler is not None and module.wav_resampler.skipped:
                    # rates whose filter the graph cannot reproduce exactly are refused
                    document["wav_sample_rates"] = sorted(module.wav_resampler.rates)
                    _write_assets(Path(assets), document, config.tags)
                signatures = {
                    "serving_default": module.serving_default.get_concrete_function(),
                    "tag_wav": module.tag_wav.get_concrete_function(),
                }
                tf.saved_model.save(module, str(staging), signatures=signatures)
        else:
            if format == "onnx":
                from zoo.serving.onnx_export import onnx_from_keras, onnx_metadata

                data = onnx_from_keras(build_patch_model(model),
                                       metadata=onnx_metadata(document))
            else:
                data = tflite_from_keras(build_patch_model(model))
            staging.mkdir()
            (staging / patch_file).write_bytes(data)
            _write_assets(staging, document, config.tags)
            if beside:
                if not (target / TAGS_ASSET).exists():
                    os.replace(staging / TAGS_ASSET, target / TAGS_ASSET)
                taken = (target / PRESET_ASSET).exists()
                os.replace(staging / PRESET_ASSET,
                           target / (f"{patch_file}.json" if taken else PRESET_ASSET))
                os.replace(staging / patch_file, target / patch_file)  # the model file last
                return target
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
