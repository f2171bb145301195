"""`zoo.load`: a preset name or preset directory -> a waveform-in Keras model with its weights."""

from __future__ import annotations

import os
from pathlib import Path

import keras

from zoo.errors import PresetError
from zoo.hub import resolve_weights
from zoo.models.musicnn.convert import assign_tf1_weights, read_tf1_checkpoint
from zoo.models.pipeline import build_backbone, select_outputs, wrap_waveform
from zoo.presets import PresetConfig, get_preset

PRESET_CONFIG_FILE = "config.json"


def resolve_config(preset: str | os.PathLike | PresetConfig) -> PresetConfig:
    """The config of a built-in preset name, a preset directory, or a config itself."""
    if isinstance(preset, PresetConfig):
        return preset
    path = Path(os.fspath(preset)).expanduser()
    if path.is_dir():
        config_file = path / PRESET_CONFIG_FILE
        if not config_file.is_file():
            raise PresetError(f"{path} is not a preset directory: it has no {PRESET_CONFIG_FILE}")
        return PresetConfig.from_json_file(config_file, root=str(path))
    if isinstance(preset, str) and ("/" in preset or os.sep in preset):
        raise PresetError(f"preset directory {preset!r} does not exist")
    return get_preset(str(preset))


def load_backbone(config: PresetConfig, checkpoint: str | os.PathLike | None = None) -> keras.Model:
    """The log-mel backbone (with its tag layer) of a preset, weights loaded and verified."""
    if checkpoint is not None:
        backbone = build_backbone(config)
        assign_tf1_weights(backbone, config.architecture, read_tf1_checkpoint(checkpoint))
        return backbone
    return build_backbone(config, resolve_weights(config))


def load(
    preset: str | os.PathLike | PresetConfig,
    include_top: bool = True,
    *,
    features: bool = False,
    checkpoint: str | os.PathLike | None = None,
) -> keras.Model:
    """Load a pretrained model whose input is the raw waveform of one patch.

    The front-end (mel spectrogram and log compression, exactly as the weights were trained)
    is inside the model: feed float32 audio at ``model.zoo_preset.preprocessing.sample_rate``,
    shape ``(batch, patch_samples)`` (48,128 samples = 3 s for the musicnn presets). For whole
    files of any length use `zoo.tag` / `zoo.extract`.

    Args:
        preset: a built-in name (see `zoo.presets()`) or a directory written by `zoo.save_preset`.
        include_top: output the tag probabilities (True) or the embedding (False).
        features: output a dict of every named feature tap (``timbral``, ``cnn1``, ...,
            ``penultimate``; vgg: ``pool1``..``pool5``), plus ``tags`` if include_top.
        checkpoint: an original TF1 checkpoint folder to convert on the fly instead of the
            published weights (the only way to use ``musicnn_msd_big``).

    Returns:
        A Keras model; ``model.zoo_preset`` is its `PresetConfig` (tags, preprocessing, source).

    Raises:
        PresetError: unknown preset. WeightsError: weights unavailable or failing their sha256.

    Example:
        >>> model = zoo.load("musicnn_msd")
        >>> probs = model(np.zeros((1, 48128), "float32"))  # (1, 50)
    """
    config = resolve_config(preset)
    backbone = load_backbone(config, checkpoint)
    model = wrap_waveform(config, select_outputs(backbone, config, include_top, features),
                          name=config.name)
    model.zoo_preset = config
    model.zoo_backbone = backbone
    return model
