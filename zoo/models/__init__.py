"""Model families. Each family's package registers how to build its backbone and which layers
are its features (`zoo.models.registry.register`); importing `zoo.models` registers them all,
in this order."""

import zoo._quiet_tf  # noqa: F401 - first: TensorFlow without its start-up lines
from zoo.models import (
    classifier,  # noqa: F401
    melcnn,  # noqa: F401
    musicnn,  # noqa: F401
    samplecnn,  # noqa: F401
    siamese,  # noqa: F401
    vgg,  # noqa: F401
)
from zoo.models.registry import ARCHITECTURES, Architecture, get_architecture, register
from zoo.models.zoo_model import ZooModel

__all__ = ["ARCHITECTURES", "Architecture", "ZooModel", "get_architecture", "register"]
