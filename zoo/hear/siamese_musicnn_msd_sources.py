"""The HEAR API (`zoo.hear`); ``load_model()`` loads ``siamese_musicnn_msd_sources``."""

from zoo.hear import get_scene_embeddings, get_timestamp_embeddings, preset_loader

load_model = preset_loader("siamese_musicnn_msd_sources")

__all__ = ["get_scene_embeddings", "get_timestamp_embeddings", "load_model"]
