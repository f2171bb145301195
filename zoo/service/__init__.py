"""``zoo serve``: catalogue search and tagging over HTTP, with a web page.

Needs the ``serve`` extra (``pip install 'zoo-audio[serve]'``: FastAPI, uvicorn,
python-multipart, faiss, Swagger UI files). Importing this package imports none of them:
`create_app` does, on first use, so the ``zoo`` command starts without them.

Modules: `config` (index, tagger, limits), `uploads` (reading a request's recording),
`decoding` and `decode_worker` (decoding in time-limited processes), `runner` (the one model
thread, admission), `backend` (the index and tagger, and the JSON answers), `app` (routes,
errors), `docs_ui` (``/docs`` offline), `cli` (``zoo serve``), ``static/`` (the page).

Example:
    >>> from zoo.service import ServiceConfig, create_app
    >>> app = create_app(ServiceConfig(index="music.idx"))
"""

from __future__ import annotations

from typing import Any

from zoo.service.config import Limits, ServiceConfig

__all__ = ["Limits", "ServiceConfig", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from zoo.service.app import create_app

        return create_app
    raise AttributeError(f"module 'zoo.service' has no attribute {name!r}")
