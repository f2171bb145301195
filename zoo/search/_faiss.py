"""faiss, imported on first use, with an install hint when it is missing."""

from __future__ import annotations

from types import ModuleType

from zoo.search.errors import INSTALL_HINT, MissingDependencyError


def require_faiss() -> ModuleType:
    """The ``faiss`` module.

    Raises:
        MissingDependencyError: faiss is not installed (the message says how to install it).
    """
    try:
        import faiss
    except ImportError as err:
        raise MissingDependencyError(
            f"catalogue search needs faiss, which is not installed: {INSTALL_HINT} "
            f"(or pip install faiss-cpu); import failed with: {err}") from err
    return faiss
