"""Export for serving: SavedModels for TF Serving and TFLite files (`export`), built from graph
versions of the patching and WAV decoding (`graph`: core TensorFlow ops only)."""
