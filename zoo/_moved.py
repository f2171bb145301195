"""Modules that moved into the package's folders keep answering at their old names.

``import zoo.tagging`` (and ``from zoo.tagging import tag``) give the very module object now at
``zoo.inference.tagging``, so code written against the old layout, and monkeypatches of it,
keep working. `install` is called once by ``zoo/__init__.py``; nothing is imported until an old
name is.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType

MOVED = {
    "zoo.hub_download": "zoo.hub.cache",
    "zoo.publish": "zoo.hub.publish",
    "zoo.cards": "zoo.hub.cards",
    "zoo.saving": "zoo.hub.saving",
    "zoo.tagging": "zoo.inference.tagging",
    "zoo.patching": "zoo.inference.patching",
    "zoo.loading": "zoo.models.loading",
    "zoo.exporting": "zoo.serving.export",
    "zoo.serving_graph": "zoo.serving.graph",
    "zoo.models.musicnn.vgg": "zoo.models.vgg.vgg",
}
"""Old module name -> where it lives now."""


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: object = None, target: object = None):
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec) -> ModuleType:
        # The module itself, not a copy: its __name__ and __spec__ stay those of its new home.
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        pass  # already executed under its new name


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
