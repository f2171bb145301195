"""Architecture registry: name -> builder of a backbone (log-mel input, or the waveform patch for
a preset with a waveform front-end), its feature taps, its embedding."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import keras

from zoo.errors import PresetError
from zoo.models.classifier import build_classifier, classifier_features
from zoo.models.melcnn import MELCNN_FEATURES, build_melcnn
from zoo.models.musicnn.inference import musicnn_inference_view
from zoo.models.musicnn.musicnn import MUSICNN_FEATURES, build_musicnn
from zoo.models.musicnn.vgg import VGG_FEATURES, build_vgg
from zoo.models.samplecnn import SAMPLECNN_FEATURES, build_samplecnn, samplecnn_taps
from zoo.models.siamese.model import PROJECTION, build_siamese, siamese_features


@dataclass(frozen=True)
class Architecture:
    """A model family.

    Args:
        build: ``build(**architecture_config, include_top=True) -> keras.Model`` on log-mel input
            (on the waveform patch, for a preset with a waveform front-end).
        features: feature name -> layer name, in the order `zoo.extract` reports them.
        embedding: the feature that ``include_top=False`` returns.
        resolve: for families whose taps depend on the config (``classifier``: those of its
            backbone), ``resolve(architecture_config) -> (features, embedding)``.
        inference: for families with a faster inference-only graph (``musicnn``),
            ``inference(backbone, outputs) -> keras.Model`` with ``outputs`` a layer name or a dict
            of output name -> layer name; it raises ValueError for outputs it cannot give.
    """

    build: Callable[..., keras.Model]
    features: Mapping[str, str]
    embedding: str
    resolve: Callable[[dict], tuple[Mapping[str, str], str]] | None = None
    inference: Callable[[keras.Model, Mapping[str, str] | str], keras.Model] | None = None

    def taps(self, config: Mapping) -> tuple[Mapping[str, str], str]:
        """``(features, embedding)`` of a model built with ``config``."""
        if self.resolve is not None:
            return self.resolve(dict(config))
        return self.features, self.embedding


def _encoder_inference(model: keras.Model, outputs: Mapping[str, str] | str) -> keras.Model:
    """``classifier`` / ``siamese``: their flat graph keeps the encoder's layers under the
    encoder's names, so a musicnn encoder's inference graph applies to the whole model (any
    other encoder: ValueError, and callers fall back to the plain graph)."""
    return musicnn_inference_view(model, outputs)


ARCHITECTURES: dict[str, Architecture] = {
    "musicnn": Architecture(build_musicnn, MUSICNN_FEATURES, "penultimate",
                            inference=musicnn_inference_view),
    "vgg": Architecture(build_vgg, VGG_FEATURES, "pool5"),
    "melcnn": Architecture(build_melcnn, MELCNN_FEATURES, "embedding"),
    # Features are resolved from the backbone named in the config.
    "classifier": Architecture(build_classifier, {}, "embedding", resolve=classifier_features,
                               inference=_encoder_inference),
    # Encoder taps (from the config) plus the unit-length "projection", its embedding.
    "siamese": Architecture(build_siamese, {}, PROJECTION, resolve=siamese_features,
                            inference=_encoder_inference),
    # Raw waveform in (preprocessing.frontend "waveform"); the taps depend on the depth.
    "samplecnn": Architecture(build_samplecnn, SAMPLECNN_FEATURES, "embedding",
                              resolve=samplecnn_taps),
}


def get_architecture(name: str) -> Architecture:
    """The registered architecture called ``name``.

    Raises:
        PresetError: unknown name (the message lists the known ones).
    """
    try:
        return ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(ARCHITECTURES)
        raise PresetError(f"unknown architecture {name!r}; known: {known}") from None
