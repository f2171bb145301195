"""The HEAR API (`zoo.hear`); ``load_model()`` loads ``samplecnn_msd_distilled``."""

from zoo.hear import get_scene_embeddings, get_timestamp_embeddings, preset_loader

load_model = preset_loader("samplecnn_msd_distilled")

__all__ = ["get_scene_embeddings", "get_timestamp_embeddings", "load_model"]
