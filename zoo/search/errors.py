"""Errors of catalogue search; all are `zoo.ZooError`, so ``except zoo.ZooError`` catches them."""

from __future__ import annotations

from zoo.errors import ZooError

INSTALL_HINT = "pip install 'zoo-audio[search]'"


class SearchError(ZooError):
    """Base class of the catalogue-search errors."""


class MissingDependencyError(SearchError, ImportError):
    """The ANN library (faiss) is not installed."""


class IndexMismatchError(SearchError, ValueError):
    """An index that does not fit the request: another model, another catalogue folder."""


class CorruptIndexError(SearchError, ValueError):
    """An index directory whose files are missing, unreadable or inconsistent."""
