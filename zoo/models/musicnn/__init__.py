"""musicnn (Pons & Serra, 2019), with the authors' weights; its VGG baseline is `zoo.models.vgg`
(still importable from here)."""

from zoo.models.musicnn.inference import VIEW_BACKENDS, musicnn_inference_view
from zoo.models.musicnn.musicnn import MUSICNN_FEATURES, build_musicnn
from zoo.models.registry import Architecture, register

register("musicnn", Architecture(build_musicnn, MUSICNN_FEATURES, "penultimate",
                                 inference=musicnn_inference_view,
                                 inference_backends=VIEW_BACKENDS))

from zoo.models.vgg import VGG_FEATURES, build_vgg  # noqa: E402 - registered after musicnn

__all__ = ["MUSICNN_FEATURES", "VGG_FEATURES", "build_musicnn", "build_vgg",
           "musicnn_inference_view"]
