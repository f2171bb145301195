"""Assemble a complete model: waveform patch -> front-end layers -> backbone -> tags/embedding."""

from __future__ import annotations

import os

import keras

from zoo import layers as zl
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

    The mel layer frames without centring: `zoo.tagging` pads the whole file once and cuts
    overlapping windows, which reproduces a single whole-file STFT exactly.
    """
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
    """Put the preset's front-end in front of a log-mel model (any number of outputs)."""
    prep = config.preprocessing
    waveform = keras.Input((prep.patch_samples,), name="waveform")
    x = waveform
    for layer in build_frontend(prep):
        x = layer(x)
    return keras.Model(waveform, logmel_model(x), name=name)


def select_outputs(backbone: keras.Model, config: PresetConfig, include_top: bool = True,
                   features: bool = False) -> keras.Model:
    """A view of the backbone that outputs the tags, the embedding, or every named feature."""
    arch = get_architecture(config.architecture)
    if features:
        outputs = {name: backbone.get_layer(layer).output for name, layer in arch.features.items()}
        if include_top:
            outputs["tags"] = backbone.output
        return keras.Model(backbone.input, outputs, name=f"{backbone.name}_features")
    if include_top:
        return backbone
    embedding = backbone.get_layer(arch.features[arch.embedding]).output
    return keras.Model(backbone.input, embedding, name=f"{backbone.name}_embedding")


def build_model(config: PresetConfig, weights_path: str | os.PathLike | None = None,
                include_top: bool = True, features: bool = False) -> keras.Model:
    """Waveform-in model of a preset.

    Args:
        config: the preset.
        weights_path: a ``.weights.h5`` of the log-mel backbone, or None for random weights.
        include_top: output the tag probabilities (True) or the embedding (False).
        features: output a dict of every named feature tap (plus ``"tags"`` if include_top).
    """
    backbone = build_backbone(config, weights_path)
    return wrap_waveform(config, select_outputs(backbone, config, include_top, features),
                         name=config.name)
