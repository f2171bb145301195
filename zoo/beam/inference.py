"""Model inference in a pipeline: a RunInference `ModelHandler` for zoo presets.

Beam's stock TensorFlow handler loads SavedModels and cannot load Keras 3 ones
(apache/beam#30616); this one loads a preset with `zoo.load` (built-in name, preset directory
or ``hf://`` address: the weights are fetched and sha256-checked on each worker) once per
worker process, runs batches of patches through the same compiled inference graph as
`zoo.tag`, and refuses to run if the worker resolved weights other than the driver's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from zoo.beam.decode import Patch


class LoadedModel:
    """What `ZooModelHandler.load_model` returns: the compiled function and the preset."""

    def __init__(self, model: Any, precision: str = "float32"):
        from zoo.inference.tagging import compiled_inference

        self.model = model
        self.config = model.zoo_preset
        self.fn = compiled_inference(model, precision)


class ZooModelHandler(ModelHandler[Patch, PredictionResult, LoadedModel]):
    """RunInference handler: `Patch` batches -> one output row per patch.

    Args:
        preset: what `zoo.load` accepts (name, directory, ``hf://`` address).
        include_top: True: the tagger's probabilities; False: the embedding (the feature
            ``zoo.load(preset, include_top=False)`` returns).
        weights_sha256: the weights the driver resolved; a worker that resolves others
            (another preset version on its disk) raises instead of mixing models.
        precision: ``"float32"`` or ``"bfloat16"`` (`zoo.inference.precision`).
        batch_size: patches per model call. Fixed, not left to Beam's adaptive batching:
            every new batch shape costs the CPU kernels' caches memory (measured: batches of
            8 to 32 patches took a worker from 1.1 to 2.0 GB on one 32-minute file).

    Example:
        >>> handler = ZooModelHandler("musicnn_msd", include_top=True)
        >>> results = patches | RunInference(handler)  # PredictionResult per Patch
    """

    def __init__(self, preset: str, *, include_top: bool, weights_sha256: str | None = None,
                 batch_size: int = 8, precision: str = "float32"):
        super().__init__()
        self.preset = preset
        self.precision = precision
        self.include_top = bool(include_top)
        self.weights_sha256 = weights_sha256
        self._batching_kwargs = {"min_batch_size": int(batch_size),
                                 "max_batch_size": int(batch_size)}

    def load_model(self) -> LoadedModel:
        from zoo._console import import_tensorflow_quietly

        import_tensorflow_quietly()
        from zoo.errors import WeightsError
        from zoo.models.loading import load
        from zoo.search.embedding import model_info

        if self.weights_sha256 is not None:
            found = model_info(self.preset).weights_sha256
            if found != self.weights_sha256:
                raise WeightsError(f"{self.preset}: this worker resolves weights sha256 "
                                   f"{found}, the pipeline was started with "
                                   f"{self.weights_sha256}: install the same zoo version on "
                                   "every worker")
        return LoadedModel(load(self.preset, include_top=self.include_top), self.precision)

    def run_inference(self, batch: Sequence[Patch], model: LoadedModel,
                      inference_args: dict[str, Any] | None = None
                      ) -> Iterable[PredictionResult]:
        windows = np.stack([p.window for p in batch]).astype(np.float32, copy=False)
        out = np.asarray(model.fn(windows))
        out = out.reshape(len(batch), -1)
        # The example keeps the patch's identity, not its samples (they are not needed again).
        return [PredictionResult((p.key, p.index, p.start), row)
                for p, row in zip(batch, out, strict=True)]

    def get_num_bytes(self, batch: Sequence[Patch]) -> int:
        return sum(p.window.nbytes for p in batch)

    def get_metrics_namespace(self) -> str:
        return "zoo"
