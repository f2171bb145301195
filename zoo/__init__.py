"""zoo: a Keras 3 / TensorFlow model zoo for audio."""

from zoo.errors import AudioError, PresetError, WeightsError, ZooError

__version__ = "0.1.0"

__all__ = ["AudioError", "PresetError", "WeightsError", "ZooError", "__version__"]
