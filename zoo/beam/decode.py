"""Read + decode: an `AudioFile` -> the model's input patches, streamed, in bounded memory.

A file is decoded block by block (`zoo.inference.tagging.stream_blocks`) and cut into patches by
`zoo.inference.patching.iter_patches`, exactly as `zoo.tag` and `zoo index` do, so the pipeline's
outputs equal theirs. Patches leave one at a time (memory per element: one patch; a two-hour file
never sits in memory), decoding runs a few patches ahead in a thread while the model works.
After the last patch the file's `FileSummary` is emitted; a file that fails part way emits a
`Failure` instead, and the patches it already sent are discarded when patches are joined with
summaries (`zoo.beam.assemble`), so a bad file never yields a partial row.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from zoo.beam.sources import FAILED, AudioFile, Failure

SUMMARIES = "files"
"""The tag of `DecodePatches`' per-file output (`FileSummary` elements)."""

PROGRESS_SECONDS = 30.0


@dataclass(frozen=True)
class Patch:
    """One model input window of a file.

    Attributes:
        key: the file's `AudioFile.relpath`.
        index: the patch's rank in the file (0, 1, ...).
        start: start of the patch, seconds.
        window: float32 ``(samples,)`` at the model's rate.
    """

    key: str
    index: int
    start: float
    window: np.ndarray


@dataclass(frozen=True)
class FileSummary:
    """A file decoded to the end.

    Attributes:
        file: the input.
        duration: decoded duration, seconds (at the model's rate).
        sample_rate: the file's own sample rate (from its header).
        channels: the file's channel count.
        patches: number of patches emitted.
        repeat_padded: the audio was shorter than one patch and was tiled to fill it.
    """

    file: AudioFile
    duration: float
    sample_rate: int
    channels: int
    patches: int
    repeat_padded: bool


def _open(path: str) -> Any:
    """A local path as itself (zoo.audio names it in errors), anything else as a file object."""
    if "://" not in path:
        return path
    return FileSystems.open(path, mime_type="application/octet-stream")


class DecodePatches(beam.DoFn):
    """`AudioFile` -> `Patch` (main), `FileSummary` (``files``), `Failure` (``failed``).

    Args:
        config: the model's `zoo.presets.PresetConfig` (sample rate, patching).
        hop_seconds: hop between patches (as `zoo.tag`).
        tail: tail policy (as `zoo.tag`).
        progress: print a progress line (files done, rate, ETA) every 30 s per worker.

    ``process`` takes an optional side input ``total``: the number of files to do, for the
    progress lines each worker prints every 30 s.
    """

    def __init__(self, config: Any, hop_seconds: float, tail: str, progress: bool = True):
        self.config = config
        self.hop_seconds = float(hop_seconds)
        self.tail = tail
        self.progress = bool(progress)

    def setup(self) -> None:
        from zoo._console import import_tensorflow_quietly

        import_tensorflow_quietly()
        from zoo.inference.tagging import patch_grid

        self.grid = patch_grid(self.config.preprocessing, self.hop_seconds, self.tail,
                               self.config.application.short_clips)
        self.decoded = self.failed = 0
        self.started = self.reported = time.monotonic()
        self.files_done = beam.metrics.Metrics.counter("zoo", "files_decoded")
        self.files_failed = beam.metrics.Metrics.counter("zoo", "files_failed_decode")
        self.patches_out = beam.metrics.Metrics.counter("zoo", "patches")

    def _progress(self, total: int | None) -> None:
        now = time.monotonic()
        if not self.progress or now - self.reported < PROGRESS_SECONDS:
            return
        self.reported = now
        done = self.decoded + self.failed
        rate = done / max(now - self.started, 1e-9)
        of = eta = ""
        if total:
            of = f" (all workers: {total} to do)"
            if total > done and rate > 0:  # this worker's ETA if it did them all
                eta = f", at most {(total - done) / rate / 60:.0f} min left"
        print(f"zoo: worker {os.getpid()}: {self.decoded} files done, {self.failed} failed"
              f"{of}, {rate:.2f} files/s{eta}", file=sys.stderr, flush=True)

    def process(self, file: AudioFile, total: int | None = None) -> Iterator[Any]:
        from zoo import audio
        from zoo.errors import AudioError
        from zoo.inference.batching import prefetch
        from zoo.inference.patching import iter_patches
        from zoo.inference.tagging import stream_blocks

        prep = self.config.preprocessing
        seconds_per_frame = prep.hop_length / prep.sample_rate
        samples = [0]

        def counted(blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
            for block in blocks:
                samples[0] += len(block)
                yield block

        count, padded = 0, False
        source = None
        try:
            source = _open(file.path)
            meta = audio.info(source)
            if hasattr(source, "seek"):
                source.seek(0)
            windows = iter_patches(counted(stream_blocks(source, self.config, self.grid)),
                                   self.grid)
            for start, window, was_padded in prefetch(windows):
                yield Patch(file.relpath, count, float(start * seconds_per_frame), window)
                count += 1
                padded |= was_padded
        except Exception as err:  # noqa: BLE001 - a bad file must not fail the pipeline
            reason = (err.reason if isinstance(err, AudioError) else
                      str(err) if isinstance(err, OSError) else f"{type(err).__name__}: {err}")
            self.failed += 1
            self.files_failed.inc()
            yield beam.pvalue.TaggedOutput(FAILED, Failure(file.path, reason, "decode"))
            self._progress(total)
            return
        finally:
            if source is not None and hasattr(source, "close"):
                source.close()
        if count == 0:
            self.failed += 1
            self.files_failed.inc()
            yield beam.pvalue.TaggedOutput(FAILED, Failure(file.path, "no audio samples to tag",
                                                           "decode"))
            return
        self.decoded += 1
        self.files_done.inc()
        self.patches_out.inc(count)
        yield beam.pvalue.TaggedOutput(SUMMARIES, FileSummary(
            file, samples[0] / prep.sample_rate, int(meta.sample_rate), int(meta.channels),
            count, padded))
        self._progress(total)
