"""What a `zoo serve` process is told: the index, the tagger and the limits on each request.

The configuration travels to uvicorn's worker processes (``--workers N``) as JSON in one
environment variable, so every worker opens the same index with the same limits.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

CONFIG_ENV = "ZOO_SERVE_CONFIG"
"""Environment variable holding a `ServiceConfig` as JSON (set by ``zoo serve`` for its
workers; `zoo.service.app.create_app_from_env` reads it)."""

DEFAULT_TAG_MODEL = "musicnn_msd"


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server.

    Attributes:
        max_upload_bytes: largest request body accepted (bigger: 413).
        max_audio_seconds: longest recording accepted, from its header (longer: 413).
        decode_timeout_seconds: a decode that takes longer is stopped (its worker process is
            killed and replaced) and the request answered 422.
        max_top: largest ``top`` a client may ask for.
        max_pending: requests being read, decoded or waiting for the model at once; one more
            is answered 503 (busy) instead of queueing without bound. Each holds up to about
            three copies of its upload while it is read, so memory stays below roughly
            ``max_pending * 3 * max_upload_bytes`` plus the models.
        decoders: decoder processes per server worker (decoding runs beside the model).
    """

    max_upload_bytes: int = 20 * 2 ** 20
    max_audio_seconds: float = 600.0
    decode_timeout_seconds: float = 30.0
    max_top: int = 100
    max_pending: int = 32
    decoders: int = 2

    def __post_init__(self) -> None:
        problems = [f"{name} must be > 0, got {value}" for name, value in asdict(self).items()
                    if not value > 0]
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class ServiceConfig:
    """Everything a server worker needs.

    Attributes:
        index: the index directory (``zoo index``); its own model embeds the queries.
        tag_model: preset of ``POST /tag`` (a tagger), or None to answer it 404.
        limits: the `Limits`.
        verify: check the index files' sha256 when loading (``zoo serve`` checks them once,
            before its workers start, and tells the workers not to again).
    """

    index: str
    tag_model: str | None = DEFAULT_TAG_MODEL
    limits: Limits = field(default_factory=Limits)
    verify: bool = True

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServiceConfig:
        data: dict[str, Any] = json.loads(text)
        return cls(index=data["index"], tag_model=data.get("tag_model"),
                   limits=Limits(**data.get("limits", {})), verify=bool(data.get("verify", True)))

    @classmethod
    def from_env(cls) -> ServiceConfig:
        """The configuration ``zoo serve`` left in `CONFIG_ENV`.

        Raises:
            RuntimeError: the variable is not set.
        """
        text = os.environ.get(CONFIG_ENV)
        if not text:
            raise RuntimeError(f"{CONFIG_ENV} is not set: start the server with `zoo serve`")
        return cls.from_json(text)
