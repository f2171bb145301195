"""`ZooModel`: the one model type `zoo.load` returns, self-describing through Keras' own saving.

A `ZooModel` is a functional Keras model (waveform patch -> front-end -> backbone -> tags,
embedding or named features) whose ``get_config`` is its preset (`zoo.presets.PresetConfig`)
and its output choice, so ``model.save("m.keras")`` and ``keras.models.load_model("m.keras")``
(``safe_mode`` on: no Lambda, no pickle) give back a `ZooModel` that `zoo.tag`, `zoo.extract`,
`zoo.export` and `zoo index` accept as they accept `zoo.load`'s. The preset rides along as
``model.zoo_preset``; the full backbone (with its tag layer, for the fast inference graph and
feature views) as ``model.zoo_backbone``, kept out of Keras' weight tracking so that an
``include_top=False`` model holds, trains and saves only the weights its output uses.
"""

from __future__ import annotations

from typing import Any

import keras

from zoo.models.pipeline import (
    build_backbone,
    check_backbone_input,
    frontend_graph,
    inference_view,
    layer_names_of,
    select_outputs,
)
from zoo.models.registry import get_architecture
from zoo.presets import PresetConfig


@keras.saving.register_keras_serializable(package="zoo")
class ZooModel(keras.Model):
    """A waveform-in zoo model that carries its preset.

    Args:
        preset: the `PresetConfig` (or its ``to_dict()``).
        include_top: output the tag probabilities (True) or the embedding (False).
        features: output a dict of every named feature tap (plus ``tags`` if include_top).
        backbone: the backbone to wrap (with trained weights); default: a new one, randomly
            initialised (what ``keras.models.load_model`` does before it restores the saved
            weights).
        name: the model's name (default: the preset's).

    Example:
        >>> model = zoo.load("musicnn_msd")          # a ZooModel
        >>> model.save("tagger.keras")
        >>> again = keras.models.load_model("tagger.keras")
        >>> zoo.tag("song.mp3", model=again).top(3)
    """

    def __init__(self, preset: PresetConfig | dict[str, Any], include_top: bool = True,
                 features: bool = False, *, backbone: keras.Model | None = None,
                 name: str | None = None, **kwargs: Any):
        config = preset if isinstance(preset, PresetConfig) else PresetConfig.from_dict(preset)
        if backbone is None:
            backbone = build_backbone(config)
        view = select_outputs(backbone, config, include_top, features)
        check_backbone_input(config, view)
        inputs, frontend_output = frontend_graph(config)
        kwargs.pop("trainable", None)  # restored by from_config, after the graph is built
        super().__init__(inputs=inputs, outputs=view(frontend_output), name=name or config.name,
                         **kwargs)
        # Plain attributes, not tracked: the backbone's unused layers (e.g. the tag layer of an
        # embedding model) must not become this model's weights.
        object.__setattr__(self, "_zoo_config", config)
        object.__setattr__(self, "_zoo_backbone", backbone)
        object.__setattr__(self, "_zoo_outputs", (bool(include_top), bool(features)))
        # What the inference twin needs: where the front-end ends, which backbone layers answer.
        object.__setattr__(self, "_zoo_frontend_output", frontend_output)
        object.__setattr__(self, "_zoo_output_layers", layer_names_of(view.output, backbone))

    @property
    def zoo_preset(self) -> PresetConfig:
        """The preset: preprocessing (sample rate, patching, front-end), tags, architecture."""
        return self._zoo_config

    @property
    def zoo_backbone(self) -> keras.Model:
        """The log-mel backbone with its tag layer (shares this model's variables)."""
        return self._zoo_backbone

    @property
    def include_top(self) -> bool:
        return self._zoo_outputs[0]

    @property
    def features(self) -> bool:
        return self._zoo_outputs[1]

    def inference_model(self) -> keras.Model:
        """The inference-only twin: same input, outputs and variables, through the family's
        faster inference graph (`zoo.models.pipeline.inference_view`) behind this model's own
        front-end layers; this model itself for a family without one. Never train it."""
        config = self._zoo_config
        if not get_architecture(config.architecture).has_inference_graph():
            return self
        fast = inference_view(self._zoo_backbone, config, self._zoo_output_layers)
        twin = keras.Model(self.input, fast(self._zoo_frontend_output),
                           name=f"{self.name}_inference")
        twin.zoo_preset, twin.zoo_backbone = config, self._zoo_backbone
        return twin

    def get_config(self) -> dict[str, Any]:
        return {"preset": self._zoo_config.to_dict(), "include_top": self.include_top,
                "features": self.features, "name": self.name,
                "trainable": self.trainable}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> ZooModel:
        config = dict(config)
        trainable = config.pop("trainable", True)
        model = cls(**config)
        model.trainable = trainable
        return model
