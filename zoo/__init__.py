"""zoo: a Keras 3 model zoo for audio (TensorFlow, JAX or PyTorch backends).

Example:
    >>> import zoo
    >>> taggram = zoo.tag("song.mp3", model="musicnn_msd")
    >>> taggram.top(5)
"""

from __future__ import annotations

import importlib
from typing import Any

from zoo import _moved
from zoo.errors import AudioError, PresetError, WeightsError, ZooError

# Imported eagerly (it is light): binding the function `presets` here also keeps the submodule
# zoo.presets from shadowing it when it is imported later.
from zoo.presets import PresetConfig, get_preset, presets

__version__ = "0.1.0"

_moved.install()

# Public names resolved on first use, so `import zoo` (and the CLI) start without TensorFlow.
_LAZY = {
    "load": "zoo.models.loading",
    "tag": "zoo.inference.tagging",
    "extract": "zoo.inference.tagging",
    "embed": "zoo.inference.tagging",
    "Taggram": "zoo.inference.tagging",
    "Features": "zoo.inference.tagging",
    "save_preset": "zoo.hub.saving",
    "export": "zoo.serving.export",
}

_SUBMODULES = {"audio", "layers", "models", "hub", "inference", "serving", "finetune", "cli",
               "search", "beam",
               # old names of modules that moved into the folders above (zoo._moved)
               "hub_download", "tagging", "patching", "loading", "saving", "publish", "cards",
               "exporting", "serving_graph"}

__all__ = ["AudioError", "PresetConfig", "PresetError", "WeightsError", "ZooError", "__version__",
           "get_preset", "presets", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY or name in _SUBMODULES:
        # TensorFlow's C++ start-up lines (oneDNN, cuInit) stay off stderr, as in the CLI,
        # unless TF_CPP_MIN_LOG_LEVEL is set by the user.
        from zoo._console import import_tensorflow_quietly

        import_tensorflow_quietly()
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"zoo.{name}")
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
