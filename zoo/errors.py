"""Exceptions raised by zoo: one family, so callers can catch ``zoo.ZooError``."""

from __future__ import annotations

import os


class ZooError(Exception):
    """Base class of every error zoo raises on purpose."""


class AudioError(ZooError, ValueError):
    """Audio that cannot be used: names the input and the reason.

    Args:
        source: the file path, or a short description of in-memory input (e.g. ``"<bytes>"``).
        reason: what is wrong, in words a user can act on.
    """

    def __init__(self, source: str | os.PathLike | None, reason: str):
        self.source = str(source) if source is not None else "<audio>"
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")

    def __reduce__(self):  # keep pickling (multiprocessing) working with two args
        return (type(self), (self.source, self.reason))


class AudioWarning(UserWarning):
    """Audio that was used but may be damaged, or an optional decoder that was unavailable."""


class PresetError(ZooError, ValueError):
    """An unknown preset name, or a preset whose configuration cannot be used."""


class WeightsError(ZooError):
    """Weights that are missing, unavailable, or fail their integrity check."""


class OptionalDependencyError(ZooError, ImportError):
    """An optional extra (e.g. ``zoo-audio[beam]``) is not installed; the message says which."""
