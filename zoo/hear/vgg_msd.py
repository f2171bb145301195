"""The HEAR API (`zoo.hear`); ``load_model()`` loads ``vgg_msd``."""

from zoo.hear import get_scene_embeddings, get_timestamp_embeddings, preset_loader

load_model = preset_loader("vgg_msd")

__all__ = ["get_scene_embeddings", "get_timestamp_embeddings", "load_model"]
