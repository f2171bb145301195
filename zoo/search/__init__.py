"""Catalogue search: query by example over a folder of audio.

Every file is stored as one unit vector per 3 s segment (a preset's embedding of each patch)
and one for the whole file (the mean, normalised). A query recording is embedded with the same
model, segment by segment; its segments fetch their nearest catalogue segments (an exact scan,
or a compressed faiss IVF-PQ index above `zoo.search.ann.SEGMENT_FLAT_MAX` segments), and the
candidate files are re-ranked exactly by how well each query segment matches its best segment
in the file (`zoo.search.segments`). File-level search (one vector per file, exact or IVF) is
kept as an option (``level="file"``).

Needs faiss: ``pip install 'zoo-audio[search]'``. TensorFlow is imported only when audio is
embedded. Command line: ``zoo index AUDIO_DIR --out INDEX`` and
``zoo similar QUERY_AUDIO --index INDEX --top 10``; see docs/search.md.

Example:
    >>> from zoo import search
    >>> search.build_index("music/", "music.idx", model="musicnn_msd")
    >>> search.load_index("music.idx").query("query.mp3", top=3)
    [Match(path='/data/music/a.flac', distance=0.0), ...]
    >>> search.load_index("music.idx").explain("query.mp3", top=1)[0].alignments[0]
    Alignment(query_start=0.0, query_end=3.0, catalogue_start=81.0, catalogue_end=84.0, ...)
"""

from __future__ import annotations

from zoo.search.ann import FLAT_MAX, SEGMENT_FLAT_MAX, TARGET_RECALL, AnnParams
from zoo.search.build import AUDIO_EXTENSIONS, BuildReport, build_index, scan
from zoo.search.catalogue import (
    DEFAULT_QUERY_HOP_SECONDS,
    LEVELS,
    Alignment,
    CatalogueIndex,
    Explained,
    Match,
    load_index,
    write_index,
)
from zoo.search.embedding import DEFAULT_MODEL, ModelInfo, Segments, TrackEmbedder, model_info
from zoo.search.errors import (
    CorruptIndexError,
    IndexMismatchError,
    MissingDependencyError,
    SearchError,
)
from zoo.search.segments import FileScore, SegmentTable

__all__ = [
    "AUDIO_EXTENSIONS",
    "DEFAULT_MODEL",
    "DEFAULT_QUERY_HOP_SECONDS",
    "FLAT_MAX",
    "LEVELS",
    "SEGMENT_FLAT_MAX",
    "TARGET_RECALL",
    "Alignment",
    "AnnParams",
    "BuildReport",
    "CatalogueIndex",
    "CorruptIndexError",
    "Explained",
    "FileScore",
    "IndexMismatchError",
    "Match",
    "MissingDependencyError",
    "ModelInfo",
    "SearchError",
    "SegmentTable",
    "Segments",
    "TrackEmbedder",
    "build_index",
    "load_index",
    "model_info",
    "scan",
    "write_index",
]
