"""zoo: a Keras 3 / TensorFlow model zoo for audio.

Example:
    >>> import zoo
    >>> taggram = zoo.tag("song.mp3", model="musicnn_msd")
    >>> taggram.top(5)
"""

from __future__ import annotations

import importlib
from typing import Any

from zoo.errors import AudioError, PresetError, WeightsError, ZooError

# Imported eagerly (it is light): binding the function `presets` here also keeps the submodule
# zoo.presets from shadowing it when it is imported later.
from zoo.presets import PresetConfig, get_preset, presets

__version__ = "0.1.0"

# Public names resolved on first use, so `import zoo` (and the CLI) start without TensorFlow.
_LAZY = {
    "load": "zoo.loading",
    "tag": "zoo.tagging",
    "extract": "zoo.tagging",
    "Taggram": "zoo.tagging",
    "Features": "zoo.tagging",
    "save_preset": "zoo.saving",
    "export": "zoo.exporting",
}

_SUBMODULES = {"audio", "layers", "models", "hub", "hub_download", "tagging", "patching", "loading",
               "saving", "publish", "cards", "exporting", "serving_graph", "finetune", "cli",
               "search"}

__all__ = ["AudioError", "PresetConfig", "PresetError", "WeightsError", "ZooError", "__version__",
           "get_preset", "presets", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"zoo.{name}")
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
