"""Model families. Each registers how to build its backbone and which layers are its features."""

from zoo.models.registry import ARCHITECTURES, Architecture, get_architecture

__all__ = ["ARCHITECTURES", "Architecture", "get_architecture"]
