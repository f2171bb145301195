"""`zoo.load`: a preset (name, directory or ``hf://``) -> a waveform-in Keras model with weights."""

from __future__ import annotations

import os
import weakref
from typing import Any

import keras

from zoo.hub import HubOptions, resolve_config, resolve_weights
from zoo.models.musicnn.convert import assign_tf1_weights, read_tf1_checkpoint
from zoo.models.pipeline import build_backbone
from zoo.models.zoo_model import ZooModel
from zoo.presets import PresetConfig

# resolve_config lives in zoo.hub (it needs no TensorFlow, so `zoo fetch` stays light); it is
# re-exported here, where it always was.
__all__ = ["load", "load_backbone", "resolve", "resolve_config"]

# Models by (what was asked for, outputs): presets are built once per process.
_LOADED: dict[tuple[str, bool, bool], keras.Model] = {}
# Views of models the caller passed in, by model (and outputs), so compiled functions are reused.
_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


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
            a preset published on a Hub: ``"hf://owner/repo"`` or ``"hf://owner/repo@rev"``
            (a commit hash makes it reproducible and, once cached, needs no network), or a
            ``.keras`` file saved from a zoo model (``model.save("m.keras")``).
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
        A `zoo.models.ZooModel`; ``model.zoo_preset`` is its `PresetConfig` (tags,
        preprocessing, source). ``model.save("m.keras")`` and ``keras.models.load_model``
        round-trip it; `zoo.tag` accepts the model or the ``.keras`` path.

    Raises:
        PresetError: unknown preset or invalid config. WeightsError: weights unavailable (not
            shipped, not cached, Hub unreachable or offline: the message says how to pre-fetch
            them) or failing their sha256.

    Example:
        >>> model = zoo.load("musicnn_msd")
        >>> probs = model(np.zeros((1, 48128), "float32"))  # (1, 50)
    """
    if is_keras_file(preset):
        return view_of(load_keras_file(preset), include_top, features)
    hub = HubOptions(endpoint=endpoint, token=token)
    config = resolve_config(preset, hub)
    label = None if isinstance(preset, PresetConfig) else os.fspath(preset)
    backbone = load_backbone(config, checkpoint, hub, label)
    return ZooModel(config, include_top, features, backbone=backbone)


def is_keras_file(preset: object) -> bool:
    """Whether ``preset`` names a ``.keras`` file (a saved model, not a preset)."""
    if not isinstance(preset, (str, os.PathLike)):
        return False
    text = os.fspath(preset)
    return text.endswith(".keras") and not text.startswith("hf://")


def load_keras_file(path: str | os.PathLike) -> ZooModel:
    """A `ZooModel` saved with ``model.save(...)``, loaded with Keras' ``safe_mode`` on.

    Raises:
        PresetError: no such file, not a Keras archive, or a Keras model that is not a zoo
            model (it does not carry the preprocessing that tagging needs).
    """
    from zoo.errors import PresetError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise PresetError(f"{path}: no such .keras file")
    try:
        model = keras.models.load_model(path, safe_mode=True)
    except Exception as err:  # noqa: BLE001 - Keras raises many kinds for a bad archive
        raise PresetError(f"{path}: cannot load it as a Keras model ({err})") from err
    if not isinstance(model, ZooModel):
        raise PresetError(f"{path} holds a {type(model).__name__}, not a zoo model: save a "
                          "model from zoo.load() (or a ZooModel) to use it with zoo.tag")
    return model


def view_of(model: ZooModel, include_top: bool = True, features: bool = False) -> ZooModel:
    """``model`` with other outputs (tags, embedding or features), sharing its variables.

    Raises:
        PresetError: tags asked of a model saved without its tag layer.
    """
    from zoo.errors import PresetError

    if (model.include_top, model.features) == (include_top, features):
        return model
    if include_top and not model.include_top:
        raise PresetError(f"model {model.name!r} was saved without its tag layer "
                          "(include_top=False): it has embeddings, not tags")
    return ZooModel(model.zoo_preset, include_top, features, backbone=model.zoo_backbone,
                    name=model.name)


def resolve(model: Any, *, include_top: bool = True, features: bool = False) -> keras.Model:
    """The one way zoo turns "a model" into a waveform-in model with the outputs asked for.

    Accepts a model from `zoo.load` (or `keras.models.load_model` of one), a preset name, a
    preset directory, an ``hf://`` address, a ``.keras`` file or a `PresetConfig`. Presets and
    files are loaded once per process; views of a given model (other outputs, same variables)
    are made once per model.

    Args:
        model: see above.
        include_top: tags (True) or the embedding (False). A model passed in keeps its own
            outputs, except that ``include_top=False`` asks a `ZooModel` tagger for its
            embedding (a view sharing its variables).
        features: a dict of every named feature (with ``tags`` if the model has them).

    Raises:
        TypeError: a Keras model that does not come from zoo (no preset).
        PresetError, WeightsError: as `load`.
    """
    if isinstance(model, keras.Model):
        return _view_of_given(model, include_top, features)
    if isinstance(model, PresetConfig):
        return load(model, include_top=include_top, features=features)
    key = (os.fspath(model), bool(include_top), bool(features))
    if key not in _LOADED:
        if is_keras_file(model):  # features of an embedding model saved without its tags
            saved = load_keras_file(model)
            _LOADED[key] = view_of(saved, (include_top and not features) or
                                   (features and saved.include_top), features)
        else:
            _LOADED[key] = load(model, include_top=include_top, features=features)
    return _LOADED[key]


def _view_of_given(model: keras.Model, include_top: bool, features: bool) -> keras.Model:
    from zoo.models.pipeline import select_outputs, wrap_waveform

    config = getattr(model, "zoo_preset", None)
    if config is None:
        raise TypeError("pass a model from zoo.load() (it carries its preprocessing), a "
                        "preset name, a preset directory or a .keras file saved from one")
    views = _VIEWS.setdefault(model, {})
    if not features and not include_top and isinstance(model, ZooModel) and model.include_top:
        if "embedding" not in views:
            views["embedding"] = view_of(model, include_top=False)
        return views["embedding"]
    if not features:
        return model
    if "features" not in views:
        if isinstance(model, ZooModel):
            views["features"] = view_of(model, model.include_top, features=True)
        else:  # a model assembled by hand with zoo_preset / zoo_backbone attributes
            view = select_outputs(model.zoo_backbone, config, include_top=True, features=True)
            wrapped = wrap_waveform(config, view, name=config.name)
            wrapped.zoo_preset, wrapped.zoo_backbone = config, model.zoo_backbone
            views["features"] = wrapped
    return views["features"]
