"""Assemble a complete model: waveform patch -> front-end layers -> backbone -> tags/embedding.

A preset with ``preprocessing.frontend == "waveform"`` (sampleCNN) has no front-end layer: the
backbone takes the waveform patch itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from zoo import layers as zl
from zoo.errors import PresetError
from zoo.models.registry import get_architecture
from zoo.presets import Preprocessing, PresetConfig

COMPRESSIONS = {
    "log10_scaled": zl.Log10Scaled,
    "log_eps": zl.LogEps,
    "log_learn": zl.LogLearn,
    "power_to_db": zl.PowerToDb,
    "pcen": zl.PCEN,
}


def build_frontend(prep: Preprocessing) -> list[keras.layers.Layer]:
    """The in-graph front-end of a preset: mel spectrogram, then its log compression.

    The mel layer frames without centring: `zoo.inference.tagging` pads the whole file once and cuts
    overlapping windows, which reproduces a single whole-file STFT exactly. A waveform
    front-end has no layers (empty list).
    """
    if prep.frontend == "waveform":
        return []
    if prep.compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression {prep.compression!r}; known: {list(COMPRESSIONS)}")
    mel = zl.MelSpectrogram(
        sr=prep.sample_rate, n_fft=prep.n_fft, hop_length=prep.hop_length,
        win_length=prep.win_length, window=prep.window, center=False, power=prep.power,
        n_mels=prep.n_mels, fmin=prep.fmin, fmax=prep.fmax, htk=prep.htk, norm=prep.norm,
        name="melspectrogram",
    )
    compression = COMPRESSIONS[prep.compression](**prep.compression_config, name="compression")
    return [mel, compression]


def compression_weights(layer: keras.layers.Layer) -> dict[str, list]:
    """The trained variables of a front-end compression layer (`LogLearn`, `PCEN`), by name.

    Front-end layers live in the waveform wrapper, not in the backbone whose weights file a
    preset holds; their few trained values are kept in ``Preprocessing.compression_weights``
    (JSON) instead, so a preset stays one weights file and rebuilds exactly.

    Returns:
        ``{variable name: nested list}``; empty for a layer without weights.
    """
    return {w.name: w.numpy().tolist() for w in layer.weights}


def set_compression_weights(layer: keras.layers.Layer, values: dict[str, list]) -> None:
    """Assign values from `compression_weights` to a built compression layer.

    Raises:
        ValueError: a name the layer does not have, or a shape that does not match.
    """
    by_name = {w.name: w for w in layer.weights}
    unknown = set(values) - set(by_name)
    if unknown:
        raise ValueError(f"compression_weights {sorted(unknown)} are not variables of "
                         f"{type(layer).__name__} ({sorted(by_name)})")
    for name, value in values.items():
        variable = by_name[name]
        array = np.asarray(value, dtype=variable.dtype)
        if tuple(array.shape) != tuple(variable.shape):
            raise ValueError(f"compression weight {name!r} has shape {array.shape}, the layer "
                             f"expects {tuple(variable.shape)}")
        variable.assign(array)


def build_backbone(config: PresetConfig, weights_path: str | os.PathLike | None = None
                   ) -> keras.Model:
    """The log-mel model of a preset, with its tag layer, optionally loading weights."""
    arch = get_architecture(config.architecture)
    backbone = arch.build(**config.architecture_config, n_tags=len(config.tags), include_top=True,
                          name=f"{config.architecture}_backbone")
    if weights_path is not None:
        backbone.load_weights(os.fspath(weights_path))
    return backbone


def wrap_waveform(config: PresetConfig, logmel_model: keras.Model, name: str) -> keras.Model:
    """Put the preset's front-end in front of a log-mel model (any number of outputs); for a
    waveform front-end, the model gets the patch as it is.

    Raises:
        PresetError: a waveform backbone whose input length is not the preset's patch.
    """
    inputs, outputs = waveform_graph(config, logmel_model)
    return keras.Model(inputs, outputs, name=name)


def frontend_graph(config: PresetConfig) -> tuple[Any, Any]:
    """``(waveform input, front-end output)`` tensors of a preset's in-graph front-end (the
    waveform itself for a family with a waveform front-end)."""
    prep = config.preprocessing
    waveform = keras.Input((prep.patch_samples,), name="waveform")
    x = waveform
    frontend = build_frontend(prep)
    for layer in frontend:
        x = layer(x)
    if prep.compression_weights and frontend:  # trained values (the layer is built by now)
        set_compression_weights(frontend[-1], prep.compression_weights)
    return waveform, x


def waveform_graph(config: PresetConfig, logmel_model: keras.Model) -> tuple[Any, Any]:
    """``(waveform input, outputs)`` tensors of `wrap_waveform`'s graph."""
    waveform, x = frontend_graph(config)
    check_backbone_input(config, logmel_model)
    return waveform, logmel_model(x)


def check_backbone_input(config: PresetConfig, logmel_model: keras.Model) -> None:
    """Raises PresetError: a waveform backbone whose input is not the preset's patch."""
    prep = config.preprocessing
    if (prep.frontend == "waveform"
            and tuple(logmel_model.input_shape[1:]) != (prep.patch_samples,)):
        raise PresetError(f"preset {config.name!r}: the {config.architecture} backbone takes "
                          f"input {tuple(logmel_model.input_shape[1:])}, the preset's patches "
                          f"are {prep.patch_samples} samples (preprocessing.patch_frames)")


def select_outputs(backbone: keras.Model, config: PresetConfig, include_top: bool = True,
                   features: bool = False) -> keras.Model:
    """A view of the backbone that outputs the tags, the embedding, or every named feature."""
    taps, embedding_name = get_architecture(config.architecture).taps(config.architecture_config)
    if features:
        outputs = {name: backbone.get_layer(layer).output for name, layer in taps.items()}
        if include_top and config.tags:  # an embedding model's output is a tap already
            outputs["tags"] = backbone.output
        return keras.Model(backbone.input, outputs, name=f"{backbone.name}_features")
    if include_top:
        return backbone
    embedding = backbone.get_layer(taps[embedding_name]).output
    return keras.Model(backbone.input, embedding, name=f"{backbone.name}_embedding")


def inference_view(backbone: keras.Model, config: PresetConfig,
                   outputs: Mapping[str, str] | str) -> keras.Model:
    """Backbone input -> ``outputs``, through the family's inference-only graph where it has one.

    Args:
        backbone: the preset's backbone (``model.zoo_backbone``).
        config: the preset.
        outputs: one layer name, or output name -> layer name.

    Returns:
        A model sharing the backbone's variables: the family's faster inference graph (musicnn,
        `zoo.models.musicnn.inference`), or a plain view of the backbone's layers. Never train it.
    """
    inference = get_architecture(config.architecture).inference
    if inference is not None:
        try:
            return inference(backbone, outputs)
        except ValueError:
            pass  # e.g. a tap the fast graph does not compute: the plain view has every layer
    get = backbone.get_layer
    tensors = get(outputs).output if isinstance(outputs, str) else {
        key: get(layer).output for key, layer in outputs.items()}
    return keras.Model(backbone.input, tensors, name=f"{backbone.name}_view")


def layer_names_of(outputs: object, backbone: keras.Model) -> Mapping[str, str] | str:
    """The backbone layer behind each output tensor of a view (a tensor or a dict of them)."""
    by_tensor = {id(layer.output): layer.name for layer in backbone.layers}
    if isinstance(outputs, Mapping):
        return {key: by_tensor[id(t)] for key, t in outputs.items()}
    return by_tensor[id(outputs)]


def inference_model(model: keras.Model) -> keras.Model:
    """The inference-only twin of a `zoo.load` model: same input, outputs and variables.

    Runs the family's faster inference graph (`inference_view`) behind the model's own front-end
    layers; for a family without one, returns ``model`` itself. Batch norm always uses its moving
    statistics: for tagging, extraction and export, never for training.

    Raises:
        TypeError: ``model`` does not come from `zoo.load`.
    """
    if callable(getattr(model, "inference_model", None)):  # a ZooModel knows its parts
        return model.inference_model()
    config = getattr(model, "zoo_preset", None)
    backbone = getattr(model, "zoo_backbone", None)
    if config is None or backbone is None:
        raise TypeError("pass a model from zoo.load() (it carries its preprocessing and backbone)")
    if not get_architecture(config.architecture).has_inference_graph():
        return model
    # A model assembled with `wrap_waveform` (+ zoo_preset / zoo_backbone attributes): its last
    # layer is the backbone view, the one before it the last front-end layer.
    head = model.layers[-1]
    if head is backbone:
        names = layer_names_of(backbone.outputs[0], backbone)
    else:
        internal = keras.tree.pack_sequence_as(head.output, head.outputs)
        names = layer_names_of(internal, backbone)
    features = model.layers[-2].output if len(model.layers) > 2 else model.input
    twin = keras.Model(model.input, inference_view(backbone, config, names)(features),
                       name=f"{model.name}_inference")
    twin.zoo_preset, twin.zoo_backbone = config, backbone
    return twin
