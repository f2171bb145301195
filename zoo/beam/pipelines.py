"""Whole jobs: tag or embed a catalogue with Beam, and commit the run.

    SOURCE -> MatchAudio -> SkipDone -> Reshuffle -> DecodePatches -> RunInference(zoo handler)
           -> Assemble{Taggrams,Embeddings} -> WriteToParquet (files, segments, failed, listing)

The same code runs on Beam's local DirectRunner (``--direct_num_workers=2
--direct_running_mode=multi_processing`` for two processes) and on Dataflow, Flink or Spark
(``--runner=DataflowRunner ...``): everything after ``--`` on the command line goes to Beam's
``PipelineOptions``. See docs/scale.md.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from zoo.beam.assemble import SEGMENTS, AssembleEmbeddings, AssembleTaggrams, RunModel
from zoo.beam.decode import SUMMARIES, DecodePatches
from zoo.beam.inference import ZooModelHandler
from zoo.beam.shards import Dataset, DatasetError, join, new_run_id, schemas
from zoo.beam.sources import FAILED, MatchAudio, SkipDone, resolve_source


@dataclass
class RunReport:
    """What a pipeline run did.

    Attributes:
        out: the output folder.
        run_id: the committed run.
        files: files with a new row in this run.
        segments: segment rows written (embeddings).
        failed: ``(path, reason, stage)`` of the files that produced no row in this run.
        counters: the job's Beam counters (namespace ``zoo``), e.g. ``files_decoded``.
        seconds: wall time, start to commit.
    """

    out: str
    run_id: str
    files: int = 0
    segments: int = 0
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def pipeline_options(runner: str | None, beam_args: Sequence[str] = ()) -> PipelineOptions:
    """Beam options from ``--runner`` and the arguments after ``--`` (those win).

    Options Beam does not know (a typo, or one of a runner that is not installed) are
    reported on stderr: Beam itself ignores them.
    """
    import logging
    import sys

    args = list(beam_args)
    if runner and not any(a == "--runner" or a.startswith("--runner=") for a in args):
        args = [f"--runner={runner}", *args]
    options = PipelineOptions(args)
    beam_log = logging.getLogger("apache_beam.options.pipeline_options")
    level = beam_log.level
    beam_log.setLevel(logging.ERROR)  # its own "Discarding unparseable args" line
    try:
        unknown = sorted(set(options.get_all_options(retain_unknown_options=True))
                         - set(options.get_all_options()))
    finally:
        beam_log.setLevel(level)
    if unknown:
        print("zoo: Beam does not know the option(s) "
              f"{', '.join('--' + u for u in unknown)}: they are ignored", file=sys.stderr)
    return options


def _done_keys(dataset: Dataset) -> beam.PTransform:
    """``(relpath, (size, mtime_ns))`` of every committed file row, read in the pipeline."""
    paths = [path for _, path in dataset.paths("files")]

    class ReadDone(beam.PTransform):
        def expand(self, pbegin):
            if not paths:
                return pbegin | "NoneDone" >> beam.Create([])
            return (pbegin
                    | "DoneShards" >> beam.Create(paths)
                    | "ReadDone" >> beam.io.ReadAllFromParquet(
                        columns=["path", "size", "mtime_ns"])
                    | "DoneKeys" >> beam.Map(lambda r: (r["path"], (r["size"], r["mtime_ns"]))))

    return ReadDone()


def _prepare(kind: str, source: str, out: str, preset: str, hop_seconds: float | None,
             tail: str, overwrite: bool, precision: str | None = None
             ) -> tuple[Any, Any, Dataset]:
    """Resolve the model on the driver and open (or start) the output dataset."""
    from zoo.hub import resolve_config
    from zoo.search.embedding import DEFAULT_HOP_SECONDS, model_info, preset_spec

    if hop_seconds is None:  # taggrams: the preset's own grid, as zoo.tag; vectors: the index's
        if kind == "taggrams":
            named = resolve_config(preset_spec(preset))
            hop_seconds = named.application.hop_for(named.preprocessing)
        else:
            hop_seconds = DEFAULT_HOP_SECONDS
    if precision is None:  # the dataset's own, else float32
        existing = Dataset(out)
        precision = (existing.manifest["model"].get("precision", "float32")
                     if not overwrite and existing.exists() else "float32")
    info = model_info(preset, hop_seconds=hop_seconds, tail=tail, precision=precision)
    config = resolve_config(info.preset)
    if kind == "taggrams" and not config.tags:
        from zoo.errors import PresetError

        raise PresetError(f"model {config.name!r} has no tags: use `zoo index` (embeddings)")
    src = resolve_source(source)  # fail before starting a pipeline on a missing source
    if "://" not in out and os.path.exists(out) and not os.path.isdir(out):
        raise DatasetError(f"--out {out} exists and is not a folder")
    dataset = Dataset(out)
    if overwrite and FileSystems.exists(dataset.root):
        if dataset.exists() or FileSystems.exists(join(dataset.root, "runs")):
            FileSystems.delete([dataset.root])
        dataset = Dataset(out)
    if dataset.exists():
        dataset.check(kind, info.identity(), info.describe())
        root = dataset.manifest.get("root", src.root)
        if root != src.root:  # rows are keyed by paths relative to the root
            raise DatasetError(f"{out} holds files under {root}, not {src.root}: use another "
                               "--out, or --overwrite to start again")
    else:
        if "://" not in out and os.path.isdir(out) and os.listdir(out):
            raise DatasetError(f"{out} is not empty and holds no zoo dataset: choose a new or "
                               "empty --out")
        dataset.create(kind, info.to_dict(), source, list(config.tags), src.root)
    dataset.remove_uncommitted()
    return info, config, dataset


def _write(rows: beam.PCollection, prefix: str, schema: Any, label: str) -> None:
    rows | label >> beam.io.WriteToParquet(prefix, schema, file_name_suffix=".parquet",
                                           codec="snappy")


def _counters(result: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for c in result.metrics().query()["counters"]:
            if c.key.metric.namespace == "zoo":
                out[c.key.metric.name] = out.get(c.key.metric.name, 0) + int(c.committed or 0)
    except Exception:  # noqa: BLE001 - some runners report no metrics; the run still counts
        pass
    return out


def run_catalogue(
    kind: str,
    source: str,
    out: str,
    model: str,
    *,
    hop_seconds: float | None = None,
    tail: str = "end",
    runner: str | None = "DirectRunner",
    beam_args: Sequence[str] = (),
    overwrite: bool = False,
    batch_size: int = 8,
    precision: str | None = None,
    progress: bool = True,
) -> RunReport:
    """Tag (``kind="taggrams"``) or embed (``"embeddings"``) every audio file of ``source``
    that ``out`` does not hold yet, and commit the run.

    Args:
        kind: ``"taggrams"`` or ``"embeddings"``.
        source: a folder, a glob, or a text file listing paths or URLs (`resolve_source`).
        out: the output folder (`zoo.beam.shards.Dataset`), local or a Beam file system URL.
        model: preset name, preset directory or ``hf://`` address.
        hop_seconds, tail: the patching, as `zoo.tag`.
        runner: Beam runner (``DirectRunner``, ``DataflowRunner``, ``FlinkRunner``,
            ``SparkRunner``); a ``--runner=`` in ``beam_args`` wins.
        beam_args: more Beam pipeline options, e.g. ``["--direct_num_workers=2",
            "--direct_running_mode=multi_processing"]``.
        overwrite: delete ``out`` first (needed to change the model).
        batch_size: patches per model call.
        precision: ``"float32"`` or ``"bfloat16"`` (`zoo.inference.precision`; every worker
            needs a CPU with AVX512-BF16 or AMX). Default: the dataset's, else float32; a
            dataset never mixes two.
        progress: each worker prints a progress line every 30 s (files done, rate).

    Returns:
        A `RunReport`.

    Raises:
        DatasetError: ``out`` holds another kind of dataset, or another model's.
        PresetError, WeightsError: the model cannot be resolved. FileNotFoundError: no such
            source.

    Example:
        >>> report = run_catalogue("taggrams", "music/", "tags/", "musicnn_msd",
        ...                        beam_args=["--direct_num_workers=2",
        ...                                   "--direct_running_mode=multi_processing"])
        >>> report.files, report.failed
        (1000, [])
    """
    started = time.perf_counter()
    info, config, dataset = _prepare(kind, source, out, model, hop_seconds, tail, overwrite,
                                     precision)
    run_id = new_run_id()
    run_dir = dataset.run_dir(run_id)
    tables = schemas(kind, list(config.tags) if kind == "taggrams" else None)
    run_model = RunModel(info.preset, info.name, info.weights_sha256, info.hop_seconds, tail)
    handler = ZooModelHandler(info.preset, include_top=kind == "taggrams",
                              weights_sha256=info.weights_sha256,
                              batch_size=batch_size, precision=info.precision)
    src = resolve_source(source)
    pipeline = beam.Pipeline(options=pipeline_options(runner, beam_args))
    matched = pipeline | "MatchAudio" >> MatchAudio(src)
    done = pipeline | "Done" >> _done_keys(dataset)
    todo = (matched.files
            | "SkipDone" >> SkipDone(done)
            | "Spread" >> beam.Reshuffle())
    total = todo | "CountTodo" >> beam.combiners.Count.Globally()
    decoded = (todo
               | "DecodePatches" >> beam.ParDo(
                   DecodePatches(config, info.hop_seconds, tail, progress),
                   total=beam.pvalue.AsSingleton(total))
               .with_outputs(FAILED, SUMMARIES, main="patches"))
    predictions, dlq = (decoded.patches
                        | "RunInference" >> RunInference(handler).with_exception_handling())
    assemble = AssembleTaggrams if kind == "taggrams" else AssembleEmbeddings
    rows = (predictions, decoded[SUMMARIES], dlq.failed_inferences) | "Assemble" >> assemble(
        run_model)
    failures = ((matched[FAILED], decoded[FAILED], rows[FAILED])
                | "AllFailures" >> beam.Flatten()
                | "FailureRows" >> beam.Map(lambda f: f.to_row()))
    _write(rows.files, join(run_dir, "files"), tables["files"], "WriteFiles")
    if kind == "embeddings":
        _write(rows[SEGMENTS], join(run_dir, "segments"), tables["segments"], "WriteSegments")
    _write(failures, join(run_dir, "failed"), tables["failed"], "WriteFailed")
    listing = matched.files | "ListingRows" >> beam.Map(
        lambda f: {"path": f.relpath, "size": f.size, "mtime_ns": f.mtime_ns})
    _write(listing, join(run_dir, "listing"), tables["listing"], "WriteListing")
    result = pipeline.run()
    result.wait_until_finish()
    state = str(getattr(result, "state", "DONE"))
    if "DONE" not in state.upper():
        raise RuntimeError(f"the pipeline ended in state {state}; nothing was committed")
    counters = _counters(result)
    report = _summarize(dataset, run_id)
    dataset.commit(run_id, {"files": report.files, "segments": report.segments,
                            "failed": len(report.failed), "counters": counters})
    report.counters = counters
    report.seconds = time.perf_counter() - started
    return report


def _summarize(dataset: Dataset, run_id: str) -> RunReport:
    """Count what a finished (not yet committed) run wrote."""
    import pyarrow.parquet as pq

    run_dir = dataset.run_dir(run_id)
    report = RunReport(out=dataset.root, run_id=run_id)

    def rows(table: str, columns: list[str]) -> list[dict]:
        out = []
        for name in dataset.shards(run_dir, table):
            with FileSystems.open(join(run_dir, name),
                                  compression_type="uncompressed") as f:
                out.extend(pq.read_table(f, columns=columns).to_pylist())
        return out

    report.files = len(rows("files", ["path"]))
    if dataset.manifest["kind"] == "embeddings":
        report.segments = sum(r["segments"] for r in rows("files", ["segments"]))
    report.failed = sorted({(r["path"], r["reason"], r["stage"])
                            for r in rows("failed", ["path", "reason", "stage"])})
    return report
