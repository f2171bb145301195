"""Shared by every test folder: this folder is on sys.path (pytest puts a conftest's folder
there), so the helpers here (finetune_data, hub_server, script_modules) import by name."""

# Keras first: with KERAS_BACKEND=torch it loads PyTorch's compiler stack, which crashes when it
# loads after TensorFlow (the backend lanes of .ci/run).
import keras  # noqa: E402, F401
