"""musicnn (Pons & Serra, 2019) and its VGG baseline, with the authors' weights."""

from zoo.models.musicnn.inference import musicnn_inference_view
from zoo.models.musicnn.musicnn import MUSICNN_FEATURES, build_musicnn
from zoo.models.musicnn.vgg import VGG_FEATURES, build_vgg
from zoo.models.registry import Architecture, register

register("musicnn", Architecture(build_musicnn, MUSICNN_FEATURES, "penultimate",
                                 inference=musicnn_inference_view))
register("vgg", Architecture(build_vgg, VGG_FEATURES, "pool5"))

__all__ = ["MUSICNN_FEATURES", "VGG_FEATURES", "build_musicnn", "build_vgg",
           "musicnn_inference_view"]
