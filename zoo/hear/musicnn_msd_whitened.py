"""The HEAR API (`zoo.hear`); ``load_model()`` loads ``musicnn_msd_whitened``."""

from zoo.hear import get_scene_embeddings, get_timestamp_embeddings, preset_loader

load_model = preset_loader("musicnn_msd_whitened")

__all__ = ["get_scene_embeddings", "get_timestamp_embeddings", "load_model"]
