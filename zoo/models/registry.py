"""Architecture registry: name -> builder of a backbone (log-mel input, or the waveform patch for
a preset with a waveform front-end), its feature taps, its embedding.

The registry imports no family: each family package calls `register` (so a family may look
others up, e.g. the classifier its encoder's, without an import cycle), and `zoo.models`
imports every shipped family.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import keras

from zoo.errors import PresetError


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
        inference_backends: the Keras backends on which that graph is the faster one
            (``scripts/bench_musicnn.py --backend``); elsewhere the plain model runs.
    """

    build: Callable[..., keras.Model]
    features: Mapping[str, str]
    embedding: str
    resolve: Callable[[dict], tuple[Mapping[str, str], str]] | None = None
    inference: Callable[[keras.Model, Mapping[str, str] | str], keras.Model] | None = None
    inference_backends: tuple[str, ...] = ("tensorflow", "jax", "torch")

    def has_inference_graph(self) -> bool:
        """True when this family has a faster inference graph on the active Keras backend."""
        return self.inference is not None and keras.backend.backend() in self.inference_backends

    def taps(self, config: Mapping) -> tuple[Mapping[str, str], str]:
        """``(features, embedding)`` of a model built with ``config``."""
        if self.resolve is not None:
            return self.resolve(dict(config))
        return self.features, self.embedding


ARCHITECTURES: dict[str, Architecture] = {}
"""Every registered family by name; each family's package registers itself (`register`) when
`zoo.models` is imported."""


def register(name: str, architecture: Architecture) -> Architecture:
    """Make a family known to presets (``"architecture": name``).

    Raises:
        ValueError: ``name`` is registered already with another architecture.
    """
    known = ARCHITECTURES.get(name)
    if known is not None and known != architecture:
        raise ValueError(f"architecture {name!r} is registered already")
    ARCHITECTURES[name] = architecture
    return architecture


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
