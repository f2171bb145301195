"""Catalogue-scale tagging and embedding on Apache Beam (``pip install 'zoo-audio[beam]'``).

The path audio takes, one composable PTransform per step:

    SOURCE (folder, glob, list of paths/URLs)
      -> `MatchAudio`        AudioFile per file              (sources.py)
      -> `SkipDone`          only files not in committed runs
      -> `DecodePatches`     Patch per model window, streamed (decode.py)
      -> RunInference(`ZooModelHandler`)  model output per patch (inference.py)
      -> `AssembleTaggrams` / `AssembleEmbeddings`  rows per file / per segment (assemble.py)
      -> Parquet shards in a run, committed by the driver   (shards.py)

Every step has a ``failed`` output of `Failure` (path, reason, stage): bad files end up in the
run's dead-letter table and never fail the job. `run_catalogue` wires the steps into a job;
`build_index_from_dataset` turns an embeddings dataset into a `zoo similar` index.

Example:
    >>> from zoo.beam import run_catalogue
    >>> report = run_catalogue("taggrams", "music/", "tags/", "musicnn_msd",
    ...                        beam_args=["--direct_num_workers=2",
    ...                                   "--direct_running_mode=multi_processing"])
"""

from __future__ import annotations

try:
    import apache_beam  # noqa: F401
    import pyarrow  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the install
    from zoo.errors import OptionalDependencyError

    raise OptionalDependencyError(
        f"zoo.beam needs Apache Beam and pyarrow ({err}): pip install 'zoo-audio[beam]'"
    ) from err

from zoo.beam.assemble import AssembleEmbeddings, AssembleTaggrams, RunModel
from zoo.beam.decode import DecodePatches, FileSummary, Patch
from zoo.beam.inference import ZooModelHandler
from zoo.beam.pipelines import RunReport, pipeline_options, run_catalogue
from zoo.beam.shards import Dataset, DatasetError
from zoo.beam.sources import AudioFile, Failure, MatchAudio, SkipDone, resolve_source

__all__ = [
    "AssembleEmbeddings", "AssembleTaggrams", "AudioFile", "Dataset", "DatasetError",
    "DecodePatches", "Failure", "FileSummary", "MatchAudio", "Patch", "RunModel", "RunReport",
    "SkipDone", "ZooModelHandler", "pipeline_options", "resolve_source", "run_catalogue",
]
