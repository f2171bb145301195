"""The ASGI app of ``zoo serve``: the REST API, the web page and the OpenAPI docs.

Example:
    >>> from zoo.service import ServiceConfig, create_app
    >>> app = create_app(ServiceConfig(index="music.idx"))
    >>> # uvicorn.run(app, host="127.0.0.1", port=8000)

Each request is admitted (at most ``max_pending`` at once), its body read up to the size limit,
decoded in a decoder process (time-limited), and handed to the one model thread; every error is
answered as JSON ``{"error": message}`` with a 4xx status (503 while busy or loading).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

import zoo
from zoo.service import docs_ui
from zoo.service.backend import Backend
from zoo.service.config import ServiceConfig
from zoo.service.decoding import Decoded, DecoderPool
from zoo.service.errors import NotReady, RequestError
from zoo.service.runner import Admission, ModelRunner
from zoo.service.uploads import FIELD, HOW_TO_SEND, read_upload

STATIC = Path(__file__).resolve().parent / "static"
log = logging.getLogger("zoo.service")

# The page loads nothing from elsewhere (it works offline); the policy makes that a rule.
PAGE_POLICY = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")

_AUDIO_BODY = {"requestBody": {"required": True, "description": HOW_TO_SEND, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": [FIELD], "properties": {
        FIELD: {"type": "string", "format": "binary"}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    "audio/*": {"schema": {"type": "string", "format": "binary"}}}}}
_ERRORS = {code: {"description": text, "content": {"application/json": {"example": {
    "error": example}}}} for code, text, example in [
    (400, "no recording in the request, or a bad parameter", "no file in the multipart field"),
    (413, "upload or recording too large", "the upload is too large (31.0 MiB); ..."),
    (415, "a raw body that is not audio", "Content-Type 'text/plain' is not audio: ..."),
    (422, "audio that cannot be used (the reason zoo tag gives), or a decode that timed out",
     "clip.wav: truncated WAV: the header declares 32000 bytes ..."),
    (503, "busy, or the models are still loading", "the server is busy ...")]}


class _State:
    """What one worker holds: the config, the model thread, the decoders, the backend."""

    def __init__(self, config: ServiceConfig):
        self.config = config
        self.limits = config.limits
        self.runner = ModelRunner()
        self.admission = Admission(config.limits.max_pending)
        self.decoders: DecoderPool | None = None
        self.decode_threads = ThreadPoolExecutor(config.limits.decoders,
                                                 thread_name_prefix="zoo-decode")
        self.loading: Future | None = None

    def start(self) -> None:
        self.decoders = DecoderPool(self.limits.decoders, self.limits.decode_timeout_seconds)
        self.loading = self.runner.submit(_load_backend, self.config)

    def stop(self) -> None:
        self.runner.close()
        self.decode_threads.shutdown(wait=False, cancel_futures=True)
        if self.decoders is not None:
            self.decoders.close()

    async def backend(self) -> Backend:
        """The loaded backend (waits while the models load)."""
        try:
            return await asyncio.wrap_future(self.loading)
        except Exception as err:
            raise NotReady(f"the server could not load its models: {err}") from err

    async def decode(self, request: Request, sample_rate: int, filename: str | None) -> Decoded:
        upload = await read_upload(request, self.limits.max_upload_bytes, filename)
        call = functools.partial(self.decoders.decode, upload.data, name=upload.name,
                                 suffix=upload.suffix, sample_rate=sample_rate,
                                 max_seconds=self.limits.max_audio_seconds)
        return await asyncio.get_running_loop().run_in_executor(self.decode_threads, call)


def _load_backend(config: ServiceConfig) -> Backend:
    from zoo.search import load_index

    backend = Backend(load_index(config.index, verify=config.verify), config.tag_model)
    backend.load()
    return backend


def _check_top(top: int, limit: int) -> None:
    if top > limit:
        raise RequestError(f"top must be at most {limit}, got {top}", 422)


def _timing(decode: float, queue: float, model: float) -> dict[str, str]:
    """The Server-Timing header: decoding, waiting for the model thread, the model's work."""
    return {"Server-Timing": f"decode;dur={decode * 1e3:.1f}, queue;dur={queue * 1e3:.1f}, "
                             f"model;dur={model * 1e3:.1f}"}


def _validation_message(err: RequestValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(x) for x in e.get("loc", ())[1:]) or "request"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def request_error(_: Request, err: RequestError) -> JSONResponse:
        return JSONResponse({"error": err.message}, status_code=err.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        message = str(err.detail)
        if err.status_code == 404 and message == "Not Found":
            message = f"not found: {request.url.path} (the API: /docs)"
        elif err.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return JSONResponse({"error": message}, status_code=err.status_code,
                            headers=getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _validation_message(err)}, status_code=422)

    @app.exception_handler(ClientDisconnect)
    async def gone(_: Request, __: ClientDisconnect) -> Response:
        return Response(status_code=400)  # the client left mid-upload: nobody reads this

    @app.exception_handler(Exception)
    async def internal_error(_: Request, err: Exception) -> JSONResponse:
        log.exception("zoo serve: internal error")
        return JSONResponse({"error": f"internal error: {type(err).__name__}"}, status_code=500)


def create_app(config: ServiceConfig) -> FastAPI:
    """The app for one worker: loads the index and models once, in the background.

    Args:
        config: the index, the tagger and the limits.

    Returns:
        A FastAPI (ASGI) app; run it with uvicorn.
    """
    state = _State(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.start()
        try:
            yield
        finally:
            state.stop()

    app = FastAPI(title="zoo catalogue search", version=zoo.__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description="Query by example over a `zoo index` catalogue, and tagging. "
                              "Errors are JSON `{\"error\": message}`.")
    app.state.zoo = state
    _add_error_handlers(app)
    docs_ui.add_docs(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.url.path == "/":
            response.headers["Content-Security-Policy"] = PAGE_POLICY
        return response

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/health", summary="Whether the models are loaded, and what the server holds")
    async def health() -> JSONResponse:
        loading = state.loading
        doc: dict[str, Any] = {"status": "loading", "worker": os.getpid(),
                               "index": os.path.basename(config.index),
                               "tag_model": config.tag_model,
                               "in_flight": state.admission.in_flight,
                               "limits": {"max_upload_bytes": state.limits.max_upload_bytes,
                                          "max_audio_seconds": state.limits.max_audio_seconds,
                                          "max_top": state.limits.max_top}}
        if loading is not None and loading.done():
            if loading.exception() is not None:
                doc.update(status="error", error=str(loading.exception()))
            else:
                index = loading.result().index
                doc.update(status="ok", model=index.model.preset, level=index.level,
                           files=len(index),
                           segments=None if index.table is None else index.table.n_segments)
        return JSONResponse(doc, status_code=200 if doc["status"] == "ok" else 503)

    async def answer(request: Request, filename: str | None, kind: str, *args: Any
                     ) -> JSONResponse:
        """Admit, decode at the rate ``kind`` needs ("similar" or "tag"), run the backend's
        method of that name on the model thread, and answer with the timing headers."""
        with state.admission:
            backend = await state.backend()
            rate = backend.query_sample_rate if kind == "similar" else backend.tag_sample_rate
            started = time.perf_counter()
            query = await state.decode(request, rate, filename)
            decode = time.perf_counter() - started
            doc, queue, model = await state.runner.run_timed(getattr(backend, kind), query,
                                                             *args)
        return JSONResponse(doc, headers=_timing(decode, queue, model))

    @app.post("/similar", openapi_extra=_AUDIO_BODY, responses=_ERRORS,
              summary="The catalogue files most like a recording, best first")
    async def similar(request: Request,
                      top: int = Query(10, ge=1, description="how many results"),
                      explain: bool = Query(False, description="add, per result, the passage "
                                            "that matched and each query segment's match"),
                      filename: str | None = Query(None, description="name of a raw body "
                                                   "(messages, and its format)")
                      ) -> JSONResponse:
        _check_top(top, state.limits.max_top)
        return await answer(request, filename, "similar", top, explain)

    @app.post("/tag", openapi_extra=_AUDIO_BODY, responses=_ERRORS,
              summary="A recording's top tags and its taggram (tags x 3 s patches)")
    async def tag(request: Request, top: int = Query(5, ge=1, description="how many tags"),
                  filename: str | None = Query(None, description="name of a raw body")
                  ) -> JSONResponse:
        if config.tag_model is None:
            raise RequestError("this server has no tagger (it was started with "
                               "--tag-model none)", 404)
        _check_top(top, state.limits.max_top)
        return await answer(request, filename, "tag", top)

    @app.get("/catalogue/{file_id}/audio", summary="A catalogue file (by its id in results)",
             responses={200: {"content": {"audio/*": {}}}, 403: {
                 "description": "an index entry that points outside the catalogue"}, 404: {
                 "description": "no such catalogue file"}})
    async def catalogue_audio(file_id: str) -> FileResponse:
        backend = await state.backend()
        if not file_id.isdigit():  # ids are row numbers: nothing else names a file
            raise RequestError(f"no catalogue file {file_id!r}: ids are whole numbers", 404)
        path, media_type = backend.catalogue_file(int(file_id))
        return FileResponse(path, media_type=media_type)

    return app


def create_app_from_env() -> FastAPI:
    """`create_app` with the configuration ``zoo serve`` left in the environment (uvicorn's
    factory for ``--workers N``)."""
    import warnings

    from zoo.errors import AudioWarning

    # Doubts about a query are in its answer; the server's log does not repeat them.
    warnings.filterwarnings("ignore", category=AudioWarning)
    return create_app(ServiceConfig.from_env())
