"""What the server computes, without HTTP: the index and the tagger, each loaded once, and the
JSON answers of ``POST /similar`` and ``POST /tag``.

Every method that touches a model runs on the model thread (`zoo.service.runner.ModelRunner`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from zoo.search.catalogue import DISTANCE, SEGMENT_DISTANCE, Alignment, CatalogueIndex
from zoo.service.decoding import Decoded
from zoo.service.errors import RequestError

MEDIA_TYPES = {".wav": "audio/wav", ".wave": "audio/wav", ".flac": "audio/flac",
               ".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg",
               ".mp3": "audio/mpeg", ".aif": "audio/aiff", ".aiff": "audio/aiff",
               ".aifc": "audio/aiff", ".au": "audio/basic", ".snd": "audio/basic",
               ".caf": "audio/x-caf", ".w64": "application/octet-stream"}
"""Content-Type of a catalogue file by its name's ending (those `zoo index` reads)."""

_WARM_UP_SECONDS = 3.5  # one patch and an end-aligned one: the batch shapes of a real query


def matched_range(alignments: list[Alignment], patch_seconds: float) -> dict[str, float]:
    """The catalogue passage a query lines up with, around its best-matching segment.

    Query segments whose catalogue match keeps the same offset (catalogue time - query time,
    within half a patch) as the best-matching one belong to that passage; the passage runs
    from the first of them to the end of the last. A query cut from a catalogue track gives
    that track's span of the query.
    """
    best = max(alignments, key=lambda a: a.similarity)
    offset = best.catalogue_start - best.query_start
    run = [a for a in alignments
           if abs(a.catalogue_start - a.query_start - offset) <= patch_seconds / 2]
    return {"start": round(min(a.catalogue_start for a in run), 3),
            "end": round(max(a.catalogue_end for a in run), 3),
            "query_start": round(min(a.query_start for a in run), 3),
            "query_end": round(max(a.query_end for a in run), 3),
            "similarity": round(float(np.mean([a.similarity for a in run])), 6)}


def _alignment_rows(alignments: list[Alignment]) -> list[dict[str, float]]:
    return [{"query_start": round(a.query_start, 3), "query_end": round(a.query_end, 3),
             "catalogue_start": round(a.catalogue_start, 3),
             "catalogue_end": round(a.catalogue_end, 3),
             "similarity": round(a.similarity, 6)} for a in alignments]


class Backend:
    """The index (with its model) and the tagger of one server worker.

    Args:
        index: the loaded index; its model embeds the queries.
        tag_model: preset of ``POST /tag``, or None for none.
    """

    def __init__(self, index: CatalogueIndex, tag_model: str | None):
        self.index = index
        self.tag_model = tag_model
        self._tagger: Any = None
        self._ids = {index.file_path(i): i for i in range(len(index))}
        self._durations = self._file_durations()

    def _file_durations(self) -> list[float | None]:
        """Each catalogue file's length from its segments (the last ends at the file's end)."""
        table = self.index.table
        if table is None:
            return [None] * len(self.index)
        patch = self.index.patch_seconds
        ends = table.starts[table.offsets[1:] - 1] + patch
        return [round(float(e), 3) for e in ends]

    # -- loading (model thread) ----------------------------------------------------------

    def load(self) -> None:
        """Load both models and run each once, so the first request pays no start-up."""
        noise = np.random.default_rng(0).uniform(-0.1, 0.1, int(16000 * _WARM_UP_SECONDS))
        noise = noise.astype(np.float32)
        if self.index.level == "segment":
            self.index.embed_segments(noise, source_sr=16000)
        else:
            self.index.embed(noise, source_sr=16000)
        if self.tag_model is not None:
            from zoo.inference.tagging import resolve_model, tag

            self._tagger = resolve_model(self.tag_model)
            tag(noise, model=self._tagger, source_sr=16000)

    @property
    def query_sample_rate(self) -> int:
        """The rate the index's model takes (uploads to `similar` are decoded to it)."""
        return int(self.index.embedder.model.zoo_preset.preprocessing.sample_rate)

    @property
    def tag_sample_rate(self) -> int:
        return int(self._tagger.zoo_preset.preprocessing.sample_rate)

    # -- answers (model thread) ----------------------------------------------------------

    def similar(self, query: Decoded, top: int, explain: bool) -> dict[str, Any]:
        """``POST /similar``: the ``top`` nearest catalogue files to a decoded upload."""
        index = self.index
        top = min(top, len(index))
        notes = list(query.warnings)
        if index.level == "segment":
            segments = index.embed_segments(query.samples, source_sr=query.sample_rate)
            notes += segments.notes
            hits = [(h.match, h.alignments) for h in index.explain_segments(segments, top)]
            n_segments = len(segments)
        else:
            if explain:
                raise RequestError("explain needs a segment-level index; this one holds one "
                                   f"vector per file (rebuild it with zoo index {index.root} "
                                   f"--out {index.path.name} --overwrite)", 400)
            vector = index.embed(query.samples, source_sr=query.sample_rate)
            hits = [(m, None) for m in index.query_vector(vector, top)]
            n_segments = None
        results = []
        for rank, (match, alignments) in enumerate(hits, 1):
            i = self._ids[match.path]
            row: dict[str, Any] = {"rank": rank, "id": i, "path": index.files[i].path,
                                   "distance": round(match.distance, 6),
                                   "audio_url": f"/catalogue/{i}/audio",
                                   "duration": self._durations[i]}
            if explain and alignments:
                row["matched"] = matched_range(alignments, index.patch_seconds)
                row["alignments"] = _alignment_rows(alignments)
            results.append(row)
        return {"query": {"name": query.name, "seconds": round(query.seconds, 3),
                          "segments": n_segments},
                "model": index.model.preset, "level": index.level,
                "distance": SEGMENT_DISTANCE if index.level == "segment" else DISTANCE,
                "warnings": list(dict.fromkeys(notes)), "results": results}

    def tag(self, query: Decoded, top: int) -> dict[str, Any]:
        """``POST /tag``: the upload's top tags and its taggram (tags x patches)."""
        import warnings

        from zoo.inference.tagging import tag

        with warnings.catch_warnings():
            # The same doubts come back in the taggram; the server's log needs no copy.
            warnings.simplefilter("ignore")
            taggram = tag(query.samples, model=self._tagger, source_sr=query.sample_rate)
        doc = taggram.to_dict(top=top)
        doc["source"] = query.name
        doc["warnings"] = list(dict.fromkeys([*query.warnings, *taggram.warnings]))
        return {"model": self._tagger.zoo_preset.name,
                "query": {"name": query.name, "seconds": round(query.seconds, 3)}, **doc}

    # -- catalogue files (any thread) ----------------------------------------------------

    def catalogue_file(self, file_id: int) -> tuple[Path, str]:
        """The path and Content-Type of catalogue file ``file_id``: only files the index
        lists, and only inside its catalogue folder.

        Raises:
            RequestError: 404 for an id the index does not have or a file that is gone, 403
                for an entry that points outside the catalogue folder.
        """
        index = self.index
        if not 0 <= file_id < len(index):
            raise RequestError(f"no catalogue file {file_id}: ids run from 0 to "
                               f"{len(index) - 1}", 404)
        root = os.fspath(index.root)
        if "://" in root:
            raise RequestError(f"catalogue file {file_id} is remote ({root}); this server "
                               "streams local files only", 404)
        relative = index.files[file_id].path
        parts = relative.split("/")
        if (relative.startswith("/") or "\\" in relative or ":" in parts[0]
                or any(p in ("", ".", "..") for p in parts)):
            raise RequestError(f"catalogue file {file_id} points outside the catalogue", 403)
        path = Path(root, *parts)
        if not path.is_file():
            raise RequestError(f"catalogue file {file_id} ({relative}) is no longer there", 404)
        return path, MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
