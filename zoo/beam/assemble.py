"""Patches back into files: join each file's model outputs with its `FileSummary`, make rows.

A file becomes rows only when its summary arrived (it decoded to the end) and every one of its
patches has an output; otherwise it becomes one `Failure`. Rows are plain dicts in the Parquet
schemas of `zoo.beam.shards`, made with the same arithmetic as `zoo.tag` and `zoo index`
(`zoo.search.embedding.segments_from_patches`), so the two paths agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np

from zoo.beam.decode import FileSummary
from zoo.beam.sources import FAILED, Failure
from zoo.errors import AudioError
from zoo.search.embedding import segments_from_patches

SEGMENTS = "segments"
"""The tag of `AssembleEmbeddings`' per-segment rows."""


@dataclass(frozen=True)
class RunModel:
    """What the rows record about the model (same on every row of a run)."""

    preset: str
    name: str
    weights_sha256: str | None
    hop_seconds: float
    tail: str


def _file_columns(summary: FileSummary, model: RunModel) -> dict[str, Any]:
    f = summary.file
    return {"path": f.relpath, "uri": f.path, "size": f.size, "mtime_ns": f.mtime_ns,
            "duration": float(summary.duration), "sample_rate": summary.sample_rate,
            "channels": summary.channels, "model": model.name,
            "weights_sha256": model.weights_sha256 or "", "hop_seconds": model.hop_seconds,
            "repeat_padded": bool(summary.repeat_padded)}


def _collect(key: str, groups: dict[str, Iterable[Any]]
             ) -> tuple[FileSummary | None, np.ndarray | None, np.ndarray | None, str | None]:
    """``(summary, starts, outputs, problem)`` of one file; ``summary`` None: decode failed."""
    summaries = list(groups["summary"])
    if not summaries:
        return None, None, None, None  # its decode Failure is already in the dead-letter
    summary = summaries[0]
    reasons = sorted(set(groups["infer_failed"]))
    if reasons:
        return summary, None, None, "; ".join(reasons)
    patches = sorted(groups["patches"], key=lambda p: p[0])
    indices = [p[0] for p in patches]
    if indices != list(range(summary.patches)):
        return summary, None, None, (f"{len(set(indices))} of {summary.patches} patches came "
                                     "back from the model")
    starts = np.asarray([p[1] for p in patches], np.float64)
    outputs = np.stack([np.asarray(p[2]) for p in patches])
    return summary, starts, outputs, None


def _joined(patches: beam.PCollection, summaries: beam.PCollection,
            failed_inferences: beam.PCollection) -> beam.PCollection:
    keyed_patches = patches | "KeyPatches" >> beam.Map(
        lambda r: (r.example[0], (r.example[1], r.example[2], r.inference)))
    keyed_summaries = summaries | "KeySummaries" >> beam.Map(lambda s: (s.file.relpath, s))
    keyed_failures = failed_inferences | "KeyInferFailures" >> beam.FlatMap(
        lambda item: [(p.key, f"{type(item[1]).__name__}: {item[1]}") for p in item[0]])
    return ({"patches": keyed_patches, "summary": keyed_summaries,
             "infer_failed": keyed_failures}
            | "JoinPatches" >> beam.CoGroupByKey())


class _FileRows(beam.DoFn):
    """Base of the row makers: the run's model, and a file's failure as one dead-letter row."""

    def __init__(self, model: RunModel):
        self.model = model

    @staticmethod
    def failure(summary: FileSummary, problem: str) -> beam.pvalue.TaggedOutput:
        return beam.pvalue.TaggedOutput(FAILED, Failure(summary.file.path, problem, "infer"))


class _TaggramRows(_FileRows):
    def process(self, item: tuple[str, dict]) -> Iterator[Any]:
        key, groups = item
        summary, starts, probabilities, problem = _collect(key, groups)
        if summary is None:
            return
        if problem is None and not np.all(np.isfinite(probabilities)):
            problem = "the model's output is not finite"
        if problem is not None:
            yield self.failure(summary, problem)
            return
        probabilities = probabilities.astype(np.float32)
        row = _file_columns(summary, self.model)
        row.update(patches=len(starts), times=starts.astype(np.float32).tolist(),
                   mean=probabilities.mean(axis=0).tolist(), taggram=probabilities.tolist())
        yield row


class _EmbeddingRows(_FileRows):
    def process(self, item: tuple[str, dict]) -> Iterator[Any]:
        key, groups = item
        summary, starts, outputs, problem = _collect(key, groups)
        if summary is None:
            return
        if problem is None:
            try:
                seg = segments_from_patches(outputs, starts, summary.file.path)
            except AudioError as err:
                problem = err.reason
        if problem is not None:
            yield self.failure(summary, problem)
            return
        row = _file_columns(summary, self.model)
        row.update(segments=len(seg), vector=seg.mean.tolist())
        yield row
        for i, (start, vector) in enumerate(zip(seg.starts, seg.vectors, strict=True)):
            yield beam.pvalue.TaggedOutput(SEGMENTS, {"path": key, "segment": i,
                                                      "start": float(start),
                                                      "vector": vector.tolist()})


class AssembleTaggrams(beam.PTransform):
    """(predictions, summaries, failed inferences) -> one taggram row per file (main) and
    `Failure`\\ s (``failed``)."""

    def __init__(self, model: RunModel):
        super().__init__()
        self.model = model

    def expand(self, inputs: tuple) -> beam.pvalue.DoOutputsTuple:
        return (_joined(*inputs)
                | "TaggramRows" >> beam.ParDo(_TaggramRows(self.model))
                .with_outputs(FAILED, main="files"))


class AssembleEmbeddings(beam.PTransform):
    """(predictions, summaries, failed inferences) -> one row per file (main: the file
    vector), one per segment (``segments``), and `Failure`\\ s (``failed``)."""

    def __init__(self, model: RunModel):
        super().__init__()
        self.model = model

    def expand(self, inputs: tuple) -> beam.pvalue.DoOutputsTuple:
        return (_joined(*inputs)
                | "EmbeddingRows" >> beam.ParDo(_EmbeddingRows(self.model))
                .with_outputs(FAILED, SEGMENTS, main="files"))
