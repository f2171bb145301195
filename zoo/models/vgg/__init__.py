"""The VGG-like baseline of musicnn's authors (Pons & Serra, 2019), with their weights."""

from zoo.models.registry import Architecture, register
from zoo.models.vgg.vgg import VGG_FEATURES, build_vgg

register("vgg", Architecture(build_vgg, VGG_FEATURES, "pool5"))

__all__ = ["VGG_FEATURES", "build_vgg"]
