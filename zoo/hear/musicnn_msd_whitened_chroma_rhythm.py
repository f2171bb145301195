"""The HEAR API (`zoo.hear`); ``load_model()`` loads ``musicnn_msd_whitened_chroma_rhythm``."""

from zoo.hear import get_scene_embeddings, get_timestamp_embeddings, preset_loader

load_model = preset_loader("musicnn_msd_whitened_chroma_rhythm")

__all__ = ["get_scene_embeddings", "get_timestamp_embeddings", "load_model"]
