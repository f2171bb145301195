"""Catalogue search: query by example over a folder of audio.

Every file becomes one vector (the mean of a preset's embedding over the file's patches,
L2-normalised); the vectors go into a faiss index (exact for small catalogues, IVF above
`zoo.search.ann.FLAT_MAX` files); a query recording is embedded with the same model and its
nearest files are returned with their distance ``1 - cosine similarity``.

Needs faiss: ``pip install 'zoo-audio[search]'``. TensorFlow is imported only when audio is
embedded. Command line: ``zoo index AUDIO_DIR --out INDEX`` and
``zoo similar QUERY_AUDIO --index INDEX --top 10``; see docs/search.md.

Example:
    >>> from zoo import search
    >>> search.build_index("music/", "music.idx", model="musicnn_msd")
    >>> search.load_index("music.idx").query("query.mp3", top=3)
    [Match(path='/data/music/a.flac', distance=0.0), ...]
"""

from __future__ import annotations

from zoo.search.ann import FLAT_MAX, TARGET_RECALL, AnnParams
from zoo.search.catalogue import (
    AUDIO_EXTENSIONS,
    BuildReport,
    CatalogueIndex,
    Match,
    build_index,
    load_index,
    scan,
    write_index,
)
from zoo.search.embedding import DEFAULT_MODEL, ModelInfo, TrackEmbedder, model_info
from zoo.search.errors import (
    CorruptIndexError,
    IndexMismatchError,
    MissingDependencyError,
    SearchError,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "DEFAULT_MODEL",
    "FLAT_MAX",
    "TARGET_RECALL",
    "AnnParams",
    "BuildReport",
    "CatalogueIndex",
    "CorruptIndexError",
    "IndexMismatchError",
    "Match",
    "MissingDependencyError",
    "ModelInfo",
    "SearchError",
    "TrackEmbedder",
    "build_index",
    "load_index",
    "model_info",
    "scan",
    "write_index",
]
