"""Imported first by the packages that use TensorFlow: TensorFlow is imported here with its
C++ start-up lines (oneDNN, cuInit) kept off stderr, unless TF_CPP_MIN_LOG_LEVEL is set."""

from zoo._console import import_tensorflow_quietly

import_tensorflow_quietly()
