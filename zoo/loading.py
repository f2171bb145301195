"""`zoo.load`: a preset (name, directory or ``hf://``) -> a waveform-in Keras model with weights."""

from __future__ import annotations

import os

import keras

from zoo.hub import HubOptions, resolve_config, resolve_weights
from zoo.models.musicnn.convert import assign_tf1_weights, read_tf1_checkpoint
from zoo.models.pipeline import build_backbone, select_outputs, wrap_waveform
from zoo.presets import PresetConfig

# resolve_config lives in zoo.hub (it needs no TensorFlow, so `zoo fetch` stays light); it is
# re-exported here, where it always was.
__all__ = ["load", "load_backbone", "resolve_config"]


def load_backbone(config: PresetConfig, checkpoint: str | os.PathLike | None = None,
                  hub: HubOptions | None = None, label: str | None = None) -> keras.Model:
    """The log-mel backbone (with its tag layer) of a preset, weights loaded and verified.

    ``hub`` says how to reach the Hub if the weights must be downloaded; ``label`` is what the
    user asked for, for error messages (see `zoo.hub.resolve_weights`).
    """
    if checkpoint is not None:
        backbone = build_backbone(config)
        assign_tf1_weights(backbone, config.architecture, read_tf1_checkpoint(checkpoint))
        return backbone
    return build_backbone(config, resolve_weights(config, hub, label=label))


def load(
    preset: str | os.PathLike | PresetConfig,
    include_top: bool = True,
    *,
    features: bool = False,
    checkpoint: str | os.PathLike | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
) -> keras.Model:
    """Load a pretrained model whose input is the raw waveform of one patch.

    The front-end (mel spectrogram and log compression, exactly as the weights were trained)
    is inside the model: feed float32 audio at ``model.zoo_preset.preprocessing.sample_rate``,
    shape ``(batch, patch_samples)`` (48,128 samples = 3 s for the musicnn presets). For whole
    files of any length use `zoo.tag` / `zoo.extract`.

    Args:
        preset: a built-in name (see `zoo.presets()`), a directory written by `zoo.save_preset`,
            or a preset published on a Hub: ``"hf://owner/repo"`` or ``"hf://owner/repo@rev"``
            (a commit hash makes it reproducible and, once cached, needs no network).
        include_top: output the tag probabilities (True) or the embedding (False).
        features: output a dict of every named feature tap (``timbral``, ``cnn1``, ...,
            ``penultimate``; vgg: ``pool1``..``pool5``; samplecnn: ``stem``, ``block1``..,
            ``pooled``, ``embedding``), plus ``tags`` if include_top.
        checkpoint: an original TF1 checkpoint folder to convert on the fly instead of the
            published weights (the only way to use ``musicnn_msd_big``).
        endpoint: Hub URL for ``hf://`` presets and Hub-hosted weights (a private mirror);
            default ``ZOO_HUB_ENDPOINT``, ``HF_ENDPOINT``, then https://huggingface.co.
        token: Hub access token; default ``HF_TOKEN`` or the one saved by ``hf auth login``.

    Returns:
        A Keras model; ``model.zoo_preset`` is its `PresetConfig` (tags, preprocessing, source).

    Raises:
        PresetError: unknown preset or invalid config. WeightsError: weights unavailable (not
            shipped, not cached, Hub unreachable or offline: the message says how to pre-fetch
            them) or failing their sha256.

    Example:
        >>> model = zoo.load("musicnn_msd")
        >>> probs = model(np.zeros((1, 48128), "float32"))  # (1, 50)
    """
    hub = HubOptions(endpoint=endpoint, token=token)
    config = resolve_config(preset, hub)
    label = None if isinstance(preset, PresetConfig) else os.fspath(preset)
    backbone = load_backbone(config, checkpoint, hub, label)
    model = wrap_waveform(config, select_outputs(backbone, config, include_top, features),
                          name=config.name)
    model.zoo_preset = config
    model.zoo_backbone = backbone
    return model
