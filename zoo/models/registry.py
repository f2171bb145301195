"""Architecture registry: name -> builder of a log-mel backbone, its feature taps, its embedding."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import keras

from zoo.errors import PresetError
from zoo.models.musicnn.musicnn import MUSICNN_FEATURES, build_musicnn
from zoo.models.musicnn.vgg import VGG_FEATURES, build_vgg


@dataclass(frozen=True)
class Architecture:
    """A model family.

    Args:
        build: ``build(**architecture_config, include_top=True) -> keras.Model`` on log-mel input.
        features: feature name -> layer name, in the order `zoo.extract` reports them.
        embedding: the feature that ``include_top=False`` returns.
        tf1_name: architecture key of the TF1 checkpoint mapping, if the family has one.
    """

    build: Callable[..., keras.Model]
    features: Mapping[str, str]
    embedding: str


ARCHITECTURES: dict[str, Architecture] = {
    "musicnn": Architecture(build_musicnn, MUSICNN_FEATURES, "penultimate"),
    "vgg": Architecture(build_vgg, VGG_FEATURES, "pool5"),
}


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(ARCHITECTURES)
        raise PresetError(f"unknown architecture {name!r}; known: {known}") from None
